"""Each function's hand-written IAM policy covers the calls it makes, and no more; every policy passes parliament.

Every function in .chalice/config.json is driven through the offline sandbox by its scenario
(tests/deploy/scenarios.py) with every boto3 call recorded (conftest.CallRecorder). Then, per function:
- each call's IAM action (signing name + operation) is allowed by the function's policy file (wildcards
  honoured, Resource not compared); calls made with assumed member-account credentials are checked
  against chalicelib.adapters.member.MEMBER_IAM_ACTIONS, the session policy, instead;
- each action the policy grants is used by some call, except those Lambda itself uses with the role
  (RUNTIME_GRANTS, each with its reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import yaml
from moto import mock_aws

from chalicelib.adapters.member import MEMBER_IAM_ACTIONS, session_policy
from tests.deploy.scenarios import SCENARIOS
from tests.deploy.support import (
    CHALICE_DIR,
    NO_PERMISSION_NEEDED,
    PARLIAMENT_ALLOWLIST,
    REPO,
    ApiCall,
    action_matches,
    allowed_actions,
    app_functions,
    as_list,
    chalice_config,
    configured_functions,
    is_allowed,
    load_policy,
    policy_file,
)

if TYPE_CHECKING:
    from tests.deploy.conftest import CallRecorder

Calls = Callable[[str], list[ApiCall]]
FUNCTIONS = configured_functions()
ALLOWLIST = PARLIAMENT_ALLOWLIST


@dataclass(frozen=True)
class RuntimeGrant:
    """A permission Lambda itself exercises with the function's role, so no boto3 call of ours shows it."""

    action: str  # action pattern the grant covers
    resource: str  # every Resource of the statement must match this pattern
    why: str


RUNTIME_GRANTS = (
    RuntimeGrant("logs:*", "arn:aws:logs:*", "Lambda's runtime writes the function's logs with its role"),
    RuntimeGrant("xray:*", "*", "Lambda's active tracing (xray: true) sends segments with the function's role"),
    *(
        RuntimeGrant(
            action,
            f"arn:aws:sqs:*:*:gatehouse-*-{queue}",
            f"Lambda's SQS event source mapping receives and deletes the {queue} queue's messages with the "
            "consumer's role",
        )
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
        for queue in ("work", "plan")
    ),
    RuntimeGrant(
        "sqs:SendMessage",
        "arn:aws:sqs:*:*:gatehouse-*-events-dlq",
        "Lambda sends an event that failed its asynchronous retries to the function's dead-letter queue, "
        "with the function's role (infra/resources.yaml, DeadLetterQueue)",
    ),
)

# Member-account actions no scenario can reach yet, each with the reason. An entry that becomes used fails
# test_every_member_account_action_is_used_by_some_function: delete it then.
MEMBER_ACTIONS_NOT_YET_DRIVEN: dict[str, str] = {}


# --- the checks, as functions so they can be tested on their own -----------------------------------------
def own_calls(calls: list[ApiCall]) -> list[ApiCall]:
    """Calls made with the function's own role (not with member-account credentials)."""
    return [call for call in calls if call.member_account is None and call.action not in NO_PERMISSION_NEEDED]


def member_calls(calls: list[ApiCall]) -> list[ApiCall]:
    return [call for call in calls if call.member_account is not None]


def missing_permissions(calls: list[ApiCall], policy: dict[str, Any]) -> set[str]:
    patterns = allowed_actions(policy)
    return {call.action for call in own_calls(calls) if not is_allowed(call.action, patterns)}


def unused_permissions(calls: list[ApiCall], policy: dict[str, Any]) -> set[str]:
    used = {call.action for call in own_calls(calls)}
    unused = set()
    for statement in as_list(policy.get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        resources = [str(resource) for resource in as_list(statement.get("Resource"))]
        for pattern in as_list(statement.get("Action")):
            if any(action_matches(str(pattern), action) for action in used):
                continue
            if _runtime_grant(str(pattern), resources) is None:
                unused.add(str(pattern))
    return unused


def _runtime_grant(action: str, resources: list[str]) -> RuntimeGrant | None:
    for grant in RUNTIME_GRANTS:
        if action_matches(grant.action, action) and all(fnmatchcase(r, grant.resource) for r in resources):
            return grant
    return None


# --- registry completeness -------------------------------------------------------------------------------
def test_every_configured_function_has_a_scenario_and_every_scenario_a_function() -> None:
    missing = sorted(set(FUNCTIONS) - set(SCENARIOS))
    stale = sorted(set(SCENARIOS) - set(FUNCTIONS))
    assert not missing, (
        f"functions without a scenario: {missing}. Add each to SCENARIOS in tests/deploy/scenarios.py, driving "
        "it through the sandbox so its IAM policy can be checked against the calls it makes"
    )
    assert not stale, f"scenarios for functions not in .chalice/config.json: {stale}; remove them or configure them"


def test_every_lambda_of_the_app_is_configured_with_its_own_policy_file() -> None:
    unconfigured = sorted(set(app_functions()) - set(FUNCTIONS))
    assert not unconfigured, (
        f"app.py declares {unconfigured} but .chalice/config.json has no lambda_functions entry for it: add one "
        "with its own iam_policy_file (autogen_policy is off, so Chalice would not write a policy)"
    )
    files = {function: policy_file(function).name for function in FUNCTIONS}
    assert all(name == f"policy-{function}.json" for function, name in files.items()), files
    assert all(policy_file(function).is_file() for function in FUNCTIONS)


# --- policy <-> calls ------------------------------------------------------------------------------------
@pytest.mark.parametrize("function", FUNCTIONS)
def test_policy_allows_every_call_the_function_makes(function: str, scenario_calls: Calls) -> None:
    calls = scenario_calls(function)

    missing = missing_permissions(calls, load_policy(function))

    assert not missing, (
        f"{function} calls {sorted(missing)} but {policy_file(function).relative_to(REPO)} does not allow it: "
        "add the action (scoped to its resource) to the policy"
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_policy_grants_nothing_the_function_does_not_use(function: str, scenario_calls: Calls) -> None:
    calls = scenario_calls(function)

    unused = unused_permissions(calls, load_policy(function))

    assert not unused, (
        f"{policy_file(function).relative_to(REPO)} grants {sorted(unused)}, which no call in the {function} "
        "scenario used: remove it, or extend the scenario in tests/deploy/scenarios.py to reach the code that needs it"
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_member_account_calls_stay_within_the_session_policy(function: str, scenario_calls: Calls) -> None:
    calls = scenario_calls(function)

    outside = {call.action for call in member_calls(calls) if call.action not in MEMBER_IAM_ACTIONS}

    assert not outside, (
        f"{function} calls {sorted(outside)} in member accounts, "
        "outside chalicelib.adapters.member.MEMBER_IAM_ACTIONS: the session policy would deny it there"
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_assumed_roles_are_the_access_roles_the_policy_names_and_carry_the_session_policy(
    function: str, scenario_calls: Calls
) -> None:
    calls = [call for call in scenario_calls(function) if call.action == "sts:AssumeRole"]
    granted = [
        str(resource)
        for statement in as_list(load_policy(function).get("Statement"))
        if any(action_matches(str(action), "sts:AssumeRole") for action in as_list(statement.get("Action")))
        for resource in as_list(statement.get("Resource"))
    ]

    for call in calls:
        role_arn = call.params["RoleArn"]
        assert any(fnmatchcase(role_arn, pattern) for pattern in granted), f"{role_arn} is outside {granted}"
        sent = json.loads(call.params["Policy"])
        role_name = sent["Statement"][0]["Resource"].rsplit("/", 1)[1]
        assert sent == session_policy(role_name), f"AssumeRole of {role_arn} without Gatehouse's session policy"


def grants(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement covers `action` on `resource` (IAM wildcards; conditions not evaluated)."""
    return any(
        statement.get("Effect") == "Allow"
        and is_allowed(action, [str(a) for a in as_list(statement.get("Action"))])
        and any(fnmatchcase(resource, str(r)) for r in as_list(statement.get("Resource")))
        for statement in as_list(policy.get("Statement"))
    )


SQS_QUEUES = {"fleet_worker": "work", "reconcile_page": "plan"}  # the queue each SQS consumer polls


def lambda_needs(function: str, kind: str) -> list[tuple[str, str]]:
    """(action, resource) pairs Lambda itself uses with the function's role, for a function deployed as prod."""
    arn = "arn:aws:{}:us-east-1:123456789012:{}".format
    stream = arn("logs", f"log-group:/aws/lambda/gatehouse-prod-{function}:log-stream:2026/11/23/[$LATEST]0a1b")
    needs = [("logs:CreateLogStream", stream), ("logs:PutLogEvents", stream)]
    stage = chalice_config()["stages"]["prod"]
    if stage.get("lambda_functions", {}).get(function, {}).get("xray", stage.get("xray")):
        needs += [("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")]
    if kind in ("cw_event", "schedule"):  # asynchronous: infra/resources.yaml gives it the events DLQ
        needs.append(("sqs:SendMessage", arn("sqs", "gatehouse-prod-events-dlq")))
    if kind == "sqs":  # its event source mapping polls its queue
        queue = arn("sqs", f"gatehouse-prod-{SQS_QUEUES[function]}")
        needs += [(action, queue) for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")]
    return needs


@pytest.mark.parametrize("function", FUNCTIONS)
def test_policy_grants_what_lambda_itself_needs_with_the_role(function: str) -> None:
    kind = app_functions().get(function, "lambda")

    missing = [need for need in lambda_needs(function, kind) if not grants(load_policy(function), *need)]

    assert not missing, (
        f"{policy_file(function).relative_to(REPO)} lacks what Lambda does with the role of a {kind} function: "
        f"{missing} (without the DLQ or queue permissions, the deployment itself fails)"
    )


def test_every_member_account_action_is_used_by_some_function(scenario_calls: Calls) -> None:
    used = {
        call.action
        for function in FUNCTIONS
        if function in SCENARIOS
        for call in member_calls(scenario_calls(function))
    }

    unused = set(MEMBER_IAM_ACTIONS) - used - set(MEMBER_ACTIONS_NOT_YET_DRIVEN)
    now_used = used & set(MEMBER_ACTIONS_NOT_YET_DRIVEN)

    assert not unused, (
        f"MEMBER_IAM_ACTIONS grants {sorted(unused)} in member accounts but no scenario uses it: remove it from "
        "chalicelib/adapters/member.py, or drive the code that needs it"
    )
    assert not now_used, f"{sorted(now_used)} is used now: remove it from MEMBER_ACTIONS_NOT_YET_DRIVEN"


# --- the checks themselves catch what they claim to ------------------------------------------------------
def _call(action: str, member: str | None = None) -> ApiCall:
    return ApiCall("f", action, member, {})


def test_a_call_the_policy_does_not_cover_is_reported_and_wildcards_are_honoured() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ssm:Get*", "SNS:publish"], "Resource": "*"}],
    }
    calls = [_call("ssm:GetParameter"), _call("sns:Publish"), _call("sqs:SendMessage"), _call("iam:GetRole", "1")]

    assert missing_permissions(calls, policy) == {"sqs:SendMessage"}  # the member call is checked elsewhere


def test_an_unused_permission_is_reported_unless_lambda_itself_uses_it() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:PutParameter"], "Resource": "*"},
            {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:aws:logs:*:*:log-group:/x:*"},
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:*:*:gatehouse-prod-events-dlq"},
            {"Effect": "Allow", "Action": "sqs:DeleteMessage", "Resource": "arn:aws:sqs:*:*:gatehouse-prod-work"},
            {"Effect": "Allow", "Action": "sqs:DeleteMessage", "Resource": "arn:aws:sqs:*:*:gatehouse-prod-ops"},
            {"Effect": "Allow", "Action": "sqs:PurgeQueue", "Resource": "arn:aws:sqs:*:*:gatehouse-prod-work"},
        ],
    }

    assert unused_permissions([_call("ssm:GetParameter")], policy) == {
        "ssm:PutParameter",
        "sqs:DeleteMessage",  # on a queue the event source mapping does not poll
        "sqs:PurgeQueue",
    }


def test_lambda_needs_are_checked_against_resources_too() -> None:
    arrival = load_policy("on_account_arrival")

    missing = {
        action for action, resource in lambda_needs("fleet_worker", "sqs") if not grants(arrival, action, resource)
    }

    # Another function's log group and a queue the arrival function never polls: neither is granted.
    assert missing == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }


def test_recorder_attributes_calls_to_the_function_and_to_member_accounts(call_recorder: CallRecorder) -> None:
    recorder = call_recorder
    with mock_aws():  # the member account here is one moto makes up: nothing checks trust in plain mock_aws
        session = boto3.session.Session(region_name="us-east-1")
        sts = session.client("sts")
        session.client("ssm").describe_parameters()  # outside any function: not recorded
        with recorder.acting_as("on_account_arrival"):
            credentials = sts.assume_role(
                RoleArn="arn:aws:iam::210987654321:role/OrganizationAccountAccessRole", RoleSessionName="test"
            )["Credentials"]
            member = boto3.session.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name="us-east-1",
            )
            member.client("iam").list_roles()
            sts.get_caller_identity()

    assert [(c.function, c.action, c.member_account) for c in recorder.calls] == [
        ("on_account_arrival", "sts:AssumeRole", None),
        ("on_account_arrival", "iam:ListRoles", "210987654321"),
        ("on_account_arrival", "sts:GetCallerIdentity", None),
    ]


# --- parliament --------------------------------------------------------------------------------------------
def _policies() -> dict[str, str]:
    """Every policy Gatehouse ships: the functions' files, and the session policy for member accounts."""
    documents = {str(policy_file(f).relative_to(REPO)): policy_file(f).read_text() for f in FUNCTIONS}
    documents["chalicelib/adapters/member.py:session_policy"] = json.dumps(session_policy("cloudcraft"))
    return documents


def _findings(document: str) -> list[tuple[str, tuple[str, ...]]]:
    from parliament import analyze_policy_string

    analysed = analyze_policy_string(document, include_community_auditors=True)
    found = []
    for finding in analysed.findings:
        location = finding.location if isinstance(finding.location, dict) else {}
        found.append((str(finding.issue), tuple(sorted(str(a) for a in as_list(location.get("actions"))))))
    return found


def _allowlist() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(ALLOWLIST.read_text()) or []
    for entry in entries:
        assert set(entry) == {"policy", "issue", "actions", "why"}, entry
        assert len(str(entry["why"]).split()) >= 8, f"say why {entry['issue']} is accepted, in a sentence"
    return entries


def _allowed(policy: str, issue: str, actions: tuple[str, ...], entries: list[dict[str, Any]]) -> bool:
    return any(
        entry["policy"] == policy and entry["issue"] == issue and tuple(sorted(entry["actions"])) == actions
        for entry in entries
    )


@pytest.mark.parametrize("policy", sorted(_policies()))
def test_policy_passes_parliament_with_community_auditors(policy: str) -> None:
    entries = _allowlist()

    unexplained = [
        (issue, actions)
        for issue, actions in _findings(_policies()[policy])
        if not _allowed(policy, issue, actions, entries)
    ]

    assert not unexplained, (
        f"parliament findings on {policy}: {unexplained}. Fix the policy, or accept a finding in "
        f"{ALLOWLIST.relative_to(REPO)} with the reason beside it"
    )


def test_every_parliament_allowlist_entry_still_matches_a_finding() -> None:
    policies = _policies()
    stale = [
        entry
        for entry in _allowlist()
        if (entry["issue"], tuple(sorted(entry["actions"]))) not in _findings(policies.get(entry["policy"], "{}"))
    ]

    assert not stale, f"allow-list entries that match no finding any more (remove them): {stale}"


def test_parliament_reports_a_resource_wildcard_that_could_be_scoped() -> None:
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}

    assert ("RESOURCE_STAR", ()) in _findings(json.dumps(broad)), "parliament missed a scopable Resource *"


def test_policy_files_are_only_those_configured() -> None:
    on_disk = {path.name for path in Path(CHALICE_DIR).glob("policy-*.json")}
    configured = {policy_file(function).name for function in FUNCTIONS}

    assert on_disk == configured, f"policy files without a function, or functions without one: {on_disk ^ configured}"


# --- the operator's policy (infra/operator-policy.json) ---------------------------------------------------
OPERATOR_POLICY = REPO / "infra" / "operator-policy.json"


def test_the_operator_policy_allows_every_call_of_plan_apply_and_doctor(call_recorder: CallRecorder) -> None:
    """`gatehouse plan`, `apply --queue` and `doctor` against a sandbox, every call recorded: each is allowed by
    the policy the README gives operators (the sandbox's STS, Organizations and SQS answer as AWS would)."""
    from chalicelib.container import get_services
    from chalicelib.fleet.service import Fleet
    from gatehouse.doctor import Doctor
    from gatehouse.sandbox.demo import DEMO_RULES
    from gatehouse.sandbox.world import STAGE, Sandbox, generated_accounts

    with Sandbox({"organization": {"accounts": generated_accounts(3)}, "proton_rules": DEMO_RULES}) as world:
        world.run_schedule("reconcile")
        world.new_container()
        services = get_services()
        with call_recorder.acting_as("operator"):
            settings = services.settings()
            fleet: Fleet = services.fleet(settings)
            plan = fleet.plan()
            from chalicelib.adapters.workqueue import WorkQueue, new_run_id, work_messages

            sqs = services.client("sqs")
            queue = WorkQueue(sqs, sqs.get_queue_url(QueueName=f"gatehouse-{STAGE}-work")["QueueUrl"])
            queue.send(work_messages(plan, new_run_id()))
            fleet.apply(plan, requests_per_minute=settings.cloudcraft_requests_per_minute)
            session = services.session
            checks = Doctor(services, session, STAGE, sample=2, sandbox=True).run()
    assert [check.name for check in checks if not check.ok] == []
    policy = json.loads(OPERATOR_POLICY.read_text())
    missing = missing_permissions(call_recorder.calls, policy)
    assert not missing, f"the operator calls {sorted(missing)}: add them to {OPERATOR_POLICY.relative_to(REPO)}"
    assert {call.action for call in call_recorder.calls if call.member_account is None} >= {
        "sts:AssumeRole",
        "ssm:GetParameter",
        "dynamodb:Scan",
        "sqs:SendMessage",
    }


def test_the_operator_policy_passes_parliament() -> None:
    findings = [(issue, actions) for issue, actions in _findings(OPERATOR_POLICY.read_text())]
    assert findings in ([], [("CREDENTIALS_EXPOSURE", ("sts:assumerole",))]), findings
