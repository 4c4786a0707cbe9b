"""The `gatehouse` command: the local sandbox and the operator's tools."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
    except UsageError as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        return 2
    return code


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatehouse", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    sandbox = commands.add_parser("sandbox", help="run Gatehouse offline against moto and emulators on loopback")
    sandbox_commands = sandbox.add_subparsers(title="sandbox commands")
    demo = sandbox_commands.add_parser("demo", help="seed an Organization, fire real-shaped events, show the result")
    demo.add_argument("--json", action="store_true", help="print the final state as JSON instead of a report")
    demo.set_defaults(run=_run_demo)
    replay = sandbox_commands.add_parser("replay", help="deliver EventBridge event files, print the state as JSON")
    replay.add_argument("events", nargs="*", type=Path, metavar="EVENT.json")
    replay.add_argument("--state", type=Path, help="STATE.json seeding the Organization, settings and Cloudcraft")
    replay.add_argument("--repeat", type=int, default=1, help="deliver each event N times (duplicates)")
    replay.add_argument("--accounts", type=int, default=0, help="seed an Organization of N generated accounts")
    replay.add_argument(
        "--schedule",
        action="append",
        default=[],
        metavar="NAME",
        help="after the events, run a scheduled handler: proton_sweep or reconcile (repeatable)",
    )
    replay.add_argument(
        "--work-minutes",
        type=float,
        default=0.0,
        metavar="N",
        help="then run the fleet worker over N minutes of sandbox time: queued repairs, and onboardings waiting for "
        "an access role (their delayed work items) included",
    )
    replay.set_defaults(run=_run_replay)

    from gatehouse.fleet_cli import add_fleet_commands

    add_fleet_commands(commands)
    try:
        from gatehouse.rules_cli import add_rules_commands
    except ImportError:
        pass
    else:
        add_rules_commands(commands)
    return parser


MAX_FILE_BYTES = 8 * 1024 * 1024  # a state of thousands of accounts, or an event, is far smaller
MAX_FILE_DEPTH = 32


def load_json_file(path: Path, what: str) -> Any:
    from chalicelib.core.safejson import JsonLimitError, loads_bounded

    try:
        return loads_bounded(
            path.read_bytes(), max_bytes=MAX_FILE_BYTES, max_depth=MAX_FILE_DEPTH, what=f"{what} {path}"
        )
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except JsonLimitError as exc:
        raise UsageError(str(exc)) from None


def _run_demo(args: argparse.Namespace) -> int:
    from gatehouse.sandbox.demo import run_demo

    return run_demo(as_json=args.json)


def _run_replay(args: argparse.Namespace) -> int:
    from gatehouse.sandbox.world import Sandbox, SandboxError

    if args.repeat < 1:
        raise UsageError("--repeat must be 1 or more")
    if not 0 <= args.work_minutes <= 7 * 24 * 60:
        raise UsageError("--work-minutes must be from 0 to a week (10080)")
    if not args.events and not args.schedule:
        raise UsageError("give at least one EVENT.json or --schedule NAME")
    state = load_json_file(args.state, "state file") if args.state else {}
    if not isinstance(state, dict):
        raise UsageError(f"state file {args.state} must hold a JSON object")
    if args.accounts:
        from gatehouse.sandbox.world import generated_accounts

        state.setdefault("organization", {})["accounts"] = generated_accounts(args.accounts)
    try:
        with Sandbox(state) as sandbox:
            for path in args.events:
                try:
                    event = load_json_file(path, "event file")
                except (OSError, UsageError) as exc:
                    sandbox.errors.append({"source": str(path), "message": f"unreadable event file: {exc}"})
                    continue
                for _ in range(args.repeat):
                    sandbox.deliver(event, source=str(path))
            for name in args.schedule:
                sandbox.run_schedule(name)
            if args.work_minutes:
                sandbox.run_worker(for_seconds=args.work_minutes * 60)
            print(json.dumps(sandbox.snapshot(), indent=2, default=str))
    except SandboxError as exc:
        raise UsageError(str(exc)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
