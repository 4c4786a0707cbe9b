"""Memory and time of the reconciliation per invocation, in pages (fleet/fanout.py) against one whole-Organization
plan, over 1,000 / 5,000 / 10,000 accounts with half already registered and every role in place.

Run: .venv/bin/python benchmarks/fanout.py   (or `make bench`). Offline: the code of both functions (snapshots
written and read back as JSON, each page planned, its tally recorded, the tallies added up), with the member-account
reads answered from memory (what a read returns, not the AWS round trip) and the runs store in memory. Peak memory
is Python's own allocations during one invocation (tracemalloc), the measure that grows with what an invocation
holds; the Lambda runtime and imports add a constant (about 90 MB) on top.

Targets (issue 11): memory per page invocation flat in the Organization's size, every invocation far under 256 MB.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.planning import IDENTITY, SETTINGS, world
from chalicelib.adapters.cloudcraft.models import CloudcraftAccount
from chalicelib.adapters.ledger import Ledger
from chalicelib.fleet.fanout import PAGE_SIZE, PageItem, add_up, page_snapshots, plan_page, run_header
from chalicelib.fleet.report import RunTally
from chalicelib.fleet.service import Survey, plan_members
from chalicelib.planning.plan import MemberView
from tests.fakes import MemoryRuns


class NoLedger:
    def record_principal(self, account_id: str) -> None:
        raise AssertionError("a run with every role in place records no principal")


def measure(job: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MB of allocations during the job)."""
    tracemalloc.start()
    started = time.perf_counter()
    result = job()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 1e6


def one_size(size: int) -> dict[str, float]:
    accounts, registrations, organization, role = world(size)
    view = MemberView("OrganizationAccountAccessRole", role)
    cloudcraft = [
        CloudcraftAccount(r.id, r.name, r.role_arn) for r in registrations
    ]  # the client's own type, as listed
    survey = Survey(accounts, cloudcraft, IDENTITY, {}, organization.management, "")

    def read(account_id: str) -> MemberView:
        return view

    def no_tags(account_id: str) -> dict[str, str]:
        return {}

    # One invocation planning the whole Organization (the baseline: what the daily run did before pages).
    def whole() -> RunTally:
        plan = plan_members(accounts, SETTINGS, survey, tags=no_tags, read=read, organization=organization)
        return RunTally.of(plan, queued=0)

    whole_tally, whole_seconds, whole_peak = measure(whole)

    runs = MemoryRuns()

    def coordinator() -> int:
        pages = page_snapshots(survey, PAGE_SIZE)
        runs.start("bench", header=run_header(survey, repair=False), pages=pages, now=0)
        runs.report("bench", 0, RunTally().to_dict(), now=0)
        return len(pages)

    pages, _, coordinator_peak = measure(coordinator)
    page_peaks, page_seconds = [], 0.0
    for number in range(1, pages + 1):

        def page(number: int = number) -> RunTally:
            return plan_page(
                PageItem("bench", number),
                SETTINGS,
                runs=runs,  # type: ignore[arg-type]
                tags=no_tags,
                read=read,
                ledger=cast(Ledger, NoLedger()),
                work_queue=None,
                now=0,
            )

        _, seconds, peak = measure(page)
        page_peaks.append(peak)
        page_seconds += seconds
    total, add_seconds, add_peak = measure(lambda: add_up(runs, "bench"))  # type: ignore[arg-type]
    assert total is not None
    assert total.summary == whole_tally.summary, (total.summary, whole_tally.summary)
    return {
        "accounts": size,
        "pages": pages,
        "whole_peak": whole_peak,
        "whole_us": whole_seconds / size * 1e6,
        "coordinator_peak": coordinator_peak,
        "page_peak": max(page_peaks),
        "pages_us": (page_seconds + add_seconds) / size * 1e6,
        "add_peak": add_peak,
    }


def sandbox_run(size: int) -> int:
    """A whole reconciliation of `size` sandbox accounts (half registered, every role in place), as deployed: the
    coordinator, then each page in its own invocation, over moto and the Cloudcraft emulator. Prints each
    invocation's wall time and peak of traced allocations against its function's limits."""
    from gatehouse.sandbox.world import Sandbox, generated_accounts

    accounts = generated_accounts(size)
    for account in accounts:
        account["role"] = {}  # the Cloudcraft role in place
    registered = [
        {"name": f"{a['name']} ({a['id']})", "roleArn": f"arn:aws:iam::{a['id']}:role/cloudcraft", "owned": True}
        for a in accounts[::2]
    ]
    seeding = time.perf_counter()
    state: dict[str, Any] = {
        "organization": {"accounts": accounts},
        "cloudcraft": {"accounts": registered},
        "settings": {"reconcile": "report"},
    }
    with Sandbox(state) as world:
        print(f"== a sandbox reconciliation of {size} accounts ({time.perf_counter() - seeding:.0f} s to seed)")
        invocations: list[tuple[str, float, float]] = []
        invoke = world.invoke

        def measured(handler: str, event: dict[str, Any]) -> Any:
            result, seconds, peak = measure(lambda: invoke(handler, event))
            invocations.append((handler, seconds, peak))
            return result

        world.invoke = measured  # type: ignore[method-assign,assignment]
        started = world.run_schedule("reconcile", plan_pages=False)
        completed = world.plan_pages(started)
    limits = {"reconcile": (900, 512), "reconcile_page": (300, 256)}
    worst = 0.0
    for handler in ("reconcile", "reconcile_page"):
        runs = [(s, p) for h, s, p in invocations if h == handler]
        slowest, biggest = max(s for s, _ in runs), max(p for _, p in runs)
        timeout, memory = limits[handler]
        worst = max(worst, slowest / timeout, biggest / memory)
        print(
            f"{handler:<15} {len(runs):>4} invocation(s): slowest {slowest:6.1f} s (limit {timeout} s), "
            f"largest {biggest:6.1f} MB traced (limit {memory} MB, runtime ~90 MB besides)"
        )
    print(f"outcome {completed.get('outcome')}, summary {completed.get('summary')}")
    print(f"worst share of a limit: {worst:.2f} (every invocation within its limits: {worst < 1})")
    return 0 if completed.get("outcome") and worst < 1 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--sandbox", type=int, default=0, metavar="N", help="a whole sandbox reconciliation of N")
    args = parser.parse_args()
    from chalicelib.core.observability import logger

    logger.setLevel("WARNING")  # the report lines (one per account) would drown the figures
    if args.sandbox:
        import warnings

        warnings.filterwarnings("ignore", module="aws_lambda_powertools")  # "no metrics to publish"
        return sandbox_run(args.sandbox)
    print(f"== reconciliation memory per invocation, pages of {PAGE_SIZE} (tracemalloc peak, MB; CPU µs/account)")
    header = (
        "accounts  pages  one whole plan MB  coordinator MB  largest page MB  summing up MB  "
        "µs/account whole  µs/account pages  page/whole memory"
    )
    print(header)
    rows = [one_size(int(size)) for size in args.sizes.split(",")]
    for row in rows:
        print(
            f"{row['accounts']:>8}  {row['pages']:>5}  {row['whole_peak']:>17.1f}  {row['coordinator_peak']:>14.1f}  "
            f"{row['page_peak']:>15.2f}  {row['add_peak']:>13.2f}  {row['whole_us']:>16.0f}  {row['pages_us']:>16.0f}  "
            f"{row['page_peak'] / row['whole_peak']:>17.3f}"
        )
    first, last = rows[0], rows[-1]
    growth = last["page_peak"] / first["page_peak"]
    print(
        f"largest page from {first['accounts']} to {last['accounts']} accounts: x{growth:.2f} "
        f"(flat: ~1.0); one whole plan: x{last['whole_peak'] / first['whole_peak']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
