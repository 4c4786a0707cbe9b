"""The deployment template: the merge template's resources and per-function overlays, the us-east-1 forwarder,
and (marker `infra`, `make infra-check`) the template and zip `chalice package` really produces.
"""

from __future__ import annotations

import fnmatch
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.observability import metrics
from chalicelib.core.settings import parse_settings
from chalicelib.handlers import RECONCILIATIONS_COMPLETED
from tests.deploy.support import (
    FORWARDER_TEMPLATE,
    MERGE_TEMPLATE,
    REPO,
    app_functions,
    app_patterns,
    cfn_lint,
    cfn_name,
    chalice_config,
    function_resources,
    load_policy,
    load_template,
    script,
)

FUNCTIONS = sorted(app_functions())
ASYNC_KINDS = ("cw_event", "schedule")  # invoked asynchronously: failures go to the function's DLQ
EVENTS_DLQ = {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
RESOURCE_ENVIRONMENT = {  # the variables that must come from the template, not from config.json's placeholders
    "GATEHOUSE_TOPIC_ARN": {"Ref": "OpsTopic"},
    "GATEHOUSE_IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
    "GATEHOUSE_WORK_QUEUE_URL": {"Ref": "WorkQueue"},
    "GATEHOUSE_PLAN_QUEUE_URL": {"Ref": "PlanQueue"},
    "GATEHOUSE_SETTINGS_PARAMETER": {"Fn::Sub": "/gatehouse/${Stage}/settings"},
    "GATEHOUSE_RULES_PARAMETER": {"Fn::Sub": "/gatehouse/${Stage}/proton-rules"},
    "GATEHOUSE_API_KEY_SECRET": {"Fn::Sub": "gatehouse/${Stage}/cloudcraft-api-key"},
    "GATEHOUSE_STAGE": {"Ref": "Stage"},
    "GATEHOUSE_CLOUDCRAFT_ALLOWED_HOSTS": {"Ref": "CloudcraftAllowedHosts"},
}
ALARM_TOPIC = {"Ref": "AlarmTopic"}
# The queue each SQS consumer polls (its logical ID in infra/resources.yaml).
CONSUMED_QUEUES = {"fleet_worker": "WorkQueue", "reconcile_page": "PlanQueue"}
WORKER_SCALING = {"MaximumConcurrency": 2}  # SQS's least; see infra/resources.yaml and README.md, Reliability
HEARTBEAT_WINDOW = 26 * 3600  # the daily reconciliation plus two hours


def merge_template() -> dict[str, Any]:
    return load_template(MERGE_TEMPLATE)


def event_name(function: str, kind: str) -> str:
    """Chalice's logical ID for a function's event source."""
    return cfn_name(function) + ("SqsEventSource" if kind == "sqs" else "Event")


def overlay_snippet(function: str, kind: str) -> str:
    """The block to paste into infra/resources.yaml for a function that has none (mirrors the others)."""
    name = cfn_name(function)
    environment = "\n".join(
        f"          {key}: " + (f"!Ref {value['Ref']}" if "Ref" in value else f"!Sub {value['Fn::Sub']}")
        for key, value in RESOURCE_ENVIRONMENT.items()
    )
    lines = [
        f"  {name}LogGroup:",
        "    Type: AWS::Logs::LogGroup",
        "    Properties:",
        f"      LogGroupName: !Sub /aws/lambda/gatehouse-${{Stage}}-{function}",
        "      RetentionInDays: 90",
        "",
        f"  {name}:",
        "    Properties:",
        f"      FunctionName: !Sub gatehouse-${{Stage}}-{function}",
        "      Environment:",
        "        Variables:",
        environment,
        "      LoggingConfig:",
        f"        LogGroup: !Ref {name}LogGroup",
    ]
    if kind in ASYNC_KINDS:
        lines += ["      DeadLetterQueue:", "        Type: SQS", "        TargetArn: !GetAtt EventsDeadLetterQueue.Arn"]
    lines += ["      Events:", f"        {event_name(function, kind)}:"]
    if kind == "sqs":
        lines += [
            "          Type: SQS",
            "          Properties:",
            f'            Queue: !Sub "${{{CONSUMED_QUEUES.get(function, "WorkQueue")}.Arn}}"',
            "            FunctionResponseTypes:",
            "              - ReportBatchItemFailures",
            "            ScalingConfig:",
            f"              MaximumConcurrency: {WORKER_SCALING['MaximumConcurrency']}",
        ]
    else:
        lines += [
            "          Type: " + ("EventBridgeRule" if kind == "cw_event" else "Schedule"),
            "          Properties:",
            f"            {'RuleName' if kind == 'cw_event' else 'Name'}: !Sub gatehouse-${{Stage}}-{function}",
            "            RetryPolicy:",
            "              MaximumEventAgeInSeconds: 21600",
            "              MaximumRetryAttempts: 20",
            "            DeadLetterConfig:",
            "              Arn: !GetAtt EventsDeadLetterQueue.Arn",
        ]
    return "\n".join(lines)


def overlay_problems(function: str, kind: str, resources: dict[str, Any]) -> list[str]:
    """What the function's overlay (in the merge template, or merged into the packaged one) lacks."""
    name = cfn_name(function)
    properties = (resources.get(name) or {}).get("Properties") or {}
    problems = []
    if properties.get("FunctionName") != {"Fn::Sub": f"gatehouse-${{Stage}}-{function}"}:
        problems.append(f"it is not named gatehouse-${{Stage}}-{function}")
    variables = (properties.get("Environment") or {}).get("Variables") or {}
    wrong = {key: variables.get(key) for key, value in RESOURCE_ENVIRONMENT.items() if variables.get(key) != value}
    if wrong:
        problems.append(f"environment variables not taken from the template's resources: {wrong}")
    log_group = (properties.get("LoggingConfig") or {}).get("LogGroup")
    expected_group = {"Fn::Sub": f"/aws/lambda/gatehouse-${{Stage}}-{function}"}
    if log_group != {"Ref": f"{name}LogGroup"} or (
        (resources.get(f"{name}LogGroup") or {}).get("Properties", {}).get("LogGroupName") != expected_group
    ):
        problems.append(f"no log group {expected_group['Fn::Sub']} with a retention period")
    if kind in ASYNC_KINDS and properties.get("DeadLetterQueue") != {"Type": "SQS", "TargetArn": EVENTS_DLQ}:
        problems.append("failed asynchronous invocations are not sent to EventsDeadLetterQueue")
    event = (properties.get("Events") or {}).get(event_name(function, kind)) or {}
    event_properties = event.get("Properties") or {}
    if kind in ASYNC_KINDS:
        wanted_type = "EventBridgeRule" if kind == "cw_event" else "Schedule"
        if event.get("Type") != wanted_type:
            problems.append(f"its event is {event.get('Type')!r}, not a SAM {wanted_type}")
        if not {"MaximumEventAgeInSeconds", "MaximumRetryAttempts"} <= set(event_properties.get("RetryPolicy") or {}):
            problems.append("its rule has no retry policy")
        if event_properties.get("DeadLetterConfig") != {"Arn": EVENTS_DLQ}:
            problems.append("its rule has no dead-letter queue")
        name_key = "RuleName" if kind == "cw_event" else "Name"
        if event_properties.get(name_key) != {"Fn::Sub": f"gatehouse-${{Stage}}-{function}"}:
            problems.append(
                f"its rule is not named gatehouse-${{Stage}}-{function} ({name_key}; the DLQ policy lists it)"
            )
    elif kind == "sqs":
        queue = CONSUMED_QUEUES.get(function, "?")
        if event_properties.get("Queue") not in ({"Fn::Sub": f"${{{queue}.Arn}}"}, {"Fn::GetAtt": [queue, "Arn"]}):
            problems.append(f"it does not consume the stage's {queue}: {event_properties.get('Queue')}")
        if event_properties.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
            problems.append("partial batch responses are off: a batch with one failure would be deleted whole")
        if event_properties.get("ScalingConfig") != WORKER_SCALING:
            problems.append(f"its event source does not cap concurrency with ScalingConfig {WORKER_SCALING}")
        if "ReservedConcurrentExecutions" in properties:
            problems.append("it has reserved concurrency: throttled batches would reach the DLQ without running")
    else:
        problems.append(f"no overlay rule for a {kind} function: extend infra/resources.yaml and this test")
    return problems


def alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every CloudWatch alarm's properties, by logical ID."""
    return {
        name: resource["Properties"]
        for name, resource in resources.items()
        if resource.get("Type") == "AWS::CloudWatch::Alarm"
    }


def alarms_on(resources: dict[str, Any], namespace: str, metric: str, **dimensions: Any) -> list[dict[str, Any]]:
    """The alarms watching `metric` in `namespace` with exactly these dimensions."""
    return [
        properties
        for properties in alarms(resources).values()
        if (properties.get("Namespace"), properties.get("MetricName")) == (namespace, metric)
        and {d["Name"]: d["Value"] for d in properties.get("Dimensions") or []} == dimensions
    ]


def any_increase_alarm_problems(found: list[dict[str, Any]], what: str) -> list[str]:
    """An alarm that fires on the first occurrence: exactly one, Sum or Maximum > 0."""
    if len(found) != 1:
        return [f"{len(found)} alarms on {what}, not one"]
    [alarm] = found
    problems = []
    if (alarm.get("ComparisonOperator"), alarm.get("Threshold")) != ("GreaterThanThreshold", 0):
        problems.append(f"the alarm on {what} does not fire on the first one")
    if alarm.get("Statistic") not in ("Sum", "Maximum"):
        problems.append(f"the alarm on {what} uses {alarm.get('Statistic')}, which can hide a single occurrence")
    if alarm.get("TreatMissingData") != "notBreaching":
        problems.append(f"the alarm on {what} does not read missing data (nothing happened) as all is well")
    return problems


def function_alarm_problems(function: str, resources: dict[str, Any]) -> list[str]:
    name = {"Ref": cfn_name(function)}
    return [
        problem
        for metric in ("Errors", "Throttles")
        for problem in any_increase_alarm_problems(
            alarms_on(resources, "AWS/Lambda", metric, FunctionName=name), f"{function}'s {metric}"
        )
    ]


def dead_letter_queues(resources: dict[str, Any]) -> set[str]:
    """Every queue the template sends failures to: redrive targets, function and rule dead-letter configs."""
    targets: list[Any] = []
    for resource in resources.values():
        properties = resource.get("Properties") or {}
        targets.append((properties.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
        targets.append((properties.get("DeadLetterQueue") or {}).get("TargetArn"))
        for event in (properties.get("Events") or {}).values():
            targets.append(((event.get("Properties") or {}).get("DeadLetterConfig") or {}).get("Arn"))
        for target in properties.get("Targets") or []:  # a plain EventBridge rule
            targets.append((target.get("DeadLetterConfig") or {}).get("Arn"))
    return {target["Fn::GetAtt"][0] for target in targets if isinstance(target, dict) and "Fn::GetAtt" in target}


# --- the merge template ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("function", "kind"), sorted(app_functions().items()))
def test_merge_template_has_a_complete_overlay_for_every_function(function: str, kind: str) -> None:
    problems = overlay_problems(function, kind, merge_template()["Resources"])

    assert not problems, (
        f"{function} ({kind}) in infra/resources.yaml: {'; '.join(problems)}.\n"
        f"Add this block under Resources (next to the other functions):\n\n{overlay_snippet(function, kind)}\n"
    )


def test_merge_template_overlays_only_functions_the_app_has() -> None:
    """An overlay with no Chalice resource under it would become a resource without a Type."""
    overlays = {name for name, resource in merge_template()["Resources"].items() if "Type" not in resource}

    assert overlays == {cfn_name(function) for function in FUNCTIONS}


def test_idempotency_table_has_the_powertools_layout_and_is_kept() -> None:
    table = merge_template()["Resources"]["IdempotencyTable"]
    properties = table["Properties"]

    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_stack_owns_no_parameter_an_update_could_reset() -> None:
    """CloudFormation writes an AWS::SSM::Parameter's Value again on any change to its definition: the settings and
    rules parameters are created outside the stack, once (scripts/parameters.py)."""
    resources = merge_template()["Resources"]
    assert [name for name, r in resources.items() if r.get("Type") == "AWS::SSM::Parameter"] == []


def test_parameters_are_created_once_with_safe_defaults_and_never_overwritten() -> None:
    import boto3
    from moto import mock_aws

    parameters = script("parameters")
    DEFAULT_SETTINGS, ensure = parameters.DEFAULT_SETTINGS, parameters.ensure

    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-1")
        assert ensure(ssm, "prod") == {"/gatehouse/prod/settings": "created", "/gatehouse/prod/proton-rules": "created"}
        value = ssm.get_parameter(Name="/gatehouse/prod/settings")["Parameter"]["Value"]
        assert json.loads(value) == DEFAULT_SETTINGS
        assert parse_settings(json.loads(value)).scope_ous == ()  # the app accepts it: the whole Organization
        operators = json.dumps({"scope_ous": ["Workloads"]})
        ssm.put_parameter(Name="/gatehouse/prod/settings", Value=operators, Type="String", Overwrite=True)

        # The next deployment (any template change, a no-change redeploy): the operator's value stays.
        assert ensure(ssm, "prod") == {"/gatehouse/prod/settings": "kept", "/gatehouse/prod/proton-rules": "kept"}
        assert ssm.get_parameter(Name="/gatehouse/prod/settings")["Parameter"]["Value"] == operators
        # Another stage in the same account gets its own, untouched by prod's.
        assert ensure(ssm, "dev")["/gatehouse/dev/settings"] == "created"


def test_default_rules_make_the_engine_hold_every_request() -> None:
    from chalicelib.approvals.engine import ConnectionRequest, decide
    from chalicelib.approvals.rules.compile import parse_ruleset
    from chalicelib.core.models import MemberAccount

    rules = parse_ruleset(json.dumps(script("parameters").DEFAULT_RULES))
    request = ConnectionRequest(
        id="a1b2c3d4-5678-90ab-cdef-000000000001",
        environment_account_id="222222222222",
        environment_name="dev",
        role_arn="arn:aws:iam::222222222222:role/proton-environment",
        component_role_arn=None,
        codebuild_role_arn=None,
        management_account_id="123456789012",
        region="us-east-1",
    )

    decision = decide(request, rules, MemberAccount("222222222222", "data-platform"), "123456789012")

    assert (decision.action, decision.effective) == ("hold", False)


def test_api_key_secret_is_created_empty_and_kept() -> None:
    secret = merge_template()["Resources"]["CloudcraftApiKeySecret"]

    assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert not {"SecretString", "GenerateSecretString"} & set(secret["Properties"]), (
        "the key must never be in a template"
    )
    assert secret["Properties"]["Name"] == {"Fn::Sub": "gatehouse/${Stage}/cloudcraft-api-key"}


def test_work_queue_outlives_its_consumer_and_has_a_dead_letter_queue() -> None:
    queue = merge_template()["Resources"]["WorkQueue"]["Properties"]
    timeouts = [
        int(chalice_config().get("lambda_functions", {}).get(function, {}).get("lambda_timeout", 60))
        for function, kind in app_functions().items()
        if kind == "sqs"
    ]

    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]}
    assert all(queue["VisibilityTimeout"] >= 6 * timeout for timeout in timeouts), (queue, timeouts)


def test_events_dead_letter_queue_accepts_only_this_stacks_rules() -> None:
    statement = merge_template()["Resources"]["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]

    [only] = statement
    assert only["Principal"] == {"Service": "events.amazonaws.com"}
    assert only["Action"] == "sqs:SendMessage"
    assert only["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert all("rule/gatehouse-${Stage}-" in arn["Fn::Sub"] for arn in only["Condition"]["ArnEquals"]["aws:SourceArn"])


def test_outputs_name_everything_an_operator_touches() -> None:
    outputs = merge_template()["Outputs"]

    assert {
        "OpsTopicArn",
        "WorkQueueUrl",
        "WorkDeadLetterQueueUrl",
        "EventsDeadLetterQueueUrl",
        "IdempotencyTableName",
        "SettingsParameterName",
        "RulesParameterName",
        "ApiKeySecretName",
        "AlarmTopicArn",
        "WorkDeadLetterQueueArn",
        "EventsDeadLetterQueueArn",
    } <= set(outputs)
    assert outputs["AlarmTopicArn"]["Value"] == ALARM_TOPIC
    for queue in ("WorkDeadLetterQueue", "EventsDeadLetterQueue"):
        assert outputs[f"{queue}Url"]["Value"] == {"Ref": queue}
        assert outputs[f"{queue}Arn"]["Value"] == {"Fn::GetAtt": [queue, "Arn"]}


# --- alarms -------------------------------------------------------------------------------------------------
def test_every_alarm_tells_the_alarm_topic_when_it_fires_and_clears_and_names_its_stage() -> None:
    found = alarms(merge_template()["Resources"])
    names = [properties["AlarmName"]["Fn::Sub"] for properties in found.values()]

    assert len(found) >= 2 * len(FUNCTIONS) + 4
    for name, properties in found.items():
        assert properties["AlarmActions"] == [ALARM_TOPIC], name
        assert properties["OKActions"] == [ALARM_TOPIC], name
        assert properties["AlarmName"]["Fn::Sub"].startswith("gatehouse-${Stage}-"), name
        assert "README.md, Reliability" in properties["AlarmDescription"], name
    assert len(set(names)) == len(names), names


def test_every_alarm_evaluates_a_range_cloudwatch_accepts() -> None:
    """PutMetricAlarm: Period x EvaluationPeriods at most 1 day, or 7 days when Period is an hour or more."""
    for name, properties in alarms(merge_template()["Resources"]).items():
        period, periods = properties["Period"], properties["EvaluationPeriods"]
        limit = 7 * 86400 if period >= 3600 else 86400

        assert period % 60 == 0, name
        assert period * periods <= limit, (name, period, periods)
        assert 1 <= properties.get("DatapointsToAlarm", periods) <= periods, name


def test_the_alarm_topic_is_its_own_and_not_filtered_ops_topic() -> None:
    """Alarm notifications carry no message attributes: an OpsTopic filter policy would drop them all."""
    topic = merge_template()["Resources"]["AlarmTopic"]

    assert topic["Type"] == "AWS::SNS::Topic"
    assert topic["Properties"]["TopicName"] == {"Fn::Sub": "gatehouse-${Stage}-alarms"}
    assert "KmsMasterKeyId" not in topic["Properties"], "CloudWatch cannot publish to a topic under aws/sns"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_an_errors_and_a_throttles_alarm(function: str) -> None:
    assert function_alarm_problems(function, merge_template()["Resources"]) == []


def test_every_dead_letter_queue_has_a_depth_alarm() -> None:
    resources = merge_template()["Resources"]
    queues = dead_letter_queues(resources)

    assert queues == {"EventsDeadLetterQueue", "WorkDeadLetterQueue", "PlanDeadLetterQueue"}
    for queue in sorted(queues):
        depth = alarms_on(
            resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName={"Fn::GetAtt": [queue, "QueueName"]}
        )
        assert any_increase_alarm_problems(depth, f"{queue}'s depth") == []


def test_work_queue_age_alarm_lets_every_retry_run_and_fires_before_messages_expire() -> None:
    resources = merge_template()["Resources"]
    queue = resources["WorkQueue"]["Properties"]
    [age] = alarms_on(
        resources, "AWS/SQS", "ApproximateAgeOfOldestMessage", QueueName={"Fn::GetAtt": ["WorkQueue", "QueueName"]}
    )
    retries = queue["RedrivePolicy"]["maxReceiveCount"] * queue["VisibilityTimeout"]

    assert age["ComparisonOperator"] == "GreaterThanThreshold"
    assert age["Statistic"] == "Maximum"
    assert retries < age["Threshold"] < queue["MessageRetentionPeriod"] - age["Period"] * age["EvaluationPeriods"]


def test_reconciliation_heartbeat_alarm_fires_after_26_hours_without_a_completion() -> None:
    resources = merge_template()["Resources"]
    [heartbeat] = alarms_on(
        resources,
        metrics.namespace,
        RECONCILIATIONS_COMPLETED,
        service=metrics.service,
        stage={"Ref": "Stage"},
    )

    assert heartbeat["Statistic"] == "Sum"
    assert (heartbeat["ComparisonOperator"], heartbeat["Threshold"]) == ("LessThanThreshold", 1)
    assert heartbeat["TreatMissingData"] == "breaching"  # no reconciliation at all is the failure to catch
    assert heartbeat["Period"] * heartbeat["EvaluationPeriods"] == HEARTBEAT_WINDOW
    assert heartbeat.get("DatapointsToAlarm", heartbeat["EvaluationPeriods"]) == heartbeat["EvaluationPeriods"]


def test_worker_concurrency_is_capped_by_its_event_source_not_reserved_concurrency() -> None:
    functions = chalice_config()["lambda_functions"]
    workers = [function for function, kind in app_functions().items() if kind == "sqs"]

    assert workers
    for worker in workers:
        assert "reserved_concurrency" not in functions[worker], (
            f"{worker}: Lambda's SQS poller ignores reserved concurrency; throttled batches count as receives "
            "and reach the DLQ without running. Cap it with the event source's ScalingConfig instead."
        )
        event = merge_template()["Resources"][cfn_name(worker)]["Properties"]["Events"][event_name(worker, "sqs")]
        assert event["Properties"]["ScalingConfig"] == WORKER_SCALING


# --- the us-east-1 forwarder ------------------------------------------------------------------------------
def test_forwarder_template_passes_cfn_lint() -> None:
    assert cfn_lint(FORWARDER_TEMPLATE) == []


def test_forwarder_dead_letter_queue_has_a_depth_alarm_on_a_topic_in_its_region() -> None:
    resources = load_template(FORWARDER_TEMPLATE)["Resources"]
    topic = {"Ref": "ForwarderAlarmTopic"}
    [queue] = dead_letter_queues(resources)
    depth = alarms_on(
        resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName={"Fn::GetAtt": [queue, "QueueName"]}
    )

    assert any_increase_alarm_problems(depth, f"{queue}'s depth") == []
    assert resources["ForwarderAlarmTopic"]["Type"] == "AWS::SNS::Topic"
    for name, properties in alarms(resources).items():
        assert (properties["AlarmActions"], properties["OKActions"]) == ([topic], [topic]), name
        assert properties["AlarmName"]["Fn::Sub"].startswith("gatehouse-${Stage}-"), name


def test_forwarder_puts_events_on_the_target_regions_default_bus_only() -> None:
    resources = load_template(FORWARDER_TEMPLATE)["Resources"]
    [target] = resources["ForwardOrganizationsEvents"]["Properties"]["Targets"]
    [policy] = resources["ForwarderRole"]["Properties"]["Policies"]
    bus = {"Fn::Sub": "arn:${AWS::Partition}:events:${TargetRegion}:${AWS::AccountId}:event-bus/default"}

    assert resources["ForwardOrganizationsEvents"]["Properties"]["EventBusName"] == "default"
    assert target["Arn"] == bus
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    assert set(target) >= {"RetryPolicy", "DeadLetterConfig"}
    assert policy["PolicyDocument"]["Statement"] == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus}]


# --- what `chalice package` really produces (slow: make infra-check) ----------------------------------------


@pytest.mark.infra
def test_packaged_template_passes_cfn_lint(packaged: Path) -> None:
    findings = cfn_lint(packaged / "sam.yaml")

    assert [f for f in findings if " error " in f or " warning " in f] == []


@pytest.mark.infra
def test_packaged_forwarder_is_the_linted_one(packaged: Path) -> None:
    assert (packaged / FORWARDER_TEMPLATE.name).read_text() == FORWARDER_TEMPLATE.read_text()


@pytest.mark.infra
def test_packaged_stage_parameter_must_be_given(packaged_template: dict[str, Any]) -> None:
    assert "Default" not in packaged_template["Parameters"]["Stage"]


@pytest.mark.infra
@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_has_its_own_role_with_its_hand_written_policy(
    function: str, packaged_template: dict[str, Any]
) -> None:
    resources = packaged_template["Resources"]
    lambda_function = function_resources(packaged_template)[cfn_name(function)]
    role_name = lambda_function["Properties"]["Role"]["Fn::GetAtt"][0]
    others = {
        resource["Properties"]["Role"]["Fn::GetAtt"][0]
        for name, resource in function_resources(packaged_template).items()
        if name != cfn_name(function)
    }

    assert role_name not in others, f"{function} shares its role"
    [policy] = resources[role_name]["Properties"]["Policies"]
    # The policy file, scoped to the stage, region and account by scripts/stage_policies.py (and nothing else).
    expected = {"Policies": [{"PolicyDocument": load_policy(function)}]}
    script("stage_policies").scope_template({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": expected}}})
    assert policy["PolicyDocument"] == expected["Policies"][0]["PolicyDocument"]
    assert resources[role_name]["Properties"].get("ManagedPolicyArns") in (None, [])


@pytest.mark.infra
@pytest.mark.parametrize(("function", "kind"), sorted(app_functions().items()))
def test_packaged_function_takes_the_overlay(function: str, kind: str, packaged_template: dict[str, Any]) -> None:
    assert overlay_problems(function, kind, packaged_template["Resources"]) == []


@pytest.mark.infra
def test_no_plain_cloudwatch_event_is_left_and_patterns_are_the_apps(packaged_template: dict[str, Any]) -> None:
    events = {
        (name, event_id): event
        for name, resource in function_resources(packaged_template).items()
        for event_id, event in (resource["Properties"].get("Events") or {}).items()
    }
    patterns = {
        function: events[(cfn_name(function), event_name(function, "cw_event"))]["Properties"]["Pattern"]
        for function in app_patterns()
    }

    assert not [key for key, event in events.items() if event["Type"] == "CloudWatchEvent"]
    assert patterns == app_patterns()


@pytest.mark.infra
def test_deployment_zip_holds_the_app_and_its_requirements_not_the_sandbox(packaged: Path) -> None:
    with zipfile.ZipFile(packaged / "deployment.zip") as archive:
        names = archive.namelist()
    top = {name.split("/", 1)[0] for name in names}
    chalicelib = {path.relative_to(REPO).as_posix() for path in (REPO / "chalicelib").rglob("*.py")}

    assert "app.py" in names
    assert chalicelib <= set(names), sorted(chalicelib - set(names))
    assert not top & {"gatehouse", "tests", "infra", "scripts", "benchmarks", "docs", ".chalice", "moto"}, top
    assert {"aws_lambda_powertools", "pydantic", "requests"} <= top


@pytest.mark.infra
@pytest.mark.parametrize("function", FUNCTIONS)
def test_packaged_function_has_its_alarms(function: str, packaged_template: dict[str, Any]) -> None:
    assert function_resources(packaged_template)[cfn_name(function)]["Properties"]["FunctionName"]
    assert function_alarm_problems(function, packaged_template["Resources"]) == []


@pytest.mark.infra
def test_packaged_worker_takes_batches_of_five_at_most_two_at_a_time(packaged_template: dict[str, Any]) -> None:
    """The numbers the queue's visibility timeout and the README are worked out from."""
    worker = "fleet_worker"
    properties = function_resources(packaged_template)[cfn_name(worker)]["Properties"]
    event = properties["Events"][event_name(worker, "sqs")]["Properties"]
    queue = packaged_template["Resources"]["WorkQueue"]["Properties"]

    assert "ReservedConcurrentExecutions" not in properties
    assert (event["BatchSize"], event["ScalingConfig"]) == (5, WORKER_SCALING)
    assert queue["VisibilityTimeout"] >= 6 * properties["Timeout"]


# --- stage isolation ---------------------------------------------------------------------------------------
ACCOUNT, REGION = "123456789012", "us-east-1"


def _resolve(value: Any, stage: str) -> str:
    """A policy Resource as IAM sees it in `stage`, region us-east-1, account 123456789012."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = str(value["Fn::Sub"])
        for name, replacement in {
            "${Stage}": stage,
            "${AWS::Region}": REGION,
            "${AWS::AccountId}": ACCOUNT,
            "${AWS::Partition}": "aws",
        }.items():
            text = text.replace(name, replacement)
        return text
    return str(value)


def _stage_arns(stage: str, *, region: str = REGION, account: str = ACCOUNT) -> list[str]:
    """Every resource a stage has that a policy could name (resources.yaml's names)."""
    arn = f"arn:aws:{{}}:{region}:{account}:{{}}".format
    functions = list(app_functions())
    return [
        *(arn("sqs", f"gatehouse-{stage}-{q}") for q in ("work", "plan", "work-dlq", "plan-dlq", "events-dlq")),
        *(arn("sns", f"gatehouse-{stage}-{t}") for t in ("ops", "alarms")),
        arn("dynamodb", f"table/gatehouse-{stage}-idempotency"),
        *(arn("ssm", f"parameter/gatehouse/{stage}/{p}") for p in ("settings", "proton-rules")),
        arn("secretsmanager", f"secret:gatehouse/{stage}/cloudcraft-api-key-AbCdEf"),
        *(arn("logs", f"log-group:/aws/lambda/gatehouse-{stage}-{f}:log-stream:x") for f in functions),
    ]


def _packaged_policies(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [s for p in resource["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
        for name, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::IAM::Role"
    }


@pytest.mark.infra
def test_no_policy_of_one_stage_grants_anything_on_another_stages_resources(
    packaged_template: dict[str, Any],
) -> None:
    """prod's roles against dev's resources, a stage whose name extends prod's (prod2), and prod's own resources in
    another region and another account: nothing. And prod's roles still reach prod's own (the transform kept them)."""
    others = [
        *_stage_arns("dev"),
        *_stage_arns("prod2"),
        *_stage_arns("prod", region="eu-west-1"),
        *_stage_arns("prod", account="210987654321"),
    ]
    policies = _packaged_policies(packaged_template)
    assert len(policies) == len(app_functions())
    reached = []
    own = set()
    for role, statements in policies.items():
        for statement in statements:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            patterns = [_resolve(r, "prod") for r in resources]
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            services = {str(action).split(":")[0] for action in actions}  # "*" on X-Ray grants nothing on SQS

            def grants(arn: str, patterns: list[str] = patterns, services: set[str] = services) -> bool:
                return arn.split(":")[2] in services and any(fnmatch.fnmatchcase(arn, p) for p in patterns)

            reached += [(role, arn) for arn in others if grants(arn)]
            own |= {arn for arn in _stage_arns("prod") if grants(arn)}
    assert reached == []
    assert "arn:aws:ssm:us-east-1:123456789012:parameter/gatehouse/prod/settings" in own
    assert "arn:aws:sqs:us-east-1:123456789012:gatehouse-prod-work" in own


@pytest.mark.infra
def test_every_policy_resource_naming_gatehouse_names_its_stage_region_and_account(
    packaged_template: dict[str, Any],
) -> None:
    loose = [
        (role, resource)
        for role, statements in _packaged_policies(packaged_template).items()
        for statement in statements
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
        if "gatehouse" in str(resource)
        and not (
            isinstance(resource, dict)
            and "${Stage}" in resource["Fn::Sub"]
            and "${AWS::Region}:${AWS::AccountId}" in resource["Fn::Sub"]
        )
    ]
    assert loose == []


def test_rule_names_fit_and_the_events_dlq_admits_exactly_the_stages_rules() -> None:
    resources = merge_template()["Resources"]
    names = []
    for function, kind in app_functions().items():
        if kind not in ASYNC_KINDS:
            continue
        event = resources[cfn_name(function)]["Properties"]["Events"][event_name(function, kind)]["Properties"]
        name = event["RuleName" if kind == "cw_event" else "Name"]
        assert name == {"Fn::Sub": f"gatehouse-${{Stage}}-{function}"}
        names.append(name["Fn::Sub"])
    longest_stage = "a" * 12  # the Stage parameter's AllowedPattern allows 12 characters
    assert max(len(n.replace("${Stage}", longest_stage)) for n in names) <= 64
    [statement] = resources["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allowed = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(a["Fn::Sub"].rsplit("/", 1)[1] for a in allowed) == sorted(n.rsplit("/", 1)[-1] for n in names)
    assert "ArnLike" not in statement["Condition"]


def test_deploy_script_names_the_region_in_every_aws_call_and_uploads_the_template() -> None:
    text = (REPO / "scripts" / "deploy.sh").read_text().replace("\\\n", " ")
    calls = [
        line.strip()
        for line in text.splitlines()
        if re.search(r"(^|\$\(|\s)aws \w", line.split("#")[0])
        and "aws configure get" not in line  # reads the CLI's own configuration: no AWS call
        and not line.strip().startswith("echo")  # a hint printed for the operator
    ]
    assert len(calls) >= 6
    assert [call for call in calls if "--region" not in call] == []
    [deploy] = [call for call in calls if "aws cloudformation deploy" in call and "forwarder" not in call]
    assert '--s3-bucket "$bucket"' in deploy  # the template is past half CloudFormation's 51,200-byte inline limit
    assert "--no-fail-on-empty-changeset" in deploy  # a redeploy with no change succeeds
    assert "scripts/parameters.py" in text  # parameters created once, outside the stack
