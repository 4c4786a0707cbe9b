"""Whole-Organization plan and apply in the sandbox: read-only plans, convergence, drift, duplicates, orphans."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.container import get_services
from chalicelib.fleet.service import Fleet
from chalicelib.planning.plan import FleetPlan
from gatehouse.cli import main
from gatehouse.sandbox.calls import record_aws_calls
from gatehouse.sandbox.world import Sandbox, generated_accounts

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
AWS_WRITES = ("Create", "Put", "Attach", "Detach", "Update", "Delete", "Tag", "Untag")


@contextmanager
def sandbox(state: dict[str, Any]) -> Iterator[Sandbox]:
    with Sandbox(state) as world:
        yield world


def fleet() -> Fleet:
    services = get_services()
    return services.fleet(services.settings())


def actions(plan: FleetPlan) -> dict[str, list[str]]:
    return {p.account.account_id: p.actions() for p in plan.accounts if p.scope.in_scope}


def test_plan_reads_only_then_apply_converges() -> None:
    with sandbox({"organization": {"accounts": generated_accounts(8)}}) as world, record_aws_calls() as ops:
        plan = fleet().plan()
        assert set(map(tuple, actions(plan).values())) == {("create role", "register")}
        assert {r["method"] for r in world.cloudcraft.requests_log()} == {"GET"}
        # The one write is Gatehouse's own: each Cloudcraft request claims its send time from the rate budget.
        assert not [op for op in ops if op.split(":")[1].startswith(AWS_WRITES) and op != "dynamodb:UpdateItem"]
        table = world.client("dynamodb").scan(TableName=os.environ["GATEHOUSE_IDEMPOTENCY_TABLE"])["Items"]
        assert [item["id"]["S"] for item in table] == ["budget#cloudcraft"]
        assert world.roles() == []

        report = fleet().apply(plan, requests_per_minute=20)
        assert len(report.applied) == 8
        assert report.failed == {}
        assert len(world.roles()) == 8
        assert len(world.cloudcraft.accounts()) == 8
        writes = [r for r in world.cloudcraft.requests_log() if r["method"] != "GET"]
        assert [w["method"] for w in writes] == ["POST"] * 8  # exactly one write per account

        again = fleet().plan()
        assert not again.changes
        assert again.summary()["nothing to do"] == 8


def test_plan_uses_three_cloudcraft_calls_whatever_the_size() -> None:
    for size in (3, 12):
        with sandbox(
            {"organization": {"accounts": generated_accounts(size)}, "settings": {"permission_mode": "custom"}}
        ) as world:
            fleet().plan()
            paths = sorted(r["path"] for r in world.cloudcraft.requests_log())
            assert paths == ["/aws/account", "/aws/account/iamParameters", "/aws/account/iamParameters/policy/custom"]


DRIFTED = {
    "organization": {
        "accounts": [
            {"id": "210000000001", "name": "right", "ou": "Prod", "role": {}},
            {"id": "210000000002", "name": "old-key", "ou": "Prod", "role": {"external_id": "rotated-away"}},
            {"id": "210000000003", "name": "stranger", "ou": "Prod", "role": {"trusted_account": "666666666666"}},
            {"id": "210000000004", "name": "admin", "ou": "Prod", "role": {"managed_policies": [READ_ONLY, ADMIN]}},
            {"id": "210000000005", "name": "no-policy", "ou": "Prod", "role": {"managed_policies": []}},
            {"id": "210000000006", "name": "handmade", "ou": "Prod", "role": {"tags": {}}},
        ]
    },
    "cloudcraft": {
        "accounts": [
            {"name": "right (210000000001)", "roleArn": "arn:aws:iam::210000000001:role/cloudcraft", "owned": True},
            {"name": "renamed by hand", "roleArn": "arn:aws:iam::210000000002:role/cloudcraft", "owned": True},
            {"name": "stranger (210000000003)", "roleArn": "arn:aws:iam::210000000003:role/cloudcraft"},
            {"name": "admin (210000000004)", "roleArn": "arn:aws:iam::210000000004:role/cloudcraft"},
            {"name": "admin (210000000004)", "roleArn": "arn:aws:iam::210000000004:role/cloudcraft"},
            {"name": "no-policy (210000000005)", "roleArn": "arn:aws:iam::210000000005:role/cloudcraft"},
            {"name": "handmade (210000000006)", "roleArn": "arn:aws:iam::210000000006:role/cloudcraft"},
        ]
    },
}


def test_each_drift_kind_is_detected_and_repaired() -> None:
    # Pinned: a role trusting another account is repaired only when the settings name Cloudcraft's account
    # (test_hostile_cloudcraft.py shows the principal change held without the pin).
    with sandbox({**DRIFTED, "settings": {"cloudcraft_aws_account_id": "999999999999"}}) as world:
        plan = fleet().plan()
        assert actions(plan) == {
            "210000000001": [],
            "210000000002": ["repair trust (external ID)", "update registration (name)"],
            "210000000003": ["repair trust (principal)"],
            "210000000004": ["repair policy", "delete duplicate registration"],
            "210000000005": ["repair policy"],
            "210000000006": ["adopt role"],
        }
        fleet().apply(plan, requests_per_minute=20)
        assert not fleet().plan().changes
        external_id = world.cloudcraft.iam_parameters["externalId"]
        for role in world.roles():
            assert role["external_id"] == external_id
            assert role["trusted_principal"] == f"arn:aws:iam::{world.cloudcraft.iam_parameters['accountId']}:root"
            assert role["managed_policies"] == [READ_ONLY]
        registered = [a["roleArn"] for a in world.cloudcraft.accounts()]
        assert len(registered) == len(set(registered)) == 6  # the duplicate is gone


def test_external_id_rotation_repairs_every_roles_trust() -> None:
    with sandbox({"organization": {"accounts": generated_accounts(6)}}) as world:
        fleet().apply(fleet().plan(), requests_per_minute=20)
        world.cloudcraft.rotate_external_id("the-new-owners-id")
        get_services()._identity = None  # a new container, or the cache expiring, sees the new ID
        plan = fleet().plan()
        in_scope = [p for p in plan.accounts if p.scope.in_scope]
        assert all(p.actions() == ["repair trust (external ID)"] for p in in_scope)
        fleet().apply(plan, requests_per_minute=20)
        assert {role["external_id"] for role in world.roles()} == {"the-new-owners-id"}
        assert not fleet().plan().changes


def test_orphans_are_deregistered_only_when_owned() -> None:
    state = {
        "organization": {"accounts": [{"id": "220000000001", "name": "member", "ou": "Prod"}]},
        "cloudcraft": {
            "accounts": [
                {"name": "left, ours", "roleArn": "arn:aws:iam::999000000001:role/cloudcraft", "owned": True},
                {"name": "left, someone else's", "roleArn": "arn:aws:iam::999000000002:role/other"},
            ]
        },
    }
    with sandbox(state) as world:
        plan = fleet().plan()
        assert [(o.name, o.action) for o in plan.orphans] == [
            ("left, ours", "deregister orphan"),
            ("left, someone else's", "orphan not owned by Gatehouse: left alone"),
        ]
        fleet().apply(plan, requests_per_minute=20)
        names = sorted(a["name"] for a in world.cloudcraft.accounts())
        assert names == ["left, someone else's", "member (220000000001)"]

    with sandbox({**state, "settings": {"offboarding": "keep"}}) as world:
        plan = fleet().plan()
        assert plan.deregistrations == []


def test_interrupted_apply_converges_without_duplicates() -> None:
    with sandbox({"organization": {"accounts": generated_accounts(10)}}) as world:
        plan = fleet().plan()
        world.cloudcraft.faults.fail_after_commit_next(1)  # a POST lands but its answer is lost
        calls = {"n": 0}

        def interrupt(progress: Any) -> None:
            calls["n"] += 1
            if progress.done == 4:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            fleet().apply(plan, requests_per_minute=20, progress=interrupt)
        assert 0 < len(world.cloudcraft.accounts()) < 10

        second = fleet().plan()
        fleet().apply(second, requests_per_minute=20)
        registered = [a["roleArn"] for a in world.cloudcraft.accounts()]
        assert len(registered) == len(set(registered)) == 10
        assert not fleet().plan().changes


def test_unreachable_account_is_an_error_in_the_plan_not_a_crash() -> None:
    state = {"organization": {"accounts": [{"id": "230000000001", "name": "locked", "access_role": None}]}}
    with sandbox(state):
        [locked] = [p for p in fleet().plan().accounts if p.account.account_id == "230000000001"]
        assert locked.actions()[0].startswith("error: no access role could be assumed")
        assert not locked.changes


def test_cli_plan_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--sandbox", "--accounts", "3", "--json"]) == 2
    plan = json.loads(capsys.readouterr().out)
    assert plan["changes"] is True
    assert plan["summary"]["register"] == 3

    assert main(["apply", "--sandbox", "--accounts", "3", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "Plan after apply: nothing to do." in out


def test_cli_refuses_apply_without_yes_when_not_interactive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["apply", "--sandbox", "--accounts", "2"]) == 2
    assert "--yes" in capsys.readouterr().err


def test_gatehouse_errors_in_plan_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"settings": {"scope_ous": ["ou-nope"]}}))
    assert main(["plan", "--sandbox", "--state", str(state)]) == 2  # refused before the sandbox starts
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"gatehouse: state file {state}: settings: ")
    assert "scope_ous: Value error, 'ou-nope' looks like an OU ID but is not one" in first


def test_replay_seeds_an_organization_of_any_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "replay", "--accounts", "15", "--schedule", "reconcile"]) == 0
    state = json.loads(capsys.readouterr().out)
    [delivery] = state["deliveries"]
    assert delivery["result"]["summary"]["register"] == 15
    assert delivery["result"]["queued"] == 15
