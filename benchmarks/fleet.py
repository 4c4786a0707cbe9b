"""Fleet benchmark: Cloudcraft and AWS calls of plan/apply, apply pace against the rate limit, and plan wall
time over a large Organization compared with a naive sequential loop making the same AWS calls.

Run: .venv/bin/python benchmarks/fleet.py [--accounts 1000]   (or `make bench`). Offline: uses the sandbox.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from chalicelib.container import get_services
from gatehouse.sandbox.calls import count_aws_calls
from gatehouse.sandbox.world import Sandbox, generated_accounts

MEMBER_READS = {"sts:AssumeRole", "iam:GetRole", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies"}


def cloudcraft_calls(world: Sandbox, since: int) -> Counter[str]:
    return Counter(
        f"{r['method']} {r['path'].split('/aws/account/')[-1][:20]}" for r in world.cloudcraft.requests_log()[since:]
    )


def naive_plan(world: Sandbox) -> float:
    """What a short script would do: one account after another, the same minimal calls, no concurrency."""
    import boto3

    started = time.perf_counter()
    session = boto3.session.Session()
    org, sts = session.client("organizations"), session.client("sts")
    world.client("organizations")  # same client construction cost as the planner pays
    accounts = [a for page in org.get_paginator("list_accounts").paginate() for a in page["Accounts"]]
    for account in accounts:
        org.list_tags_for_resource(ResourceId=account["Id"])
        try:
            creds = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account['Id']}:role/OrganizationAccountAccessRole", RoleSessionName="naive"
            )["Credentials"]
        except Exception:  # noqa: S112 - the management account has no access role
            continue
        iam = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        ).client("iam")
        iam.get_role(RoleName="cloudcraft")
        iam.list_attached_role_policies(RoleName="cloudcraft")
        iam.list_role_policies(RoleName="cloudcraft")
    return time.perf_counter() - started


def plan_and_apply(accounts: int) -> None:
    print(f"== plan and apply over {accounts} new accounts")
    with Sandbox({"organization": {"accounts": generated_accounts(accounts)}}) as world:
        services = get_services()
        settings = services.settings()
        with count_aws_calls() as aws:
            plan = services.fleet(settings).plan()
        print(
            f"plan:  Cloudcraft calls {sum(cloudcraft_calls(world, 0).values())} (target <= 3): "
            f"{dict(cloudcraft_calls(world, 0))}"
        )
        print(f"       AWS calls per in-scope account: {_per_account(aws, accounts)}")
        before = len(world.cloudcraft.requests_log())
        services.fleet(settings).apply(plan, requests_per_minute=settings.cloudcraft_requests_per_minute)
        writes = cloudcraft_calls(world, before)
        print(
            f"apply: Cloudcraft writes {sum(writes.values())} for {accounts} accounts needing one "
            f"(target: exactly 1 each): {dict(writes)}"
        )
        with count_aws_calls() as aws:
            again = services.fleet(settings).plan()
        print(
            f"plan after apply: changes={again.changes}; AWS calls per account with an existing role: "
            f"{_per_account(aws, accounts)}"
        )


def _per_account(aws: Counter[str], accounts: int) -> str:
    member = sum(v for k, v in aws.items() if k in MEMBER_READS) / accounts
    tags = aws["organizations:ListTagsForResource"] / accounts
    org = sum(v for k, v in aws.items() if k.startswith("organizations:") and k != "organizations:ListTagsForResource")
    return (
        f"{member:.2f} member-account reads (target <= 4) + {tags:.2f} tag lookup; "
        f"{org} Organization-wide listing calls"
    )


def apply_pace(accounts: int, per_minute: int) -> None:
    """Sandbox seconds to apply N registrations with the emulator enforcing R requests/min (virtual time: the
    same figure on every run and every machine)."""
    print(f"== apply pace: {accounts} registrations, emulator limit {per_minute}/min (sandbox clock)")
    state = {
        "organization": {"accounts": generated_accounts(accounts)},
        "settings": {"cloudcraft_requests_per_minute": per_minute},
        "cloudcraft": {"rate_limit": {"requests": per_minute, "per_seconds": 60}},
    }
    with Sandbox(state) as world:
        services = get_services()
        settings = services.settings()
        plan = services.fleet(settings).plan()
        started = world.clock.monotonic()
        services.fleet(settings).apply(plan, requests_per_minute=per_minute)
        elapsed = world.clock.monotonic() - started
        floor = accounts * 60 / per_minute
        throttled = sum(r["status"] == 429 for r in world.cloudcraft.requests_log())
        print(
            f"took {elapsed:.0f} sandbox s; N/R = {floor:.0f} s; ratio {elapsed / floor:.2f} (target <= 1.15); "
            f"429s from the emulator: {throttled}"
        )


def plan_wall_time(accounts: int) -> None:
    print(f"== plan wall time over {accounts} accounts (roles in place), against a naive sequential loop")
    state = {"organization": {"accounts": generated_accounts(accounts)}}
    with Sandbox(state) as world:
        services = get_services()
        settings = services.settings().model_copy(update={"cloudcraft_requests_per_minute": 100_000})
        for account in world.accounts:  # the same state for both: every account already has its role
            world._seed_role(account["id"], {})
        naive = naive_plan(world)
        started = time.perf_counter()
        with count_aws_calls() as aws:
            services.fleet(settings).plan()
        gatehouse = time.perf_counter() - started
        print(f"naive sequential loop: {naive:.2f} s")
        print(f"gatehouse plan:        {gatehouse:.2f} s, {sum(aws.values())} AWS calls")
        print(f"ratio gatehouse / naive: {gatehouse / naive:.2f} (target <= 1.0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000, help="size of the Organization for the wall-time run")
    args = parser.parse_args()
    plan_and_apply(40)
    apply_pace(60, per_minute=20)
    plan_wall_time(args.accounts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
