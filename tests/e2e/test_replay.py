"""End to end: the shared sample events replayed through the sandbox, as a user would with the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatehouse.cli import main
from gatehouse.sandbox.world import Sandbox
from tests.conftest import SHARED_EVENTS


def replay(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict[str, Any]:
    """The state replay prints; `code`, the exit code expected (1 when an event failed)."""
    exited = main(["sandbox", "replay", *args])
    out = capsys.readouterr().out
    assert exited == code, out
    state: dict[str, Any] = json.loads(out)
    return state


def write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_create_account_result_onboards_the_account(capsys: pytest.CaptureFixture[str]) -> None:
    state = replay(capsys, str(SHARED_EVENTS / "create-account-result.json"))

    [role] = state["roles"]
    [registration] = state["cloudcraft"]["accounts"]
    assert role["account_id"] == "222222222222"
    assert role["role_name"] == "cloudcraft"
    assert role["managed_policies"] == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert role["inline_policies"] == []
    assert role["trusted_principal"].endswith(":root")
    assert role["external_id"]
    assert registration["roleArn"] == "arn:aws:iam::222222222222:role/cloudcraft"
    assert registration["name"] == "data-platform (222222222222)"  # looked up: the event said "****"
    [note] = state["notifications"]
    assert note["attributes"] == {
        "event_kind": "account-onboarding",
        "outcome": "onboarded",
        "account_id": "222222222222",
    }
    assert "data-platform" in note["message"]
    assert state["errors"] == []
    posts = [r for r in state["cloudcraft"]["requests"] if r["method"] == "POST"]
    assert [r["status"] for r in posts] == [201]


def test_control_tower_account_is_reached_through_its_own_access_role(capsys: pytest.CaptureFixture[str]) -> None:
    state = replay(capsys, str(SHARED_EVENTS / "control-tower-create-managed-account.json"))

    assert [r["account_id"] for r in state["roles"]] == ["333333333333"]
    [delivery] = state["deliveries"]
    assert delivery["result"]["access_role"] == "AWSControlTowerExecution"


def test_triple_delivery_gives_one_role_one_registration_one_notification(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = replay(capsys, "--repeat", "3", str(SHARED_EVENTS / "create-account-result.json"))

    assert len(state["roles"]) == 1
    assert len(state["cloudcraft"]["accounts"]) == 1
    assert len(state["notifications"]) == 1
    assert [d["result"]["outcome"] for d in state["deliveries"]] == ["onboarded"] * 3
    assert sum(r["method"] == "POST" for r in state["cloudcraft"]["requests"]) == 1


def test_account_registered_under_another_name_is_not_added_again(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seeded = {
        "cloudcraft": {"accounts": [{"name": "Datadog: data", "roleArn": "arn:aws:iam::222222222222:role/cloudcraft"}]}
    }
    state = replay(
        capsys, "--state", write(tmp_path, "state.json", seeded), str(SHARED_EVENTS / "create-account-result.json")
    )

    [registration] = state["cloudcraft"]["accounts"]
    assert registration["name"] == "data-platform (222222222222)"
    assert not any(r["method"] == "POST" for r in state["cloudcraft"]["requests"])
    assert state["deliveries"][0]["result"]["registration"] == "updated"


def test_failed_creation_only_notifies(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    event = json.loads((SHARED_EVENTS / "create-account-result.json").read_text())
    status = event["detail"]["serviceEventDetails"]["createAccountStatus"]
    status.update(state="FAILED", failureReason="EMAIL_ALREADY_EXISTS")
    del status["accountId"]
    state = replay(capsys, write(tmp_path, "failed.json", event))

    assert state["roles"] == []
    assert state["cloudcraft"]["requests"] == []
    [note] = state["notifications"]
    assert note["attributes"]["outcome"] == "creation-failed"
    assert "EMAIL_ALREADY_EXISTS" in note["message"]


def test_malformed_event_is_reported_in_errors_and_a_notification(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = json.loads((SHARED_EVENTS / "create-account-result.json").read_text())
    del event["detail"]["serviceEventDetails"]["createAccountStatus"]
    state = replay(capsys, write(tmp_path, "bad.json", event), code=1)

    assert state["roles"] == []
    assert [n["attributes"]["outcome"] for n in state["notifications"]] == ["rejected"]
    assert "createAccountStatus" in " | ".join(e["message"] for e in state["errors"])


def test_an_unreadable_event_file_stops_replay_before_the_sandbox_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = str(SHARED_EVENTS / "create-account-result.json")
    (tmp_path / "notjson.json").write_text("{")
    for bad, says in ((str(tmp_path / "notjson.json"), "is not valid JSON"), (str(tmp_path / "gone.json"), "gone")):
        assert main(["sandbox", "replay", good, bad]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # nothing delivered, no state: the sandbox never started
        assert captured.err.startswith("gatehouse: ")
        assert says in captured.err.splitlines()[0]


def test_invalid_settings_write_nothing_and_notify() -> None:
    """The deployed function's side: settings that are invalid in SSM (the CLI refuses such a state file)."""
    seeded = {"settings": {"scope_ous": ["ou-bad"], "cloudcraft_role_nme": "x"}}
    with Sandbox(seeded) as world:
        world.deliver(json.loads((SHARED_EVENTS / "create-account-result.json").read_text()))
        state = world.snapshot()

    assert state["roles"] == []
    assert not [r for r in state["cloudcraft"]["requests"] if r["method"] != "GET"]
    [note] = state["notifications"]
    assert note["attributes"]["outcome"] == "failed"
    assert "scope_ous" in note["message"]
    assert "cloudcraft_role_nme" in note["message"]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"setings": {}}, "setings: unknown key (did you mean 'settings'?)"),
        ({"organisation": {"accounts": []}}, "organisation: unknown key (did you mean 'organization'?)"),
        ({"organization": {"accounts": [{"id": "222222222222", "nmae": "x"}]}}, "organization.accounts[0].nmae"),
        ({"settings": {"cloudcraft_role_nme": "x"}}, "cloudcraft_role_nme"),
        ({"sandbox": {"plan_page_size": 0}}, "sandbox.plan_page_size must be a whole number from 1 to 1000"),
        (  # the shared sample event's ID: not a UUID Proton would accept
            {"proton": {"connections": [{"id": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", "environmentAccountId": "1"}]}},
            "proton.connections[0]: connection id 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111' is not a Proton connection",
        ),
    ],
)
def test_a_state_file_with_a_mistake_costs_exit_2_and_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, document: dict[str, Any], says: str
) -> None:
    path = write(tmp_path, "state.json", document)
    code = main(["sandbox", "replay", "--state", path, str(SHARED_EVENTS / "create-account-result.json")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    first = captured.err.splitlines()[0]
    assert first.startswith(f"gatehouse: state file {path}: ")
    assert says in first


START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the sandbox clock's start, pinned: ages are exact


def fresh(event_file: Path, tmp_path: Path, **age: float) -> str:
    """The sample event, re-dated to `age` before the sandbox starts (the handler gives up on accounts refusing
    for too long)."""
    event = json.loads(event_file.read_text())
    when = (START - timedelta(**age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["time"] = event["detail"]["eventTime"] = when
    return write(tmp_path, "fresh.json", event)


REFUSING = {
    "organization": {"accounts": [{"id": "222222222222", "name": "data-platform", "refuse_assume_role": 16}]},
    "sandbox": {"eventbridge_retries": 1, "start": START.isoformat()},
}


def test_fresh_account_refusing_assume_role_waits_in_the_work_queue_then_is_onboarded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = fresh(SHARED_EVENTS / "create-account-result.json", tmp_path, minutes=2)
    state = replay(capsys, "--state", write(tmp_path, "state.json", REFUSING), "--work-minutes", "10", event)

    [delivery] = state["deliveries"]
    # 4 attempts x 2 role names in the invocation are refused (settings.assume_role_attempts): the handler hands
    # the wait to a delayed work item instead of failing; the fleet worker's first take is refused 8 more times
    # and queues the next wait; its second take gets through.
    assert delivery["attempts"] == 1
    assert delivery["error"] is None
    assert delivery["result"]["outcome"] == "waiting"
    assert len(state["roles"]) == 1
    assert [n["attributes"]["outcome"] for n in state["notifications"]] == ["onboarded"]
    assert "access role wait" in state["notifications"][0]["message"]


def test_account_refusing_long_after_the_event_is_reported_failed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = fresh(SHARED_EVENTS / "create-account-result.json", tmp_path, hours=2)
    state = replay(capsys, "--state", write(tmp_path, "state.json", REFUSING), event, code=1)

    [delivery] = state["deliveries"]
    assert delivery["attempts"] == 1
    assert delivery["result"]["outcome"] == "failed"
    assert "gave up" in delivery["result"]["reason"]
    assert state["roles"] == []
    assert state["notifications"][0]["attributes"]["outcome"] == "failed"


def test_rate_limited_request_waits_and_succeeds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    seeded = {"cloudcraft": {"faults": {"rate_limit_next": 1, "rate_limit_retry_after": 7}}}
    state = replay(
        capsys, "--state", write(tmp_path, "state.json", seeded), str(SHARED_EVENTS / "create-account-result.json")
    )

    statuses = [r["status"] for r in state["cloudcraft"]["requests"]]
    assert statuses[0] == 429
    assert 201 in statuses
    assert state["deliveries"][0]["result"]["outcome"] == "onboarded"


def test_concurrent_duplicate_deliveries_give_one_role_and_one_registration() -> None:
    import threading

    from gatehouse.sandbox import samples
    from gatehouse.sandbox.world import Sandbox

    event = samples.create_account_result("222222222222")
    # A retry comes after Lambda's delay (1, then 2 minutes), by when the invocation it collided with has ended.
    with Sandbox() as world:
        threads = [threading.Thread(target=world.deliver, args=(event,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)  # a hang guard
            assert not thread.is_alive()
        # The two that found the first still running raised (as Lambda would), were retried, and got its result.
        assert [d.result["outcome"] for d in world.deliveries] == ["onboarded"] * 3
        assert len(world.roles()) == 1
        assert len(world.cloudcraft.accounts()) == 1
        assert sum(r["method"] == "POST" for r in world.cloudcraft.requests_log()) == 1
        assert len(world.notifications()) == 1


def test_an_update_keeps_team_access_gatehouse_does_not_manage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seeded = {
        "cloudcraft": {
            "accounts": [
                {
                    "name": "named by hand",
                    "roleArn": "arn:aws:iam::222222222222:role/cloudcraft",
                    "readAccess": ["team/readers"],
                    "writeAccess": ["team/writers"],
                }
            ]
        }
    }
    state = replay(
        capsys, "--state", write(tmp_path, "state.json", seeded), str(SHARED_EVENTS / "create-account-result.json")
    )
    [registration] = state["cloudcraft"]["accounts"]
    assert registration["name"] == "data-platform (222222222222)"  # renamed by the PUT ...
    assert registration["readAccess"] == ["team/readers"]  # ... which kept what settings do not manage
    assert registration["writeAccess"] == ["team/writers"]
