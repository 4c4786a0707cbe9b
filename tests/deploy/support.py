"""Helpers the deployment checks share: paths, IAM policy matching, CloudFormation templates, the app's functions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHALICE_DIR = REPO / ".chalice"
INFRA = REPO / "infra"
MERGE_TEMPLATE = INFRA / "resources.yaml"
FORWARDER_TEMPLATE = INFRA / "forwarder-us-east-1.yaml"
PARLIAMENT_ALLOWLIST = INFRA / "parliament-allowlist.yaml"
PACKAGE_SCRIPT = REPO / "scripts" / "package.sh"
VENV_BIN = REPO / ".venv" / "bin"

# Calls IAM never denies: they need no permission, so no policy needs to grant them.
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})


@dataclass(frozen=True)
class ApiCall:
    """One boto3 call made while a scenario drove a function."""

    function: str  # the Chalice function the scenario was driving
    action: str  # IAM action, e.g. "ssm:GetParameter"
    member_account: str | None  # the member account, for calls made with assumed credentials
    params: dict[str, Any]


# --- the app's functions and their policies --------------------------------------------------------------
def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((CHALICE_DIR / "config.json").read_text())
    return config


def configured_functions() -> list[str]:
    """Every Lambda function .chalice/config.json configures: each needs a policy file and a scenario."""
    return sorted(chalice_config().get("lambda_functions", {}))


def app_functions() -> dict[str, str]:
    """Every Lambda function app.py declares, with how it is triggered: cw_event, schedule, sqs or lambda."""
    from chalice.app import CloudWatchEventConfig, ScheduledEventConfig, SQSEventConfig

    import app

    kinds: dict[str, str] = {}
    for source in app.app.event_sources:
        if isinstance(source, CloudWatchEventConfig):
            kinds[source.name] = "cw_event"
        elif isinstance(source, ScheduledEventConfig):
            kinds[source.name] = "schedule"
        elif isinstance(source, SQSEventConfig):
            kinds[source.name] = "sqs"
        else:
            kinds[source.name] = type(source).__name__
    for function in app.app.pure_lambda_functions:
        kinds[function.name] = "lambda"
    return kinds


def app_patterns() -> dict[str, dict[str, Any]]:
    """The EventBridge pattern of each cw_event function, as app.py declares it (and Chalice packages it)."""
    from chalice.app import CloudWatchEventConfig

    import app

    return {
        source.name: source.event_pattern
        for source in app.app.event_sources
        if isinstance(source, CloudWatchEventConfig)
    }


def policy_file(function: str) -> Path:
    name = chalice_config()["lambda_functions"][function].get("iam_policy_file")
    if not name:
        raise AssertionError(
            f"{function} has no iam_policy_file in .chalice/config.json: write .chalice/policy-{function}.json "
            "and name it there (autogen_policy is off)"
        )
    return CHALICE_DIR / str(name)


def load_policy(function: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(policy_file(function).read_text())
    return document


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def allowed_actions(policy: dict[str, Any]) -> list[str]:
    """The Action patterns of the policy's Allow statements (Resource and Condition are not considered)."""
    statements = as_list(policy.get("Statement"))
    if any("NotAction" in statement for statement in statements):
        raise AssertionError("NotAction in a Gatehouse policy: list the actions instead")
    return [
        str(action)
        for statement in statements
        if statement.get("Effect") == "Allow"
        for action in as_list(statement.get("Action"))
    ]


def action_matches(pattern: str, action: str) -> bool:
    """IAM's action matching: case-insensitive, with `*` and `?` wildcards."""
    return fnmatchcase(action.lower(), pattern.lower())


def is_allowed(action: str, patterns: list[str]) -> bool:
    return any(action_matches(pattern, action) for pattern in patterns)


# --- CloudFormation templates ----------------------------------------------------------------------------
def script(name: str) -> Any:
    """A module of scripts/ (a folder of scripts, not a package), loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"gatehouse_script_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Reads CloudFormation YAML: short intrinsics (!Ref, !GetAtt, !Sub, ...) become their long form. The packaging
# step reads templates with the same loader (scripts/stage_policies.py).
CfnLoader: type[yaml.SafeLoader] = script("stage_policies").CfnLoader


def load_template(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return data


def cfn_lint(path: Path) -> list[str]:
    """cfn-lint's findings on a template, one line each: "E3002 error sam.yaml:12 message"."""
    from cfnlint.api import lint_file

    return [
        f"{match.rule.id} {match.rule.severity} {Path(match.filename).name}:{match.linenumber} {match.message}"
        for match in lint_file(path)
    ]


def cfn_name(function: str) -> str:
    """Chalice's logical ID for a function: on_account_arrival -> OnAccountArrival."""
    from chalice.utils import to_cfn_resource_name

    return str(to_cfn_resource_name(function))


def function_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
