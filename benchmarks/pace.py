"""Cloudcraft pace benchmark: two functions of one deployment sending at once, against a server that throttles
as a strict rolling window or as a smooth token bucket (Cloudcraft documents neither).

Run: .venv/bin/python benchmarks/pace.py [--requests 120] [--rate 20]   (or `make bench`). Offline: the Cloudcraft
emulator on loopback, DynamoDB from moto, all on one virtual clock (figures in sandbox time, exact on any machine).

Two Lambda containers take turns, each sending `--requests / 2` GETs as fast as its limiter lets it:
- baseline: each container's own sliding window of R per minute, as before (bursts, no shared budget);
- Gatehouse: requests spaced one every 60/R s, send times claimed from the deployment's budget in DynamoDB.
Printed per server model: 429s answered, the sustained rate of successful requests against R, and the ratio of
the baseline's 429s to Gatehouse's. Target: no 429 under either model, at >= 0.95 x R sustained.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from moto import mock_aws

from chalicelib.adapters.budget import DynamoBudget
from chalicelib.adapters.cloudcraft.client import CloudcraftClient
from chalicelib.adapters.cloudcraft.errors import CloudcraftError
from chalicelib.adapters.cloudcraft.limiter import RateLimiter, SharedBudget
from chalicelib.core.clock import VirtualClock
from gatehouse.sandbox.cloudcraft_emulator import RATE_MODELS, CloudcraftEmulator

KEY = "cc-bench-" + "k" * 32
TABLE = "gatehouse-bench-idempotency"


def run(model: str, *, shared: SharedBudget | None, spacing: bool, requests: int, rate: int) -> dict[str, Any]:
    clock = VirtualClock()
    with CloudcraftEmulator(KEY, clock=clock, rate_limit=(rate, 60.0), rate_model=model) as emulator:
        assert emulator.url is not None
        errors: list[BaseException] = []
        # Two containers taking turns, one request each (a discrete-event run on one virtual clock; threads would
        # let one container's sleep move the clock under the other's request in flight).
        clients = [
            CloudcraftClient(
                KEY,
                emulator.url,
                clock=clock,
                rate_limiter=RateLimiter(rate, 60.0, clock=clock, spacing=spacing, shared=shared),
                max_attempts=10,
            )
            for _ in range(2)
        ]
        for _ in range(requests // 2):
            for client in clients:
                try:
                    client.list_accounts()
                except CloudcraftError as exc:
                    errors.append(exc)
        for client in clients:
            client.close()
        log = emulator.requests_log()
    ok = [entry["at"] for entry in log if entry["status"] == 200]
    span = max(ok) - min(ok) if len(ok) > 1 else 0.0
    sustained = (len(ok) - 1) / span * 60.0 if span else float("inf")
    return {
        "429": sum(1 for entry in log if entry["status"] == 429),
        "ok": len(ok),
        "per_minute": sustained,
        "of_r": sustained / rate,
        "errors": len(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--rate", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the baseline's 429 warnings; the figures say it
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    print(f"{args.requests} requests from two containers at once, R = {args.rate}/min (sandbox time)")
    failed = False
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        for model in RATE_MODELS:
            ddb.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            base = run(model, shared=None, spacing=False, requests=args.requests, rate=args.rate)
            ours = run(model, shared=DynamoBudget(ddb, TABLE), spacing=True, requests=args.requests, rate=args.rate)
            ddb.delete_table(TableName=TABLE)
            for label, figures in (("baseline (own windows)", base), ("Gatehouse (shared budget)", ours)):
                print(
                    f"  {model:6}  {label:26} 429s {figures['429']:3}   ok {figures['ok']:3}   "
                    f"sustained {figures['per_minute']:5.2f}/min = {figures['of_r']:.3f} x R   "
                    f"gave up {figures['errors']}"
                )
            print(f"  {model:6}  429s: baseline {base['429']}, Gatehouse {ours['429']}")
            met = ours["429"] == 0 and ours["of_r"] >= 0.95 and ours["errors"] == 0
            failed |= not met
            print(f"  {model:6}  target (no 429, >= 0.95 x R): {'met' if met else 'NOT met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
