"""Nothing Cloudcraft (or whoever answers as it) says makes Gatehouse write something unsafe.

Every hostile answer is served by the loopback Cloudcraft emulator (its `answers` switches), and every path is
driven through the app's own handlers in the sandbox: an arrival event, the reconciliation, the fleet worker,
and the plan/apply the CLI runs. Each test checks that nothing was written and that ops were told.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.container import get_services
from gatehouse.cli import main
from gatehouse.sandbox import samples
from gatehouse.sandbox.cloudcraft_emulator import ADMIN_POLICY
from gatehouse.sandbox.world import MANAGEMENT_ACCOUNT_ID, SECRET_NAME, SETTINGS_PARAMETER, Sandbox

CLOUDCRAFT = "999999999999"  # the emulator's own AWS account
WRITES = ("POST", "PUT", "DELETE")


def cloudcraft_writes(world: Sandbox) -> list[dict[str, Any]]:
    return [r for r in world.cloudcraft.requests_log() if r["method"] in WRITES]


def assumed(world: Sandbox, account_id: str) -> list[str]:
    return [arn for arn, _ in world.moto.gate.calls if f"::{account_id}:" in arn]


@contextmanager
def arrival_world(state: dict[str, Any]) -> Iterator[Sandbox]:
    with Sandbox(state) as world:
        yield world


def assert_arrival_refused(world: Sandbox, account_id: str, *reasons: str) -> None:
    """The arrival wrote nothing anywhere, entered no account, and ops got one failure naming the refusal."""
    delivery = world.deliveries[-1]
    assert delivery.error is None, delivery.error  # reported, not raised into retries and a dead-letter queue
    assert delivery.attempts == 1
    assert delivery.result["outcome"] == "failed"
    assert world.roles() == []
    assert cloudcraft_writes(world) == []
    assert assumed(world, account_id) == []
    [note] = world.notifications()
    assert note["attributes"] == {"event_kind": "account-onboarding", "outcome": "failed", "account_id": account_id}
    for reason in reasons:
        assert reason in note["message"], note["message"]


# --- arrival --------------------------------------------------------------------------------------------


def test_arrival_with_an_admin_policy_writes_no_role_and_notifies_once() -> None:
    state = {
        "settings": {"permission_mode": "custom"},
        "cloudcraft": {"answers": {"policies": {"custom": ADMIN_POLICY}}},
    }
    with arrival_world(state) as world:
        world.deliver(samples.create_account_result("222222222222"))

        assert_arrival_refused(
            world,
            "222222222222",
            "Cloudcraft's custom policy document is refused",
            "Statement[0] (Sid 'Everything') grants '*'",
        )


@pytest.mark.parametrize(
    ("forged", "reason"),
    [
        ({"accountId": MANAGEMENT_ACCOUNT_ID}, "is the Organization's management account"),
        ({"accountId": "333333333333"}, "is an account of this Organization"),  # a member (listed by the directory)
        ({"accountId": "222222222222"}, "is an account of this Organization"),  # the arriving account itself
        ({"accountId": "*"}, "is not a 12-digit AWS account ID"),
        ({"externalId": "   "}, "not a usable external ID"),
        ({"externalId": "x" * 2000}, "not a usable external ID"),
    ],
)
def test_arrival_with_a_forged_trust_answer_writes_nothing(forged: dict[str, str], reason: str) -> None:
    with arrival_world({"cloudcraft": {"answers": {"iam_parameters": forged}}}) as world:
        if forged.get("accountId") == "333333333333":
            get_services().directory.describe("333333333333")  # this container has met that member before
        world.deliver(samples.create_account_result("222222222222"))

        assert_arrival_refused(world, "222222222222", reason)


def test_arrival_with_a_pinned_account_refuses_any_other_answer() -> None:
    with arrival_world({"settings": {"cloudcraft_aws_account_id": "968898580625"}}) as world:
        world.deliver(samples.create_account_result("222222222222"))

        assert_arrival_refused(world, "222222222222", "not the pinned cloudcraft_aws_account_id 968898580625")


def test_arrival_of_an_account_whose_role_trusts_another_account_holds_the_change() -> None:
    state = {"organization": {"accounts": [{"id": "222222222222", "name": "data-platform", "role": {}}]}}
    with arrival_world(state) as world:
        world.cloudcraft.move_aws_account("888888888888")
        before = world.roles()
        world.deliver(samples.create_account_result("222222222222"))

        delivery = world.deliveries[-1]
        assert (delivery.error, delivery.result["outcome"]) == (None, "failed")
        assert world.roles() == before  # still trusting 999999999999, boundary and policies untouched
        assert cloudcraft_writes(world) == []
        [note] = world.notifications()
        assert note["attributes"]["outcome"] == "failed"
        assert (
            "principal change held: the role trusts 999999999999 but Cloudcraft now answers 888888888888"
            in (note["message"])
        )


def test_arrival_with_a_deeply_nested_answer_is_reported_not_dead_lettered() -> None:
    with arrival_world({}) as world:
        world.cloudcraft.answers.nest_next("/aws/account/iamParameters")
        world.deliver(samples.create_account_result("222222222222"))

        assert_arrival_refused(world, "222222222222", "nested deeper than 32 levels")


def test_an_api_key_with_a_line_break_is_refused_without_echoing_it(capfd: pytest.CaptureFixture[str]) -> None:
    with arrival_world({}) as world:
        forged = world.api_key + "\r\nX-Forwarded-Host: elsewhere.example"
        world.client("secretsmanager").put_secret_value(SecretId=SECRET_NAME, SecretString=forged)
        world.new_container()
        world.deliver(samples.create_account_result("222222222222"))
        snapshot = json.dumps(world.snapshot(), default=str)

        assert_arrival_refused(world, "222222222222", "does not hold a usable key", "whitespace")
        assert world.cloudcraft.requests_log() == []
    out, err = capfd.readouterr()
    for where, text in {"output": out + err, "snapshot": snapshot}.items():
        assert world.api_key not in text, f"the API key leaked into {where}"


def test_a_base_url_the_deployment_does_not_allow_is_refused_before_the_key_is_sent() -> None:
    state = {"settings": {"cloudcraft_base_url": "https://api.cloudcraft.co.attacker.example"}}
    with arrival_world(state) as world:
        world.deliver(samples.create_account_result("222222222222"))

        assert_arrival_refused(world, "222222222222", "cloudcraft_base_url", "CloudcraftAllowedHosts")


# --- reconciliation and the fleet worker -----------------------------------------------------------------

ESTABLISHED: dict[str, Any] = {
    "organization": {
        "accounts": [
            {"id": "240000000001", "name": "one", "ou": "Prod", "role": {}},
            {"id": "240000000002", "name": "two", "ou": "Prod", "role": {}},
            {"id": "240000000003", "name": "new", "ou": "Prod"},
        ]
    },
    "cloudcraft": {
        "accounts": [
            {"name": "one (240000000001)", "roleArn": "arn:aws:iam::240000000001:role/cloudcraft", "owned": True},
            {"name": "two (240000000002)", "roleArn": "arn:aws:iam::240000000002:role/cloudcraft", "owned": True},
        ]
    },
}


def principals(world: Sandbox) -> dict[str, str]:
    return {role["account_id"]: role["trusted_principal"] for role in world.roles()}


def test_reconciliation_holds_a_changed_principal_until_the_settings_pin_it() -> None:
    with Sandbox(ESTABLISHED) as world:
        world.cloudcraft.move_aws_account("888888888888")  # a forged answer, or Cloudcraft really moved

        result = world.run_schedule("reconcile")

        # Existing roles are held; the new account may get a role trusting the (validated) answer.
        assert result["outcome"] == "failed"
        assert result["summary"]["principal change held"] == 2
        assert result["queued"] == 1
        [summary] = world.notifications()
        assert summary["attributes"]["outcome"] == "failed"
        assert "Principal changes held; nothing was written for these accounts:" in summary["message"]
        assert "the role trusts 999999999999 but Cloudcraft now answers 888888888888" in summary["message"]
        assert "(2 account(s): 240000000001, 240000000002)" in summary["message"]
        assert sorted(summary["body"]["held"]) == ["240000000001", "240000000002"]
        world.run_worker(for_seconds=300)
        assert principals(world) == {
            "240000000001": f"arn:aws:iam::{CLOUDCRAFT}:root",
            "240000000002": f"arn:aws:iam::{CLOUDCRAFT}:root",
            "240000000003": "arn:aws:iam::888888888888:root",
        }

        # Ops confirm the move by pinning the new account: the next run repairs the held roles.
        settings = {"cloudcraft_base_url": world.cloudcraft_url, "cloudcraft_aws_account_id": "888888888888"}
        world.client("ssm").put_parameter(
            Name=SETTINGS_PARAMETER, Value=json.dumps(settings), Type="String", Overwrite=True
        )
        world.new_container()
        repaired = world.run_schedule("reconcile")
        assert (repaired["outcome"], repaired["queued"]) == ("drift", 2), repaired
        world.drain_queue()
        assert set(principals(world).values()) == {"arn:aws:iam::888888888888:root"}


def test_reconciliation_with_an_admin_policy_refuses_the_whole_organization_without_entering_it() -> None:
    state = {
        **ESTABLISHED,
        "settings": {"permission_mode": "minimal"},
        "cloudcraft": {**ESTABLISHED["cloudcraft"], "answers": {"policies": {"minimal": ADMIN_POLICY}}},
    }
    with Sandbox(state) as world:
        before = world.roles()
        result = world.run_schedule("reconcile")

        assert (result["outcome"], result["queued"]) == ("failed", 0)
        assert result["summary"] == {"refused": 3, "out of scope": 1}  # the management account is never in scope
        assert world.moto.gate.calls == []  # no account was entered
        [summary] = world.notifications()
        assert "Cloudcraft's answer was REFUSED; nothing was written for these accounts:" in summary["message"]
        assert "minimal policy document is refused: Statement[0] (Sid 'Everything') grants '*'" in summary["message"]
        assert summary["message"].count("grants '*'") == 1  # one line for the Organization, not one per account
        assert world.drain_queue() == []
        assert world.roles() == before
        assert cloudcraft_writes(world) == []


def test_worker_refuses_a_principal_the_plan_did_not_check_and_notifies_once_per_run() -> None:
    accounts = [{"id": f"25000000000{i}", "name": f"n{i}", "ou": "Prod"} for i in range(1, 4)]
    with Sandbox({"organization": {"accounts": accounts}}) as world:
        assert world.run_schedule("reconcile")["queued"] == 3
        # Between plan and work, the answer turns to another account (say a member this container never listed).
        world.cloudcraft.answers.forge_iam_parameters(accountId="777777777777")
        world.new_container()

        responses = world.drain_queue()

        assert all(response["batchItemFailures"] == [] for response in responses)  # consumed, not retried
        assert world.roles() == []
        assert cloudcraft_writes(world) == []
        refusals = [n for n in world.notifications() if n["attributes"]["event_kind"] == "account-onboarding"]
        assert len(refusals) == 1
        assert "accountId 777777777777 is not 999999999999, the account every role" in refusals[0]["message"]
        assert refusals[0]["attributes"]["outcome"] == "refused"


def test_worker_refuses_a_policy_that_turned_hostile_after_the_plan() -> None:
    accounts = [{"id": "260000000001", "name": "n1", "ou": "Prod"}]
    with Sandbox({"organization": {"accounts": accounts}, "settings": {"permission_mode": "custom"}}) as world:
        assert world.run_schedule("reconcile")["queued"] == 1
        world.cloudcraft.answers.serve_policy("custom", ADMIN_POLICY)
        world.new_container()

        world.drain_queue()

        assert world.roles() == []
        [refusal] = [n for n in world.notifications() if n["attributes"]["event_kind"] == "account-onboarding"]
        assert "grants '*'" in refusal["message"]


# --- the CLI's plan and apply ----------------------------------------------------------------------------


def test_cli_plan_shows_the_refusal_and_apply_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"cloudcraft": {"answers": {"iam_parameters": {"accountId": MANAGEMENT_ACCOUNT_ID}}}}))

    assert main(["plan", "--sandbox", "--state", str(state)]) == 1
    out = capsys.readouterr().out
    assert "REFUSED: Cloudcraft's answer; nothing will be written" in out
    assert "is the Organization's management account" in out

    assert main(["apply", "--sandbox", "--state", str(state), "--yes"]) == 1
    assert "refused" in capsys.readouterr().out

    with Sandbox(json.loads(state.read_text())) as world:
        services = get_services()
        fleet = services.fleet(services.settings())
        report = fleet.apply(fleet.plan(), requests_per_minute=20)
        assert (report.applied, world.roles(), cloudcraft_writes(world)) == ([], [], [])


# --- Cloudcraft's bodiless successes ---------------------------------------------------------------------


@pytest.mark.parametrize("style", ["204", "empty-200"])
def test_a_put_answered_without_a_body_counts_as_success(style: str) -> None:
    state = {
        "organization": {"accounts": [{"id": "222222222222", "name": "data-platform", "ou": "Prod", "role": {}}]},
        "cloudcraft": {
            "accounts": [{"name": "renamed by hand", "roleArn": "arn:aws:iam::222222222222:role/cloudcraft"}],
            "answers": {"put_reply": style},
        },
    }
    with Sandbox(state) as world:
        world.deliver(samples.create_account_result("222222222222"))

        delivery = world.deliveries[-1]
        assert (delivery.error, delivery.attempts) == (None, 1)
        assert (delivery.result["outcome"], delivery.result["registration"]) == ("repaired", "updated")
        [put] = cloudcraft_writes(world)
        assert (put["method"], put["status"]) == ("PUT", 204 if style == "204" else 200)
        assert [a["name"] for a in world.cloudcraft.accounts()] == ["data-platform (222222222222)"]
        [note] = world.notifications()
        assert note["attributes"]["outcome"] == "repaired"
