"""Create-or-update of Cloudcraft registrations, keyed on the AWS account in the role ARN."""

from __future__ import annotations

from chalicelib.planning.registration import DesiredRegistration, plan_registration
from tests.fakes import Reg

WANT = DesiredRegistration(
    "222222222222", "data (222222222222)", "arn:aws:iam::222222222222:role/cloudcraft", None, None
)


def test_create_when_the_account_is_not_registered() -> None:
    other = Reg("1", "other", "arn:aws:iam::333333333333:role/cloudcraft")
    assert plan_registration([other], WANT).action == "create"


def test_registered_under_another_name_is_updated_not_added() -> None:
    datadog = Reg("dd", "Datadog: data", "arn:aws:iam::222222222222:role/DatadogIntegrationRole")
    plan = plan_registration([datadog], WANT)
    assert (plan.action, plan.target_id, plan.differences) == ("update", "dd", ("name", "roleArn"))


def test_up_to_date_registration_needs_nothing_and_unmanaged_access_is_kept() -> None:
    same = Reg("1", WANT.name, WANT.role_arn, read_access=("team/x",))
    assert plan_registration([same], WANT).action == "none"
    managed = DesiredRegistration(WANT.aws_account_id, WANT.name, WANT.role_arn, ("team/y",), None)
    assert plan_registration([same], managed).differences == ("readAccess",)


def test_duplicates_are_reported_and_the_right_one_kept() -> None:
    old = Reg("old", "x", "arn:aws:iam::222222222222:role/legacy", created_at="2020-01-01T00:00:00Z")
    mine = Reg("mine", WANT.name, WANT.role_arn, created_at="2026-01-01T00:00:00Z")
    plan = plan_registration([old, mine], WANT)
    assert (plan.action, plan.target_id, plan.duplicates) == ("none", "mine", ("old",))
