"""Decisions per second of the approval engine: 10,000 requests against 200 rules, with a no-op baseline."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.approvals.engine import ConnectionRequest, Decision, decide
from chalicelib.approvals.rules.compile import RuleSet, parse_ruleset
from chalicelib.approvals.rules.lint import lint
from chalicelib.approvals.rules.schema import RuleSetProblem
from chalicelib.core.models import MemberAccount

MANAGEMENT = "111111111111"
STAGES = ("Prod", "Staging", "Dev")
TEAMS = tuple(f"team{n:02d}" for n in range(25))
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")


def build_organization(rng: random.Random, size: int) -> dict[str, MemberAccount]:
    accounts: dict[str, MemberAccount] = {}
    for n in range(size):
        account_id = f"{200000000000 + n:012d}"
        stage = rng.choice(STAGES)
        team = rng.choice(TEAMS)
        accounts[account_id] = MemberAccount(
            account_id=account_id,
            name=f"{team}-{stage.lower()}-{n}",
            status="ACTIVE" if rng.random() > 0.02 else "SUSPENDED",
            ou_ids=(f"ou-root-{stage.lower():0<8}", f"ou-{stage.lower()[:4]}-{team:0<8}"),
            ou_path=f"Workloads/{stage}/{team}",
            tags={"team": team, "stage": stage.lower(), "cost-center": f"cc-{rng.randrange(40)}"},
        )
    return accounts


def build_rules(rng: random.Random, accounts: list[str], count: int = 200) -> dict[str, Any]:
    """A rule set shaped like a real one: guards first, named accounts, then OU, tag and region rules."""
    rules: list[dict[str, Any]] = [
        {"name": "no-admin-roles", "action": "reject", "when": {"role_names": ["*Admin*", "*admin*"]}},
        {"name": "no-admin-codebuild", "action": "hold", "when": {"codebuild_role_names": ["*Administrator*"]}},
    ]
    n = 0
    while len(rules) < count:
        n += 1
        kind = n % 4
        team = TEAMS[n % len(TEAMS)]
        stage = STAGES[(n // len(TEAMS)) % len(STAGES)]
        if kind == 0:
            rules.append(
                {
                    "name": f"named-{n}",
                    "action": rng.choice(["accept", "reject", "hold"]),
                    "when": {"account_ids": rng.sample(accounts, 3), "environment_names": [f"svc{n}-*"]},
                }
            )
        elif kind == 1:
            rules.append(
                {
                    "name": f"ou-{n}",
                    "action": "hold" if stage == "Prod" else "accept",
                    "when": {
                        "ous": [f"Workloads/{stage}/{team}"],
                        "environment_names": [f"{team}-{stage.lower()}-{n}-*"],
                        "role_names": ["ProtonEnv*", "proton/*"],
                    },
                }
            )
        elif kind == 2:
            rules.append(
                {
                    "name": f"tags-{n}",
                    "action": "accept",
                    "when": {
                        "account_tags": {"team": team, "stage": stage.lower(), "cost-center": f"cc-{n % 40}"},
                        "environment_names": [f"{team}-*-{n}"],
                        "regions": [REGIONS[n % len(REGIONS)]],
                    },
                }
            )
        else:
            rules.append(
                {
                    "name": f"region-{n}",
                    "action": "reject",
                    "when": {"regions": [REGIONS[n % len(REGIONS)]], "environment_names": [f"legacy-{n}-*"]},
                }
            )
    return {"version": 1, "mode": "enforce", "default_action": "hold", "rules": rules[:count]}


def _aimed_at(rng: random.Random, rule: dict[str, Any], by_ou: dict[str, list[str]]) -> tuple[str, str, str] | None:
    """(account, environment name, region) that satisfies `rule`, when the organization has such an account."""
    when = rule["when"]
    if "account_ids" in when:
        return rng.choice(when["account_ids"]), when["environment_names"][0].replace("*", "api"), rng.choice(REGIONS)
    if "ous" in when:
        members = by_ou.get(when["ous"][0])
        if members:
            return rng.choice(members), when["environment_names"][0].replace("*", "web"), rng.choice(REGIONS)
    return None


def build_requests(
    rng: random.Random, organization: dict[str, MemberAccount], rules: list[dict[str, Any]], count: int
) -> list[ConnectionRequest]:
    """Half aimed at a random rule (so first-match depth varies), half random; 10% strangers, 10% foreign roles."""
    ids = list(organization)
    by_ou: dict[str, list[str]] = {}
    for account in organization.values():
        by_ou.setdefault(account.ou_path, []).append(account.account_id)
    requests: list[ConnectionRequest] = []
    for n in range(count):
        roll = rng.random()
        account_id = ids[rng.randrange(len(ids))] if roll < 0.9 else f"{900000000000 + n:012d}"
        member = organization.get(account_id)
        team = member.tags["team"] if member else "stranger"
        stage = member.tags["stage"] if member else "dev"
        environment_name = f"{team}-{stage}-{rng.randrange(300)}-app"
        region = rng.choice(REGIONS)
        aimed = _aimed_at(rng, rng.choice(rules), by_ou) if n % 2 == 0 and roll < 0.8 else None
        if aimed is not None:
            account_id, environment_name, region = aimed
        owner = account_id if roll < 0.8 else rng.choice(ids)
        requests.append(
            ConnectionRequest(
                id=f"{n:08x}-0000-4000-8000-{n:012x}",
                environment_account_id=account_id,
                environment_name=environment_name,
                role_arn=f"arn:aws:iam::{owner}:role/ProtonEnv{n % 7}",
                component_role_arn=f"arn:aws:iam::{account_id}:role/Component" if n % 3 == 0 else None,
                codebuild_role_arn=f"arn:aws:iam::{account_id}:role/service-role/CodeBuild{n % 5}",
                management_account_id=MANAGEMENT,
                region=region,
            )
        )
    return requests


def _noop(
    request: ConnectionRequest, rules: RuleSet | RuleSetProblem, account: MemberAccount | None, this: str
) -> None:
    return None


def run_loop(
    fn: Callable[[ConnectionRequest, RuleSet | RuleSetProblem, MemberAccount | None, str], Decision | None],
    requests: list[ConnectionRequest],
    ruleset: RuleSet,
    lookup: Callable[[str], MemberAccount | None],
) -> float:
    start = time.perf_counter()
    for request in requests:
        fn(request, ruleset, lookup(request.environment_account_id), MANAGEMENT)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per loop; the median is reported")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    organization = build_organization(rng, args.accounts)
    document = build_rules(rng, list(organization), args.rules)
    text = json.dumps(document)
    start = time.perf_counter()
    ruleset = parse_ruleset(text)
    compile_ms = (time.perf_counter() - start) * 1000
    if isinstance(ruleset, RuleSetProblem):
        print(ruleset.describe())
        return 1
    requests = build_requests(rng, organization, document["rules"], args.requests)
    # The service caches Organization look-ups per run; a dict stands in for that cache here.
    lookup = organization.get

    run_loop(decide, requests[:500], ruleset, lookup)  # warm the per-account candidate cache and the CPU
    engine = statistics.median(run_loop(decide, requests, ruleset, lookup) for _ in range(args.repeat))
    baseline = statistics.median(run_loop(_noop, requests, ruleset, lookup) for _ in range(args.repeat))
    single = parse_ruleset(json.dumps({"mode": "enforce", "rules": [{"name": "all", "action": "hold"}]}))
    assert isinstance(single, RuleSet)
    one_rule = statistics.median(run_loop(decide, requests, single, lookup) for _ in range(args.repeat))
    cold = parse_ruleset(text)
    assert isinstance(cold, RuleSet)
    cold_time = run_loop(decide, requests, cold, lookup)

    actions: dict[str, int] = {}
    depth = 0
    for request in requests:
        decision = decide(request, ruleset, lookup(request.environment_account_id), MANAGEMENT)
        key = decision.rule_action + (" by a rule" if decision.rule else " by default")
        key += " -> held by an invariant" if decision.violations else ""
        actions[key] = actions.get(key, 0) + 1
        depth += decision.rule_index or len(ruleset.rules)

    n = len(requests)
    added_us = (engine - baseline) / n * 1e6
    print(
        f"rule set: {len(ruleset.rules)} rules, {len(text) / 1024:.1f} KiB, parsed and compiled in {compile_ms:.1f} ms"
    )
    print(f"lint findings: {len(lint(ruleset))}")
    print(f"requests: {n} against {len(organization)} member accounts")
    print(f"decide:   {n / engine:,.0f} decisions/s, {engine / n * 1e6:.1f} us/decision (median of {args.repeat})")
    print(f"baseline: {n / baseline:,.0f} calls/s of a no-op decide, {baseline / n * 1e6:.2f} us/call")
    print(f"engine adds {added_us:.1f} us/decision (target < 100 us); ratio to baseline {engine / baseline:.1f}x")
    print(f"reference: one catch-all rule costs {one_rule / n * 1e6:.1f} us/decision (invariants, explanation)")
    print(f"first run on a fresh rule set (candidate cache cold): {cold_time / n * 1e6:.1f} us/decision")
    print(f"mean first-match depth: {depth / n:.0f} of {len(ruleset.rules)} rules")
    print("outcomes: " + ", ".join(f"{key} {count}" for key, count in sorted(actions.items())))
    return 0 if added_us < 100 else 2


if __name__ == "__main__":
    raise SystemExit(main())
