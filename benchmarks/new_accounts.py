"""New accounts per hour through the fleet worker: roles written, then registered once Cloudcraft can verify them.

Run: .venv/bin/python benchmarks/new_accounts.py [--accounts 60] [--propagation 10]   (or `make bench`). Offline:
the sandbox (moto, the Cloudcraft emulator with its 20 requests a minute and a role propagation delay), on its
virtual clock, so the figures are sandbox time and the same on any machine.

The reconciliation queues one item per new account; the worker drains the queue as Lambda's event source would.
- Gatehouse: the worker writes the role and hands the item back for 20 s (no POST Cloudcraft could not verify yet,
  no sleep in Lambda), and lists Cloudcraft once per batch.
- baseline, in the same run: the worker POSTs right after writing the role and waits out Cloudcraft's 400s in
  the invocation (the executor's in-place backoff), as before.
Printed: accounts per hour of sandbox time, Cloudcraft requests per account, rejected POSTs, the longest time one
invocation spent waiting, and the ratio to the baseline. Target: >= 1,100 new accounts an hour (Cloudcraft's rate
allows at most 1,200 requests an hour).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(accounts: int, propagation: float, *, hand_back: bool) -> dict[str, Any]:
    from chalicelib.container import Services
    from chalicelib.planning.executor import Executor
    from gatehouse.sandbox.world import Sandbox, generated_accounts

    original = Services.executor

    def executor(self: Services, settings: Any) -> Executor:
        built = original(self, settings)
        built._hand_back_waits = hand_back and self.hand_back_rate_limits
        return built

    state = {
        "organization": {"accounts": generated_accounts(accounts)},
        "cloudcraft": {"role_propagation_seconds": propagation},
    }
    Services.executor = executor  # type: ignore[method-assign]
    try:
        with Sandbox(state) as world:
            assert world.run_schedule("reconcile")["queued"] == accounts
            started = world.clock.monotonic()
            longest = 0.0
            while world.queue_depth():
                before = world.clock.monotonic()
                if not world.drain_queue(max_batches=1):
                    world.clock.advance(1.0)  # nothing visible yet: the next deferred item is due soon
                    continue
                longest = max(longest, world.clock.monotonic() - before)
            elapsed = world.clock.monotonic() - started
            log = world.cloudcraft.requests_log()
            registered = len(world.cloudcraft.accounts())
    finally:
        Services.executor = original  # type: ignore[method-assign]
    posts = [entry for entry in log if entry["method"] == "POST"]
    return {
        "registered": registered,
        "per_hour": registered / elapsed * 3600 if elapsed else float("inf"),
        "requests_per_account": len(log) / registered,
        "rejected_posts": sum(1 for entry in posts if entry["status"] == 400),
        "longest_invocation": longest,
        "elapsed": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=60)
    parser.add_argument("--propagation", type=float, default=10.0, help="seconds before Cloudcraft can verify a role")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"{args.accounts} new accounts through the fleet worker, role propagation {args.propagation:.0f} s")
    ours = run(args.accounts, args.propagation, hand_back=True)
    base = run(args.accounts, args.propagation, hand_back=False)
    for label, figures in (("baseline (POST at once, wait in Lambda)", base), ("Gatehouse (register when due)", ours)):
        print(
            f"  {label:40} {figures['per_hour']:7.0f} accounts/h   "
            f"{figures['requests_per_account']:.2f} Cloudcraft requests/account   "
            f"{figures['rejected_posts']:3} rejected POSTs   longest invocation {figures['longest_invocation']:5.0f} s"
        )
    print(f"  ratio, Gatehouse / baseline accounts per hour: {ours['per_hour'] / base['per_hour']:.2f}")
    met = ours["per_hour"] >= 1100 and ours["registered"] == args.accounts
    print(f"  target (>= 1,100 new accounts an hour): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
