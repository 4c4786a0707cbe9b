"""Proton connection approvals end to end: events and the sweep through the sandbox's Proton emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatehouse.cli import main
from gatehouse.sandbox import samples
from tests.conftest import SHARED_EVENTS

ROLE = "arn:aws:iam::{}:role/{}"
RULES = {
    "version": 1,
    "mode": "enforce",
    "default_action": "hold",
    "rules": [
        {"name": "no-legacy", "action": "reject", "when": {"environment_names": ["legacy-*"]}},
        {"name": "dev-teams", "action": "accept", "when": {"ous": ["Workloads/Dev"], "environment_names": ["dev-*"]}},
        {"name": "anyone-at-all", "action": "accept"},
    ],
}


def connection(cid: str, account: str, env: str, role_account: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "environmentAccountId": account,
        "environmentName": env,
        "roleArn": ROLE.format(role_account or account, "ProtonEnvironmentRole"),
        "codebuildRoleArn": ROLE.format(role_account or account, "ProtonCodeBuild"),
    }


IDS = [f"0000000{i}-1111-4222-8333-444444444444" for i in range(1, 6)]
STATE: dict[str, Any] = {
    "proton_rules": RULES,
    "proton": {
        "connections": [
            connection(IDS[0], "444444444444", "dev-api"),  # accepted by dev-teams
            connection(IDS[1], "444444444444", "legacy-batch"),  # rejected by no-legacy
            connection(IDS[2], "444444444444", "dev-api", role_account="999999999999"),  # role elsewhere: held
            connection(IDS[3], "888888888888", "dev-api"),  # not a member: held despite anyone-at-all
            {**connection(IDS[4], "444444444444", "dev-web"), "status": "CONNECTED"},  # not pending: untouched
        ]
    },
}


def replay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, state: dict[str, Any], *args: str, code: int = 0
) -> dict[str, Any]:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    assert main(["sandbox", "replay", "--state", str(path), *args]) == code
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def event_file(tmp_path: Path, cid: str) -> str:
    path = tmp_path / f"{cid}.json"
    path.write_text(json.dumps(samples.proton_connection_change(cid)))
    return str(path)


def test_event_and_sweep_decide_every_pending_connection(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = replay(capsys, tmp_path, STATE, event_file(tmp_path, IDS[0]), "--schedule", "proton_sweep")

    statuses = {c["id"]: c["status"] for c in state["proton"]["connections"]}
    assert statuses == {
        IDS[0]: "CONNECTED",
        IDS[1]: "REJECTED",
        IDS[2]: "PENDING",
        IDS[3]: "PENDING",
        IDS[4]: "CONNECTED",
    }
    by_id: dict[str, list[dict[str, Any]]] = {}
    for decision in state["decisions"]:
        by_id.setdefault(decision["id"], []).append(decision)
    assert [(d["decision"], d["rule"]) for d in by_id[IDS[0]]] == [("accept", "dev-teams")]  # swept? no longer pending
    assert by_id[IDS[1]][0]["decision"] == "reject"
    assert by_id[IDS[2]][0]["decision"] == "hold"
    assert by_id[IDS[3]][0]["decision"] == "hold"
    assert IDS[4] not in by_id
    notes = [n for n in state["notifications"] if n["attributes"].get("event_kind") == "proton-connection"]
    assert {n["attributes"]["decision"] for n in notes} == {"accept", "reject", "hold"}
    assert all(n["attributes"]["mode"] == "enforce" for n in notes)


def test_duplicate_events_and_a_racing_sweep_accept_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = replay(capsys, tmp_path, STATE, "--repeat", "3", event_file(tmp_path, IDS[0]), "--schedule", "proton_sweep")
    accepted = [d for d in state["decisions"] if d["id"] == IDS[0]]
    assert [d["result"] for d in accepted].count("accepted") == 1


def test_shadow_mode_decides_and_changes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shadow = {**STATE, "proton_rules": {**RULES, "mode": "shadow"}}
    state = replay(capsys, tmp_path, shadow, "--schedule", "proton_sweep")
    assert {c["status"] for c in state["proton"]["connections"] if c["id"] != IDS[4]} == {"PENDING"}
    assert {d["mode"] for d in state["decisions"]} == {"shadow"}
    assert {d["decision"] for d in state["decisions"]} == {"accept", "reject", "hold"}


def test_missing_rules_hold_everything_and_notify(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    no_rules = {key: value for key, value in STATE.items() if key != "proton_rules"}
    state = replay(capsys, tmp_path, no_rules, "--schedule", "proton_sweep")
    assert {c["status"] for c in state["proton"]["connections"] if c["id"] != IDS[4]} == {"PENDING"}
    assert {d["decision"] for d in state["decisions"]} == {"hold"}
    assert any("does not exist" in (n["message"] or "") for n in state["notifications"])


def test_shared_sample_event_is_handled(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = replay(capsys, tmp_path, STATE, str(SHARED_EVENTS / "proton-connection-status-change.json"))
    [decision] = state["decisions"]
    assert decision["id"] == "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
    assert decision["result"] == "not-found"
    assert all(c["status"] != "CONNECTED" or c["id"] == IDS[4] for c in state["proton"]["connections"])


def test_malformed_proton_event_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    event = samples.proton_connection_change(IDS[0])
    del event["detail"]["id"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(event))
    state = replay(capsys, tmp_path, STATE, str(path), code=1)
    assert state["deliveries"][0]["result"]["result"] == "rejected"
    assert [n["attributes"]["result"] for n in state["notifications"]] == ["rejected"]
    assert "detail.id" in state["errors"][0]["message"]
