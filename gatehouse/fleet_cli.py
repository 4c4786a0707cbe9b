"""`gatehouse plan` and `gatehouse apply`: the whole Organization, from an operator's shell or the sandbox."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

NO_CHANGES, CHANGES, FAILED = 0, 2, 1  # like `terraform plan -detailed-exitcode`


@contextmanager
def _services(args: Any) -> Iterator[Any]:

    if not args.sandbox:
        from chalicelib.container import Services
        from chalicelib.core.settings import StageConfig
        from gatehouse.aws_cli import operator_session

        session = operator_session(args.region, args.profile)
        import os

        from chalicelib.core.settings import ALLOWED_HOSTS_VARIABLE, parse_allowed_hosts

        # The deployment's allowed Cloudcraft hosts live in the stack, not in the settings: the operator
        # passes the same value here (empty: api.cloudcraft.co only).
        hosts = parse_allowed_hosts(os.environ.get(ALLOWED_HOSTS_VARIABLE, ""))
        config = StageConfig.for_stage(args.stage, session.region_name, cloudcraft_allowed_hosts=hosts)
        yield Services(config, session=session)
        return
    from chalicelib.container import get_services
    from gatehouse.sandbox.world import Sandbox, generated_accounts

    state = getattr(args, "state_document", None) or {}
    if args.accounts:
        state.setdefault("organization", {})["accounts"] = generated_accounts(args.accounts)
    with Sandbox(state) as sandbox:
        print(
            f"sandbox: {len(sandbox.accounts)} accounts, Cloudcraft emulator at {sandbox.cloudcraft_url}",
            file=sys.stderr,
        )
        yield get_services()


def run_plan(args: Any) -> int:
    from chalicelib.core.errors import GatehouseError

    with _services(args) as services:
        try:
            plan = services.fleet(services.settings()).plan()
        except GatehouseError as exc:
            print(f"gatehouse plan: {exc}", file=sys.stderr)
            return FAILED
        if args.json:
            print(json.dumps(plan.to_dict(), indent=2))
        else:
            print_plan(plan, sys.stdout, show_all=args.all, rpm=services.settings().cloudcraft_requests_per_minute)
    if plan.refused or plan.refusal:
        return FAILED
    return CHANGES if plan.changes or plan.held else NO_CHANGES


def run_apply(args: Any) -> int:
    from chalicelib.adapters.workqueue import new_run_id, work_messages
    from chalicelib.core.errors import GatehouseError
    from gatehouse.cli import UsageError

    with _services(args) as services:
        try:
            settings = services.settings()
            fleet = services.fleet(settings)
            plan = fleet.plan()
        except GatehouseError as exc:
            print(f"gatehouse apply: {exc}", file=sys.stderr)
            return FAILED
        rpm = settings.cloudcraft_requests_per_minute
        print_plan(plan, sys.stdout, show_all=False, rpm=rpm)
        if not plan.changes:
            return FAILED if plan.refused or plan.refusal else NO_CHANGES
        if not args.yes:
            import click

            if not sys.stdin.isatty():
                raise UsageError("not a terminal: review the plan above, then run again with --yes")
            if not click.confirm("Apply these changes?", default=False):
                print("Nothing changed.")
                return CHANGES
        if args.queue:
            queue = services.work_queue if services.config.work_queue_url else _stage_queue(services, args.stage)
            sent = queue.send(work_messages(plan, new_run_id()))
            print(f"Queued {sent} work items on {queue.url}; the fleet worker applies them at Cloudcraft's pace.")
            return NO_CHANGES
        bar = ProgressBar(sys.stderr, sandbox=args.sandbox)
        report = fleet.apply(plan, requests_per_minute=rpm, progress=bar.update)
        bar.close()
        print(
            f"Applied {len(report.applied)} accounts, deregistered {len(report.deregistered)}, "
            f"failed {len(report.failed)}."
        )
        if report.unchanged:
            print(f"  {len(report.unchanged)} already in order when their turn came (another job had done it)")
        for item, why in sorted(report.refused.items()):
            print(f"  REFUSED {item}: {why}")
        for item, why in sorted(report.failed.items()):
            print(f"  FAILED {item}: {why}")
        after = services.fleet(settings).plan()
        print("Plan after apply: " + ("nothing to do." if not after.changes else _summary_line(after, rpm)))
        return FAILED if report.failed or plan.refused else NO_CHANGES


def _stage_queue(services: Any, stage: str) -> Any:
    from chalicelib.adapters.workqueue import WorkQueue

    sqs = services.client("sqs")
    return WorkQueue(sqs, sqs.get_queue_url(QueueName=f"gatehouse-{stage}-work")["QueueUrl"])


def _summary_line(plan: Any, rpm: int) -> str:
    counts = plan.summary()
    parts = [f"{count} {action}" for action, count in sorted(counts.items())]
    writes = plan.cloudcraft_writes()
    eta = _duration(writes * 60 / rpm)
    return f"{', '.join(parts) or 'no accounts'}. Cloudcraft writes: {writes} (about {eta} at {rpm}/min)."


def print_plan(plan: Any, out: TextIO, *, show_all: bool, rpm: int) -> None:
    rows = [
        (p.account.account_id, p.account.name, p.account.ou_path or "(root)", ", ".join(p.actions()) or "-")
        for p in plan.accounts
        if show_all or p.changes or p.error or p.refused or p.held
    ]
    rows += [
        (
            o.aws_account_id or "?",
            o.name,
            "(orphan)",
            o.action if plan.offboarding != "keep" else "keep (offboarding=keep)",
        )
        for o in plan.orphans
    ]
    if rows:
        widths = [max(len(str(row[i])) for row in [("ACCOUNT", "NAME", "OU", "ACTIONS"), *rows]) for i in range(3)]
        header = ("ACCOUNT", "NAME", "OU", "ACTIONS")
        for row in [header, *rows]:
            out.write(
                "  ".join(str(cell).ljust(widths[i]) if i < 3 else str(cell) for i, cell in enumerate(row)) + "\n"
            )
        out.write("\n")
    out.write(("Plan: " if plan.changes else "No changes. ") + _summary_line(plan, rpm) + "\n")
    from chalicelib.fleet.service import grouped_reasons

    if plan.refused:
        out.write("\nREFUSED: Cloudcraft's answer; nothing will be written for these accounts:\n")
        out.write("\n".join(grouped_reasons(plan.refused)) + "\n")
    if plan.held:
        out.write("\nHELD: principal changes; nothing will be written for these accounts:\n")
        out.write("\n".join(grouped_reasons(plan.held)) + "\n")


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressBar:
    """One line on stderr, redrawn in place: counts, and an ETA from the Cloudcraft writes left (marked as sandbox
    time in the sandbox, where waits pass at once). Each redraw blanks what a longer line before left behind."""

    WIDTH = 30

    def __init__(self, out: TextIO, *, sandbox: bool = False) -> None:
        self._out = out
        self._drawn = 0  # the length of the line on screen
        self._clock = " of sandbox time" if sandbox else ""

    def update(self, progress: Any) -> None:
        filled = int(self.WIDTH * progress.done / progress.total) if progress.total else self.WIDTH
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {progress.done}/{progress.total} accounts, "
            f"{progress.writes_left} Cloudcraft writes left, ETA {_duration(progress.eta_seconds)}{self._clock}"
        )
        self._out.write(("\r" if self._drawn else "") + line.ljust(self._drawn))
        self._out.flush()
        self._drawn = len(line)

    def close(self) -> None:
        if self._drawn:
            self._out.write("\n")
