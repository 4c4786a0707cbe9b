"""Onboarding one account, against in-memory fakes: every outcome, what is written, and the one notification."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.adapters.cloudcraft.errors import (
    CloudcraftAuthError,
    CloudcraftBadRequest,
    CloudcraftConnectionError,
    CloudcraftServerError,
)
from chalicelib.container import set_services
from chalicelib.core.errors import AccessRoleUnavailableError, AwsError, ConfigurationError, GatehouseError
from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import NotificationError, notify_safely
from chalicelib.core.settings import Settings, parse_settings
from chalicelib.onboarding.outcome import OFFBOARDING_KIND, AccountOutcome, outcome_notification
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import CloudcraftIdentity, desired_role
from chalicelib.planning.role import INLINE_POLICY_NAME
from chalicelib.planning.scope import management_refusal
from tests.fakes import FakeDirectory, FakeNotifier, FakeServices, LambdaContextStub, role_as_wanted

ACCOUNT_ID = "222222222222"
ACCOUNT = MemberAccount(ACCOUNT_ID, "data", ou_ids=("ou-ab12-11111111",), ou_path="Workloads/Dev")
IDENTITY = CloudcraftIdentity("999999999999", "ext-1")
NAME = "data (222222222222)"
ROLE_ARN = "arn:aws:iam::222222222222:role/cloudcraft"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}


def world_with(settings: Settings | None = None, *members: MemberAccount) -> FakeServices:
    return FakeServices(
        settings or parse_settings({"scope_ous": ["Workloads"]}),
        identity_value=IDENTITY,
        directory=FakeDirectory(*(members or (ACCOUNT,))),
    )


def onboard(world: FakeServices, account_id: str = ACCOUNT_ID, **kwargs: Any) -> AccountOutcome:
    result: AccountOutcome = world.onboarding(world.settings_document).onboard(account_id, **kwargs)
    return result


def wanted_role(world: FakeServices, **changes: Any) -> None:
    spec = desired_role(world.settings_document, world.cloudcraft_identity(world.settings_document), OrganizationIds())
    world.members.put(ACCOUNT_ID, role_as_wanted(spec, **changes))


def nothing_written(world: FakeServices) -> bool:
    return not world.cloudcraft_client.writes and not world.ledger.writes and not world.members.writes


# --- who is not onboarded --------------------------------------------------------------------------------


def test_an_account_outside_the_organization_fails_without_reading_anything() -> None:
    world = world_with()

    result = onboard(world, "777777777777", trigger="CreateAccountResult event e-1")

    assert (result.outcome, result.reason) == ("failed", "the account is not a member of this Organization")
    assert result.trigger == "CreateAccountResult event e-1"
    assert world.members.sessions == []
    assert world.cloudcraft_client.calls == []


@pytest.mark.parametrize(
    ("account", "settings", "reason"),
    [
        (
            MemberAccount(ACCOUNT_ID, "closing", status="SUSPENDED"),
            {},
            "the account's status is SUSPENDED, not ACTIVE",
        ),
        (ACCOUNT, {"exclude_accounts": [ACCOUNT_ID]}, "the account is listed in settings.exclude_accounts"),
        (
            MemberAccount(ACCOUNT_ID, "lab", tags={"gatehouse:opt-out": "true"}),
            {},
            "the account opts out with the tag gatehouse:opt-out=true",
        ),
        (
            MemberAccount(ACCOUNT_ID, "lab", ou_path="Sandbox"),
            {"scope_ous": ["Workloads"]},
            "the account sits in Sandbox, outside settings.scope_ous",
        ),
        (
            MemberAccount(ACCOUNT_ID, "top"),
            {"scope_ous": ["Workloads"]},
            "the account sits in the root, outside settings.scope_ous",
        ),
    ],
    ids=["suspended", "excluded", "opted-out", "outside-scope", "at-the-root"],
)
def test_an_out_of_scope_account_is_skipped_with_the_reason_and_nothing_read(
    account: MemberAccount, settings: dict[str, Any], reason: str
) -> None:
    world = world_with(parse_settings(settings), account)

    result = onboard(world)

    assert (result.outcome, result.reason) == ("skipped", reason)
    assert result.account_name == account.name
    assert world.members.sessions == []
    assert world.cloudcraft_client.calls == []
    assert world.ledger.writes == []


def test_the_management_account_is_refused_with_the_reason_and_nothing_read() -> None:
    world = world_with(parse_settings({}), MemberAccount(ACCOUNT_ID, "root", is_management=True))

    result = onboard(world)

    assert (result.outcome, result.reason) == ("refused", management_refusal(ACCOUNT_ID))
    assert world.members.sessions == []
    assert world.cloudcraft_client.calls == []
    assert world.ledger.writes == []


# --- onboarded -------------------------------------------------------------------------------------------


def test_a_new_account_gets_a_role_and_a_registration() -> None:
    world = world_with()

    result = onboard(world, trigger="t")

    assert result.outcome == "onboarded"
    assert result.reason == "create role; register"
    assert (result.account_name, result.ou_path) == ("data", "Workloads/Dev")
    assert (result.role_arn, result.access_role) == (ROLE_ARN, "OrganizationAccountAccessRole")
    assert result.role_changes == ["create-role"]
    assert (result.registration, result.cloudcraft_id) == ("created", "cc-1")
    role = world.members.role(ACCOUNT_ID)
    assert role is not None
    assert role.owned
    assert [(r.name, r.role_arn) for r in world.cloudcraft_client.of(ACCOUNT_ID)] == [(NAME, ROLE_ARN)]
    assert world.ledger.records == {ACCOUNT_ID: "cc-1"}


def test_onboarding_twice_changes_nothing_the_second_time() -> None:
    world = world_with()
    onboard(world)
    writes = (len(world.cloudcraft_client.writes), len(world.members.writes))

    again = onboard(world)

    assert (again.outcome, again.reason) == ("unchanged", "role and registration already in order")
    assert (again.registration, again.cloudcraft_id) == ("unchanged", "cc-1")
    assert (len(world.cloudcraft_client.writes), len(world.members.writes)) == writes


def test_a_role_in_order_without_a_registration_is_onboarded_by_registering() -> None:
    world = world_with()
    wanted_role(world)

    result = onboard(world)

    assert (result.outcome, result.reason) == ("onboarded", "register")
    assert result.role_changes == []
    assert world.members.writes == []


def test_a_registered_account_without_its_role_is_onboarded_by_creating_the_role() -> None:
    world = world_with()
    mine = world.cloudcraft_client.add(ACCOUNT_ID, name=NAME)

    result = onboard(world)

    assert (result.outcome, result.reason) == ("onboarded", "create role")
    assert (result.registration, result.cloudcraft_id) == ("unchanged", mine.id)
    assert world.cloudcraft_client.writes == []
    assert world.ledger.records == {ACCOUNT_ID: mine.id}


def test_an_account_registered_under_another_name_is_renamed_not_registered_again() -> None:
    world = world_with()
    wanted_role(world)
    old = world.cloudcraft_client.add(ACCOUNT_ID, name="added by hand")

    result = onboard(world)

    assert (result.outcome, result.reason) == ("repaired", "update registration (name)")
    assert (result.registration, result.cloudcraft_id) == ("updated", old.id)
    assert [call[0] for call in world.cloudcraft_client.writes] == ["update"]


# --- repaired --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drift", "reason", "changes"),
    [
        ({"trust_policy": {"Statement": []}}, "repair trust (principal); repair trust (external ID)", ["update-trust"]),
        ({"max_session_seconds": 43200}, "repair policy", ["set-max-session 3600"]),
        ({"managed_policy_arns": ()}, "repair policy", ["attach-policy arn:aws:iam::aws:policy/ReadOnlyAccess"]),
        ({"tags": {}}, "adopt role", ["tag-owner"]),
    ],
    ids=["trust", "max-session", "policy-detached", "untagged"],
)
def test_a_drifted_role_is_repaired_in_place(drift: dict[str, Any], reason: str, changes: list[str]) -> None:
    world = world_with()
    wanted_role(world, **drift)
    world.cloudcraft_client.add(ACCOUNT_ID, name=NAME)

    result = onboard(world)

    assert (result.outcome, result.reason) == ("repaired", reason)
    assert result.role_changes == changes
    assert world.cloudcraft_client.writes == []
    assert onboard(world).outcome == "unchanged"


def test_a_rotated_external_id_repairs_the_trust() -> None:
    world = world_with()
    wanted_role(world)
    world.cloudcraft_client.add(ACCOUNT_ID, name=NAME)
    world.identity_value = CloudcraftIdentity("999999999999", "ext-2")

    result = onboard(world)

    assert (result.outcome, result.reason) == ("repaired", "repair trust (external ID)")
    role = world.members.role(ACCOUNT_ID)
    assert role is not None
    assert role.trust_policy["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] == "ext-2"


def test_in_custom_mode_an_edited_inline_policy_is_put_back() -> None:
    world = world_with(parse_settings({"permission_mode": "custom"}))
    world.identity_value = CloudcraftIdentity("999999999999", "ext-1", POLICY)
    wanted_role(world, inline_policies={INLINE_POLICY_NAME: {"Statement": []}})
    world.cloudcraft_client.add(ACCOUNT_ID, name=NAME)

    result = onboard(world)

    assert (result.outcome, result.role_changes) == ("repaired", [f"put-inline-policy {INLINE_POLICY_NAME}"])
    role = world.members.role(ACCOUNT_ID)
    assert role is not None
    assert role.inline_policies == {INLINE_POLICY_NAME: POLICY}


# --- unchanged -------------------------------------------------------------------------------------------


def test_an_account_in_order_is_unchanged_and_its_registration_adopted() -> None:
    world = world_with()
    wanted_role(world)
    mine = world.cloudcraft_client.add(ACCOUNT_ID, name=NAME)

    result = onboard(world)

    assert (result.outcome, result.reason) == ("unchanged", "role and registration already in order")
    assert world.cloudcraft_client.writes == []
    assert world.members.writes == []
    assert world.ledger.writes == [("record", ACCOUNT_ID, mine.id)]


def test_registrations_of_the_account_under_other_roles_are_named_and_left_alone() -> None:
    world = world_with()
    wanted_role(world)
    world.cloudcraft_client.add(ACCOUNT_ID, name=NAME)
    foreign = world.cloudcraft_client.add(ACCOUNT_ID, name="via Datadog", role_name="DatadogRole")

    result = onboard(world)

    assert result.outcome == "unchanged"
    assert result.reason.endswith(f"other registrations of this account left alone: {foreign.id}")
    assert foreign.id in world.cloudcraft_client.accounts


def test_a_duplicate_gatehouse_owns_is_deleted_whatever_its_role() -> None:
    world = world_with()
    wanted_role(world)
    kept = world.cloudcraft_client.add(ACCOUNT_ID, name=NAME)
    owned = world.cloudcraft_client.add(ACCOUNT_ID, name="old", role_name="OldRole")
    world.ledger.records[ACCOUNT_ID] = owned.id

    result = onboard(world)

    assert (result.outcome, result.reason) == ("repaired", "delete duplicate registration")
    assert set(world.cloudcraft_client.accounts) == {kept.id}
    assert world.ledger.records == {ACCOUNT_ID: kept.id}


# --- a fresh account refusing AssumeRole -----------------------------------------------------------------


def test_a_refusal_soon_after_the_event_is_handed_back_for_a_retry() -> None:
    world = world_with()
    world.members.refuse.add(ACCOUNT_ID)
    event_time = world.clock.now() - timedelta(minutes=59)

    with pytest.raises(AccessRoleUnavailableError):
        onboard(world, event_time=event_time)

    assert world.clock.sleeps == []  # the wait is EventBridge's, not a sleep in Lambda
    assert nothing_written(world)


def test_a_refusal_without_an_event_time_is_handed_back() -> None:
    world = world_with()
    world.members.refuse.add(ACCOUNT_ID)

    with pytest.raises(AccessRoleUnavailableError):
        onboard(world)


@pytest.mark.parametrize("minutes", [60, 61, 600])
def test_a_refusal_long_after_the_event_fails_and_says_when_it_gave_up(minutes: int) -> None:
    world = world_with()
    world.members.refuse.add(ACCOUNT_ID)
    event_time = world.clock.now() - timedelta(minutes=minutes)

    result = onboard(world, event_time=event_time)

    assert result.outcome == "failed"
    assert result.reason.endswith(f"(gave up {minutes} minutes after the event)")
    assert f"no access role could be assumed in {ACCOUNT_ID}" in result.reason
    assert nothing_written(world)


def test_give_up_after_minutes_sets_the_limit() -> None:
    world = world_with(parse_settings({"give_up_after_minutes": 5}))
    world.members.refuse.add(ACCOUNT_ID)

    assert onboard(world, event_time=world.clock.now() - timedelta(minutes=5)).outcome == "failed"
    with pytest.raises(AccessRoleUnavailableError):
        onboard(world, event_time=world.clock.now() - timedelta(minutes=4))


# --- nothing written when reading or planning fails ------------------------------------------------------


def test_an_unreadable_role_raises_before_anything_is_written() -> None:
    world = world_with()
    world.members.script.fail_next(f"read:{ACCOUNT_ID}", AwsError("iam:GetRole throttled", "Throttling"))

    with pytest.raises(AwsError):
        onboard(world)

    assert nothing_written(world)


def test_an_unreadable_cloudcraft_list_raises_before_anything_is_written() -> None:
    world = world_with()
    world.cloudcraft_client.script.fail_next("list", CloudcraftAuthError("401", status=401))

    with pytest.raises(CloudcraftAuthError):
        onboard(world)

    assert nothing_written(world)


def test_custom_mode_without_cloudcraft_policy_refuses_to_plan_and_writes_nothing() -> None:
    world = world_with(parse_settings({"permission_mode": "custom"}))  # the identity carries no policy

    result = onboard(world)

    assert result.outcome == "failed"
    assert "Cloudcraft's custom policy document is refused: Cloudcraft sent none" in result.reason
    assert nothing_written(world)
    assert world.members.sessions == []  # refused before entering the account


def test_registering_a_new_role_waits_out_cloudcraft_propagation_on_the_clock() -> None:
    world = world_with()
    world.cloudcraft_client.script.fail_next("create", *[CloudcraftBadRequest("not yet", status=400)] * 2)

    result = onboard(world)

    assert (result.outcome, result.registration) == ("onboarded", "created")
    assert world.clock.sleeps == [5.0, 10.0]


# --- the handler's job: one outcome, one notification ----------------------------------------------------


def run(world: FakeServices, **kwargs: Any) -> dict[str, Any]:
    set_services(world)  # type: ignore[arg-type]
    options: dict[str, Any] = {
        "trigger": "CreateAccountResult event e-1",
        "event_id": "e-1",
        "event_time": None,
        "context": None,
    }
    options.update(kwargs)
    return handlers.onboard(world, ACCOUNT_ID, **options)  # type: ignore[arg-type]


def test_onboarding_notifies_once_with_the_outcome_and_its_details() -> None:
    world = world_with()

    outcome = run(world)

    assert outcome["outcome"] == "onboarded"
    [note] = world.notifier.sent
    assert note.subject == f"Gatehouse: data ({ACCOUNT_ID}) connected to Cloudcraft"
    assert note.attributes == {"event_kind": "account-onboarding", "outcome": "onboarded", "account_id": ACCOUNT_ID}
    assert note.body == outcome
    assert f"Role: {ROLE_ARN} (assumed via OrganizationAccountAccessRole)" in note.text
    assert "Cloudcraft account: cc-1 (created)" in note.text
    assert "Trigger: CreateAccountResult event e-1" in note.text
    assert "OU: Workloads/Dev" in note.text


def test_duplicate_deliveries_onboard_and_notify_once() -> None:
    world = world_with()

    first = run(world)
    second = run(world, trigger="CreateAccountResult event e-2")

    assert second == first
    assert len(world.notifier.sent) == 1
    assert [call[0] for call in world.cloudcraft_client.writes] == ["create"]
    assert world.once.runs == [f"onboard#{ACCOUNT_ID}"]


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda w: w.cloudcraft_client.script.fail_next("list", CloudcraftAuthError("401 bad key")), "401 bad key"),
        (lambda w: w.cloudcraft_client.script.fail_next("list", CloudcraftConnectionError("no answer")), "no answer"),
        (lambda w: w.cloudcraft_client.script.fail_next("create", CloudcraftServerError("502 gateway")), "502 gateway"),
        (lambda w: w.members.script.fail_next(f"apply:{ACCOUNT_ID}", AwsError("AccessDenied")), "AccessDenied"),
        (
            lambda w: w.directory.script.fail_next("describe", AwsError("organizations throttled")),
            "organizations throttled",
        ),
    ],
    ids=["cloudcraft-auth", "cloudcraft-network", "cloudcraft-server", "iam", "organizations"],
)
def test_each_kind_of_failure_is_one_failed_notification(break_it: Any, reason: str) -> None:
    world = world_with()
    break_it(world)

    outcome = run(world)

    assert (outcome["outcome"], outcome["reason"]) == ("failed", reason)
    [note] = world.notifier.sent
    assert note.attributes["outcome"] == "failed"
    assert note.subject == f"Gatehouse: {ACCOUNT_ID} onboarding FAILED"
    assert f"Why: {outcome['reason']}" in note.text
    assert "Nothing further was changed." in note.text
    assert world.ledger.writes == []


def test_a_failure_is_told_once_per_event_and_a_redelivery_tries_again() -> None:
    world = world_with()
    world.cloudcraft_client.script.fail_next("list", CloudcraftAuthError("401"))
    world.cloudcraft_client.script.fail_next("list", CloudcraftAuthError("401"))

    run(world)
    again = run(world)  # the same event delivered again: tried again, failed again, not told twice

    assert again["outcome"] == "failed"
    assert len(world.notifier.sent) == 1

    later = run(world, event_id="e-2", trigger="MoveAccount event e-2")  # the failure did not block the account

    assert later["outcome"] == "onboarded"
    assert [n.attributes["outcome"] for n in world.notifier.sent] == ["failed", "onboarded"]


def test_invalid_settings_fail_before_anything_is_read() -> None:
    world = world_with()
    world.settings_error = ConfigurationError("settings parameter /gatehouse/dev/settings is invalid: scope_ous.0")

    outcome = run(world)

    assert outcome["outcome"] == "failed"
    assert outcome["reason"].endswith("Nothing was changed.")
    assert world.directory.described == []
    assert world.once.runs == []
    assert len(world.notifier.sent) == 1


def test_a_refusing_access_role_hands_the_wait_to_a_delayed_work_item_unnotified() -> None:
    world = world_with()
    world.members.refuse.add(ACCOUNT_ID)
    first_seen = world.clock.now()

    waiting = run(world, event_time=first_seen)
    again = run(world, event_time=first_seen)  # a second event of the account: no second chain of waits

    assert (waiting["outcome"], waiting["retry_in_seconds"]) == ("waiting", 60)
    assert again == waiting
    [(item, delay)] = world.work_queue.delayed
    assert item == {"action": "onboard", "account_id": ACCOUNT_ID, "first_seen": first_seen.isoformat()}
    assert delay == 60
    assert world.notifier.sent == []
    assert nothing_written(world)

    world.members.refuse.clear()
    resumed = handlers.onboard(
        world,  # type: ignore[arg-type]
        ACCOUNT_ID,
        trigger="access role wait",
        event_id="access-role-wait",
        event_time=first_seen,
        context=None,
        resumed=True,
    )

    assert resumed["outcome"] == "onboarded"
    assert len(world.notifier.sent) == 1


def test_a_notification_that_cannot_be_published_leaves_the_job_undone_for_the_retry() -> None:
    world = world_with()
    world.notifier.error = AwsError("sns:Publish throttled")

    with pytest.raises(NotificationError):
        run(world)

    assert world.once.done == {}  # not recorded as done: Lambda's retry runs it again
    assert world.ledger.records == {ACCOUNT_ID: "cc-1"}
    assert len(world.clock.sleeps) == 2  # three attempts, backed off on the clock

    world.notifier.error = None
    retried = run(world)

    assert retried["outcome"] == "unchanged"  # the retry finds the work done and says so
    assert [call[0] for call in world.cloudcraft_client.writes] == ["create"]
    assert len(world.notifier.sent) == 1


def test_an_unexpected_error_is_not_turned_into_a_failed_outcome() -> None:
    world = world_with()
    world.cloudcraft_client.script.fail_next("list", RuntimeError("bug"))

    with pytest.raises(RuntimeError):
        run(world)

    assert world.notifier.sent == []
    assert world.once.done == {}


# --- the notification itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "headline", "nothing_changed"),
    [
        ("onboarded", "connected to Cloudcraft", False),
        ("repaired", "Cloudcraft connection repaired", False),
        ("unchanged", "Cloudcraft connection already in order", False),
        ("skipped", "skipped (out of scope)", False),
        ("failed", "onboarding FAILED", True),
        ("creation-failed", "account creation FAILED", True),
        ("rejected", "event REJECTED (malformed)", True),
        ("offboarded", "disconnected from Cloudcraft", False),
        ("kept", "left the scope; Cloudcraft connection kept", False),
    ],
)
def test_every_outcome_has_its_headline(outcome: Any, headline: str, nothing_changed: bool) -> None:
    note = outcome_notification(AccountOutcome(ACCOUNT_ID, outcome, "why", account_name="data"))

    assert note.subject == f"Gatehouse: data ({ACCOUNT_ID}) {headline}"
    assert note.attributes["outcome"] == outcome
    assert ("Nothing further was changed." in note.text) is nothing_changed


def test_a_failed_offboarding_says_offboarding() -> None:
    note = outcome_notification(AccountOutcome(ACCOUNT_ID, "failed", "429", event_kind=OFFBOARDING_KIND))

    assert note.subject == f"Gatehouse: {ACCOUNT_ID} offboarding FAILED"
    assert note.attributes["event_kind"] == OFFBOARDING_KIND


def test_a_notification_leaves_out_what_the_outcome_does_not_have() -> None:
    note = outcome_notification(AccountOutcome(ACCOUNT_ID, "skipped", "why"))

    assert note.subject == f"Gatehouse: {ACCOUNT_ID} skipped (out of scope)"
    assert not any(
        line.startswith(("OU:", "Role:", "Cloudcraft account:", "Trigger:")) for line in note.text.split("\n")
    )


def test_notify_safely_reports_a_publish_failure_instead_of_raising() -> None:
    notifier = FakeNotifier()
    note = outcome_notification(AccountOutcome(ACCOUNT_ID, "onboarded", "why"))

    assert notify_safely(notifier, note) is True
    notifier.error = GatehouseError("sns down")
    assert notify_safely(notifier, note) is False
    assert notifier.sent == [note]


# --- the arrival handler: creation-failed and rejected ---------------------------------------------------


def create_account_result(state: str, **status: Any) -> dict[str, Any]:
    return {
        "id": "e-42",
        "detail-type": "AWS Service Event via CloudTrail",
        "source": "aws.organizations",
        "time": "2030-01-01T00:00:00Z",
        "detail": {
            "eventName": "CreateAccountResult",
            "serviceEventDetails": {"createAccountStatus": {"state": state, **status}},
        },
    }


def test_a_failed_account_creation_only_notifies() -> None:
    world = world_with()
    set_services(world)  # type: ignore[arg-type]
    event = create_account_result("FAILED", accountName="data", failureReason="EMAIL_ALREADY_EXISTS")

    outcome = handlers.handle_account_arrival(event, LambdaContextStub())

    assert (outcome["outcome"], outcome["reason"]) == (
        "creation-failed",
        "CreateAccountResult reported state FAILED: EMAIL_ALREADY_EXISTS",
    )
    [note] = world.notifier.sent
    assert note.subject == "Gatehouse: data account creation FAILED"
    assert note.attributes == {"event_kind": "account-onboarding", "outcome": "creation-failed", "account_id": ""}
    assert world.directory.described == []
    assert world.cloudcraft_client.calls == []


def test_a_malformed_arrival_is_rejected_and_notified() -> None:
    world = world_with()
    set_services(world)  # type: ignore[arg-type]

    outcome = handlers.handle_account_arrival({"id": "e-7", "detail": {}}, LambdaContextStub())

    assert outcome["outcome"] == "rejected"
    assert outcome["reason"] == "malformed event e-7: the event has no 'detail.eventName'"
    [note] = world.notifier.sent
    assert note.attributes["outcome"] == "rejected"
    assert world.directory.described == []


def test_a_successful_creation_event_onboards_the_account_it_names() -> None:
    world = world_with()
    set_services(world)  # type: ignore[arg-type]
    event = create_account_result("SUCCEEDED", accountId=ACCOUNT_ID, accountName="data")

    outcome = handlers.handle_account_arrival(event, LambdaContextStub())

    assert (outcome["outcome"], outcome["trigger"]) == ("onboarded", "CreateAccountResult event e-42")
    assert len(world.notifier.sent) == 1
