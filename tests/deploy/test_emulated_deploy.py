"""The packaged templates deployed into an emulated CloudFormation: translated by AWS's SAM translator (what
CloudFormation's AWS::Serverless transform runs), then created, updated and redeployed in moto's CloudFormation.

moto does not model every type (alarms, the secret, queue policies, the StackSet are skipped with a warning); what
it models is created for real, with the names and environment the functions will have."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.deploy.support import INFRA, load_template, script

pytestmark = [pytest.mark.infra, pytest.mark.filterwarnings("ignore::UserWarning")]
REGION = "eu-west-1"


class _NoManagedPolicies:
    """The translator's loader of AWS managed policies by name: the functions name none (each has its own role)."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

    translated: dict[str, Any] = transform(copy.deepcopy(template), parameters, _NoManagedPolicies())
    return translated


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def _gatehouse_template(packaged: Path) -> dict[str, Any]:
    """sam.yaml as `aws cloudformation package` leaves it: the code zip in S3."""
    s3: Any = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.upload_file(str(packaged / "deployment.zip"), "artifacts", "gatehouse/prod/deployment.zip")
    template = load_template(packaged / "sam.yaml")
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/gatehouse/prod/deployment.zip"
    return template


def _deploy(cfn: Any, name: str, body: dict[str, Any], parameters: dict[str, str], *, update: bool = False) -> str:
    """Create or update the stack (as `aws cloudformation deploy --no-fail-on-empty-changeset` would); its status."""
    arguments = {
        "StackName": name,
        "TemplateBody": json.dumps(body),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    if update:
        try:
            cfn.update_stack(**arguments)
        except cfn.exceptions.ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
    else:
        cfn.create_stack(**arguments)
    return str(cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])


def test_the_stage_deploys_updates_and_redeploys_and_the_operators_settings_survive(aws: None, packaged: Path) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    parameters = {"Stage": "prod"}
    template = translate(_gatehouse_template(packaged), parameters)

    # scripts/deploy.sh: the parameters first (created once), then the stack.
    assert script("parameters").ensure(ssm, "prod")["/gatehouse/prod/settings"] == "created"
    assert _deploy(cfn, "gatehouse-prod", template, parameters) == "CREATE_COMPLETE"

    functions = {f["FunctionName"]: f for f in boto3.client("lambda", region_name=REGION).list_functions()["Functions"]}
    assert set(functions) == {
        f"gatehouse-prod-{name}"
        for name in (
            "on_account_arrival",
            "on_account_departure",
            "reconcile",
            "reconcile_page",
            "fleet_worker",
            "on_proton_connection",
            "proton_sweep",
        )
    }
    environment = functions["gatehouse-prod-reconcile"]["Environment"]["Variables"]
    assert environment["GATEHOUSE_SETTINGS_PARAMETER"] == "/gatehouse/prod/settings"
    assert environment["GATEHOUSE_STAGE"] == "prod"  # from the Stage parameter, not a literal
    rules = {r["Name"] for r in boto3.client("events", region_name=REGION).list_rules()["Rules"]}
    assert "gatehouse-prod-on_account_arrival" in rules
    assert all(len(name) <= 64 for name in rules)

    # The operator writes settings; an update changes the template's definitions (here: every description).
    operators = json.dumps({"scope_ous": ["Workloads"]})
    ssm.put_parameter(Name="/gatehouse/prod/settings", Value=operators, Type="String", Overwrite=True)
    changed = copy.deepcopy(template)
    changed["Description"] = "Gatehouse, a new version"
    for parameter in changed["Parameters"].values():
        parameter["Description"] = parameter.get("Description", "") + " (reworded)"
    assert script("parameters").ensure(ssm, "prod")["/gatehouse/prod/settings"] == "kept"
    assert _deploy(cfn, "gatehouse-prod", changed, parameters, update=True) == "UPDATE_COMPLETE"
    assert ssm.get_parameter(Name="/gatehouse/prod/settings")["Parameter"]["Value"] == operators

    # A redeploy with no change at all succeeds, and still leaves the settings alone.
    assert _deploy(cfn, "gatehouse-prod", changed, parameters, update=True).endswith("_COMPLETE")
    assert ssm.get_parameter(Name="/gatehouse/prod/settings")["Parameter"]["Value"] == operators


def test_the_delegated_mode_templates_deploy(aws: None, packaged: Path) -> None:
    """The management account's stack (forwarder, StackSet) and the member role, in their own accounts' emulators."""
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    management = load_template(packaged / "management-account.yaml")
    parameters = {
        "GatehouseAccountId": "222233334444",
        "GatehouseRegion": REGION,
        "Stage": "prod",
        "OrganizationId": "o-abcdefghij",
        "TargetOrganizationalUnits": "ou-ab12-workload1",
    }
    assert _deploy(cfn, "gatehouse-prod-management", management, parameters) == "CREATE_COMPLETE"
    member = load_template(INFRA / "member-role.yaml")
    member_parameters = {
        "GatehouseAccountId": "222233334444",
        "GatehouseStage": "prod",
        "OrganizationId": "o-abcdefghij",
    }
    assert _deploy(cfn, "member-role", member, member_parameters) == "CREATE_COMPLETE"
    role: Any = boto3.client("iam").get_role(RoleName="GatehouseMemberRole")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    [statement] = (json.loads(trust) if isinstance(trust, str) else trust)["Statement"]
    assert statement["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": "o-abcdefghij"}
