"""Onboarding benchmark: cold-start import cost, and Cloudcraft/AWS calls per onboarded account.

Run: .venv/bin/python benchmarks/onboarding.py   (or `make bench`). Offline: uses the sandbox.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from gatehouse.sandbox.calls import count_aws_calls

REPO = Path(__file__).resolve().parent.parent
RUNS = 9


def import_ms(statement: str) -> float:
    """Median wall time of `statement` in a fresh interpreter (what a Lambda cold start pays)."""
    code = f"import time; t = time.perf_counter(); {statement}; print((time.perf_counter() - t) * 1000)"
    samples = [
        float(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout)  # noqa: S603 - our own interpreter, our own code
        for _ in range(RUNS)
    ]
    return statistics.median(samples)


def calls_per_account(accounts: int = 6) -> dict[str, Any]:
    """Onboards `accounts` new accounts one after another in one warm sandbox container (6 accounts stay under the
    rate limit, so no wait moves the sandbox clock past a cache lifetime)."""
    from gatehouse.sandbox import samples
    from gatehouse.sandbox.world import Sandbox

    state = {
        "organization": {
            "accounts": [
                {"id": f"{700000000000 + i}", "name": f"bench-{i}", "ou": "Workloads"} for i in range(accounts)
            ]
        },
    }
    per_account: list[tuple[int, int]] = []
    with Sandbox(state) as sandbox:
        for account in sandbox.accounts:
            before = len(sandbox.cloudcraft.requests_log())
            with count_aws_calls() as aws:
                delivery = sandbox.deliver(samples.create_account_result(account["id"]))
            assert delivery.result, delivery
            assert delivery.result["outcome"] == "onboarded", delivery
            per_account.append((len(sandbox.cloudcraft.requests_log()) - before, sum(aws.values())))
            if account is sandbox.accounts[0]:
                cold_aws = dict(aws)
    return {"per_account": per_account, "cold_aws": cold_aws}


def main() -> int:
    boto3_ms = import_ms("import boto3")
    app_ms = import_ms("import app")
    handlers_ms = import_ms("import app, chalicelib.handlers")
    ratio = app_ms / boto3_ms
    print(f"import boto3:                    {boto3_ms:7.1f} ms (median of {RUNS} fresh interpreters)")
    print(f"import app:                      {app_ms:7.1f} ms  ratio to boto3 {ratio:.2f} (target <= 1.3)")
    print(f"import app + chalicelib.handlers:{handlers_ms:7.1f} ms  (paid by the first invocation, not at import)")

    result = calls_per_account()
    cloudcraft = [c for c, _ in result["per_account"]]
    aws = [a for _, a in result["per_account"]]
    print(f"Cloudcraft calls, cold container (first account): {cloudcraft[0]} (target <= 3)")
    print(f"Cloudcraft calls, warm container (next {len(cloudcraft) - 1}):     max {max(cloudcraft[1:])} (target <= 2)")
    print(f"AWS calls per onboarded account: first {aws[0]}, then max {max(aws[1:])}")
    print("  first account's AWS calls: " + ", ".join(f"{k} x{v}" for k, v in sorted(result["cold_aws"].items())))
    ok = ratio <= 1.3 and cloudcraft[0] <= 3 and max(cloudcraft[1:]) <= 2
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
