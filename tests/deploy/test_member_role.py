"""Delegated administrator mode: the member role (infra/member-role.yaml) and the management account's stack
(infra/management-account.yaml, with the member role inlined by scripts/inline_member_role.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.member import session_policy
from chalicelib.events import ARRIVAL_EVENTS, DEPARTURE_EVENTS
from tests.deploy.support import INFRA, cfn_lint, load_template, script

MEMBER_ROLE = INFRA / "member-role.yaml"


def _resolve(value: Any, names: dict[str, str]) -> Any:
    """Fn::Sub strings and Refs as IAM would see them, with `names` for parameters and pseudo parameters."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = str(value["Fn::Sub"])
        for name, replacement in names.items():
            text = text.replace("${" + name + "}", replacement)
        return text
    if isinstance(value, dict) and "Ref" in value:
        return names[value["Ref"]]
    if isinstance(value, dict):
        return {key: _resolve(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, names) for item in value]
    return value


def test_the_member_role_grants_exactly_the_session_policy_gatehouse_already_enforces() -> None:
    """So the call-recording tests, which check every member-account call against that session policy, cover it."""
    role = load_template(MEMBER_ROLE)["Resources"]["MemberRole"]["Properties"]
    [policy] = role["Policies"]
    names = {"AWS::Partition": "aws", "AWS::AccountId": "*", "CloudcraftRoleName": "cloudcraft"}
    assert _resolve(policy["PolicyDocument"], names) == session_policy("cloudcraft")


def test_the_member_role_trusts_only_this_stages_functions_in_the_gatehouse_account_of_this_organization() -> None:
    role = load_template(MEMBER_ROLE)["Resources"]["MemberRole"]["Properties"]
    [statement] = role["AssumeRolePolicyDocument"]["Statement"]
    names = {"AWS::Partition": "aws", "GatehouseAccountId": "123456789012", "GatehouseStage": "prod"}
    names |= {"OrganizationId": "o-abcdefghij"}
    assert _resolve(statement, names) == {
        "Sid": "GatehouseFunctionsOfThisStageOnly",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/gatehouse-prod-*"},
            "StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"},
        },
    }


def _inlined(tmp_path: Path) -> Path:
    assert script("inline_member_role").main([str(tmp_path)]) == 0
    return tmp_path / "management-account.yaml"


def test_the_management_stack_deploys_the_member_role_to_the_ous_in_scope_and_follows_new_accounts(
    tmp_path: Path,
) -> None:
    template = load_template(_inlined(tmp_path))
    stack_set = template["Resources"]["MemberRoleStackSet"]["Properties"]
    assert stack_set["PermissionModel"] == "SERVICE_MANAGED"
    assert stack_set["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    [group] = stack_set["StackInstancesGroup"]
    assert group["DeploymentTargets"] == {"OrganizationalUnitIds": {"Ref": "TargetOrganizationalUnits"}}
    assert stack_set["TemplateBody"] == MEMBER_ROLE.read_text()  # the very template, inlined


def test_the_management_stack_forwards_every_account_event_gatehouse_listens_to(tmp_path: Path) -> None:
    rule = load_template(_inlined(tmp_path))["Resources"]["ForwardAccountEvents"]["Properties"]
    assert set(rule["EventPattern"]["detail"]["eventName"]) >= set(ARRIVAL_EVENTS) | set(DEPARTURE_EVENTS)
    assert set(rule["EventPattern"]["source"]) == {"aws.organizations", "aws.controltower"}
    [target] = rule["Targets"]
    assert "DeadLetterConfig" in target
    assert "RetryPolicy" in target


@pytest.mark.parametrize("which", ["member-role", "management-account"])
def test_the_delegated_templates_pass_cfn_lint(which: str, tmp_path: Path) -> None:
    path = MEMBER_ROLE if which == "member-role" else _inlined(tmp_path)
    assert cfn_lint(path) == []


def test_gatehouse_accepts_the_forwarded_events_only_in_delegated_mode() -> None:
    template = load_template(INFRA / "resources.yaml")
    policy = template["Resources"]["DelegatedEventsPolicy"]
    assert policy["Condition"] == "Delegated"
    assert template["Conditions"]["Delegated"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ManagementAccountId"}, ""]}]}
    assert template["Parameters"]["ManagementAccountId"]["Default"] == ""
    assert policy["Properties"]["Statement"]["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${ManagementAccountId}:root"}
    }
