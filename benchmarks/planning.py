"""Planning cost against existing registrations: accounts x registrations before, accounts + registrations now.

Run: .venv/bin/python benchmarks/planning.py   (or `make bench`). Pure CPU, offline: the planner alone (no AWS,
no Cloudcraft), with half the accounts already registered, every role in place.

For 1,000 / 5,000 / 10,000 accounts: CPU time per account planning against Cloudcraft's list indexed once per
plan (what Fleet.plan does), and, in the same run, against the bare list (each account scans every registration,
as before). The baseline is skipped above 5,000 accounts unless --baseline-all (it grows quadratically).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.core.models import MemberAccount
from chalicelib.core.settings import parse_settings
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import CloudcraftIdentity, MemberView, desired_role, plan_account
from chalicelib.planning.registration import RegistrationIndex
from chalicelib.planning.role import OWNER_TAG, OWNER_TAG_VALUE, ObservedRole

SETTINGS = parse_settings({})
IDENTITY = CloudcraftIdentity("999999999999", "ext-bench-1")


@dataclass(frozen=True)
class Reg:
    id: str
    name: str
    role_arn: str
    read_access: tuple[str, ...] | None = None
    write_access: tuple[str, ...] | None = None
    created_at: str | None = None

    @property
    def aws_account_id(self) -> str | None:
        return self.role_arn.split(":")[4]


def world(size: int) -> tuple[list[MemberAccount], list[Reg], OrganizationIds, ObservedRole]:
    accounts = [MemberAccount(f"{100000000000 + n}", f"account-{n}") for n in range(size)]
    registrations = [
        Reg(f"cc-{n}", f"{a.name} ({a.account_id})", f"arn:aws:iam::{a.account_id}:role/cloudcraft")
        for n, a in enumerate(accounts[::2])
    ]
    organization = OrganizationIds("123456789012", frozenset(a.account_id for a in accounts))
    spec = desired_role(SETTINGS, IDENTITY, organization)
    role = ObservedRole(
        spec.role_name,
        spec.trust_policy(),
        3600,
        spec.managed_policy_arns,
        {},
        {OWNER_TAG: OWNER_TAG_VALUE},
        permissions_boundary=spec.permissions_boundary,
    )
    return accounts, registrations, organization, role


def plan_all(size: int, *, indexed: bool) -> float:
    accounts, registrations, organization, role = world(size)
    started = time.process_time()
    known = RegistrationIndex(registrations) if indexed else registrations
    for account in accounts:
        plan_account(
            account,
            SETTINGS,
            IDENTITY,
            MemberView("OrganizationAccountAccessRole", role),
            registrations=known,
            owned={},
            organization=organization,
        )
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-all", action="store_true", help="run the quadratic baseline at 10,000 too")
    args = parser.parse_args()
    print("planning against Cloudcraft's list, half the accounts registered (CPU time)")
    for size in (1_000, 5_000, 10_000):
        ours = plan_all(size, indexed=True)
        line = f"  {size:6,} accounts  indexed {ours:6.2f} s = {ours / size * 1e6:6.1f} us/account"
        if size <= 5_000 or args.baseline_all:
            base = plan_all(size, indexed=False)
            line += f"   bare list {base:7.2f} s = {base / size * 1e6:7.1f} us/account   ratio {ours / base:.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
