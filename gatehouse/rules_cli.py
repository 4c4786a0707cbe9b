"""`gatehouse rules`: validate and lint a rule file, test it against a request, show the deployed rule set."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from chalicelib.approvals.engine import ConnectionRequest, decide, explain_all
from chalicelib.approvals.notifications import explain
from chalicelib.approvals.rules.compile import RuleSet, load_rules_from_ssm, parse_ruleset
from chalicelib.approvals.rules.lint import LintFinding, lint
from chalicelib.approvals.rules.schema import CONDITION_FIELDS, Rule, RuleSetProblem
from chalicelib.core.ids import is_account_id, partition_for_region
from chalicelib.core.models import MemberAccount
from gatehouse.cli import UsageError

RULES_PARAMETER_ENV = "GATEHOUSE_RULES_PARAMETER"
DEFAULT_RULES_PARAMETER = "/gatehouse/dev/proton-rules"
DEFAULT_MANAGEMENT_ACCOUNT = "111111111111"
PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"

EXIT_OK = 0
EXIT_FINDINGS = 1  # the rule document has errors (or, for `show`, there is no usable deployed rule set)
EXIT_USAGE = 2

# Request and state files are small; a sandbox state of a few thousand accounts stays far below these.
MAX_INPUT_BYTES = 8 * 1024 * 1024
MAX_INPUT_DEPTH = 32

# Request files may use the engine's names or Proton's (as `aws proton get-environment-account-connection` prints).
REQUEST_FIELDS = {
    "id": "id",
    "environment_account_id": "environment_account_id",
    "environmentAccountId": "environment_account_id",
    "environment_name": "environment_name",
    "environmentName": "environment_name",
    "role_arn": "role_arn",
    "roleArn": "role_arn",
    "component_role_arn": "component_role_arn",
    "componentRoleArn": "component_role_arn",
    "codebuild_role_arn": "codebuild_role_arn",
    "codebuildRoleArn": "codebuild_role_arn",
    "management_account_id": "management_account_id",
    "managementAccountId": "management_account_id",
    "region": "region",
}
# Proton's output fields that say nothing the decision uses.
IGNORED_REQUEST_FIELDS = frozenset({"arn", "status", "requestedAt", "lastModifiedAt"})


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    # Each handler reports usage problems itself, so the exit codes hold whichever parser runs it.
    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except UsageError as exc:
            print(f"gatehouse: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return wrapper


# --------------------------------------------------------------------------------------------------
# Inputs


def _read_text(path: Path, what: str) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path} cannot be read: {exc}") from None


def _read_json(path: Path, what: str) -> Any:
    from chalicelib.core.safejson import JsonLimitError, loads_bounded

    try:
        text = _read_text(path, what)
        return loads_bounded(text, max_bytes=MAX_INPUT_BYTES, max_depth=MAX_INPUT_DEPTH, what=f"{what} {path}")
    except JsonLimitError as exc:
        raise UsageError(str(exc)) from None


def load_request(raw: Any, default_management_account: str) -> ConnectionRequest:
    """A request from the engine's field names, Proton's, or Proton's Get output (`environmentAccountConnection`)."""
    if isinstance(raw, dict) and isinstance(raw.get("environmentAccountConnection"), dict):
        raw = raw["environmentAccountConnection"]
    if not isinstance(raw, dict):
        raise UsageError("the request must be a JSON object")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in IGNORED_REQUEST_FIELDS:
            continue
        target = REQUEST_FIELDS.get(key)
        if target is None:
            known = ", ".join(sorted(k for k in REQUEST_FIELDS if "_" in k or k == "id"))
            raise UsageError(f"the request has an unknown field {key!r} (known: {known}, or Proton's names)")
        if value is not None and not isinstance(value, str):
            raise UsageError(f"the request's {key!r} must be a string")
        values[target] = value
    for required in ("environment_account_id", "environment_name", "role_arn"):
        if not values.get(required):
            raise UsageError(f"the request needs {required!r}")
    region = values.get("region")
    arn = raw.get("arn")
    if not region and isinstance(arn, str) and arn.count(":") >= 4:
        region = arn.split(":")[3]
    return ConnectionRequest(
        id=values.get("id") or PLACEHOLDER_ID,
        environment_account_id=values["environment_account_id"],
        environment_name=values["environment_name"],
        role_arn=values["role_arn"],
        component_role_arn=values.get("component_role_arn") or None,
        codebuild_role_arn=values.get("codebuild_role_arn") or None,
        management_account_id=values.get("management_account_id") or default_management_account,
        region=region or "us-east-1",
    )


def load_state(raw: Any) -> tuple[dict[str, MemberAccount], str]:
    """The Organization from a sandbox STATE document, and its management account ID."""
    if not isinstance(raw, dict):
        raise UsageError("the state must be a JSON object")
    organization = raw.get("organization") or {}
    if not isinstance(organization, dict):
        raise UsageError("the state's 'organization' must be an object")
    management = str(organization.get("management_account_id") or DEFAULT_MANAGEMENT_ACCOUNT)
    accounts: dict[str, MemberAccount] = {}
    listed = organization.get("accounts") or []
    if not isinstance(listed, list):
        raise UsageError("organization.accounts must be a list of {id, name, ou, tags, status}")
    for index, item in enumerate(listed):
        if not isinstance(item, dict) or not is_account_id(str(item.get("id", ""))):
            raise UsageError(f"organization.accounts[{index}] needs an 'id' of 12 digits (ASCII 0-9)")
        account_id = str(item["id"])
        tags = item.get("tags") or {}
        if not isinstance(tags, dict):
            raise UsageError(f"organization.accounts[{index}].tags must be an object")
        accounts[account_id] = MemberAccount(
            account_id=account_id,
            name=str(item.get("name") or account_id),
            status=str(item.get("status") or "ACTIVE"),
            ou_ids=tuple(str(ou) for ou in item.get("ou_ids") or ()),
            ou_path=str(item.get("ou") or "").strip("/"),
            tags={str(k): str(v) for k, v in tags.items()},
        )
    return accounts, management


# --------------------------------------------------------------------------------------------------
# Rendering


def describe_rule(rule: Rule) -> str:
    """One line per rule: its action and conditions, as the operator wrote them."""
    parts: list[str] = []
    for name in CONDITION_FIELDS:
        value = getattr(rule.when, name)
        if value is None:
            continue
        if name == "account_tags":
            shown = ", ".join(f"{k}={'|'.join(v)}" for k, v in value.items())
        else:
            shown = ", ".join(value)
        parts.append(f"{name} {shown}")
    return f"{rule.action} " + ("when " + "; ".join(parts) if parts else "always")


def _print_findings(findings: list[LintFinding], source: str, out: TextIO) -> None:
    for finding in findings:
        print(f"{source}: {finding}", file=out)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _summary(ruleset: RuleSet) -> str:
    return (
        f"{_plural(len(ruleset.rules), 'rule')}, mode {ruleset.mode}, default action {ruleset.default_action} "
        f"(digest {ruleset.digest})"
    )


def _problem_dict(problem: RuleSetProblem) -> dict[str, Any]:
    return {
        "kind": problem.kind,
        "message": problem.message,
        "errors": [
            {
                "rule_index": e.rule_index,
                "rule_name": e.rule_name,
                "field": e.field,
                "message": e.message,
                "text": str(e),
            }
            for e in problem.errors
        ],
    }


def _finding_dict(finding: LintFinding) -> dict[str, Any]:
    return {
        "severity": finding.severity,
        "code": finding.code,
        "rule_index": finding.rule_index,
        "rule_name": finding.rule_name,
        "field": finding.field,
        "message": finding.message,
        "text": str(finding),
    }


# --------------------------------------------------------------------------------------------------
# Commands


@_guarded
def run_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the file is valid (warnings are printed but pass), 1 when it has errors."""
    source = str(args.file)
    parsed = parse_ruleset(_read_text(args.file, "rule file"), source=source)
    if isinstance(parsed, RuleSetProblem):
        if args.json:
            print(
                json.dumps({"file": source, "valid": False, "problem": _problem_dict(parsed), "findings": []}, indent=2)
            )
        else:
            print(f"{source}: {parsed.kind}: {parsed.message}")
            for error in parsed.errors:
                print(f"{source}: error: {error}")
        return EXIT_FINDINGS
    findings = lint(parsed)
    errors = [f for f in findings if f.severity == "error"]
    if args.json:
        print(
            json.dumps(
                {
                    "file": source,
                    "valid": not errors,
                    "rules": len(parsed.rules),
                    "mode": parsed.mode,
                    "default_action": parsed.default_action,
                    "digest": parsed.digest,
                    "findings": [_finding_dict(f) for f in findings],
                },
                indent=2,
            )
        )
    else:
        verdict = "valid" if not errors else "schema-valid, but lint found errors"
        print(f"{source}: {verdict}: {_summary(parsed)}")
        _print_findings(findings, source, sys.stdout)
        warnings = sum(1 for f in findings if f.severity == "warning")
        if findings:
            print(f"{_plural(len(errors), 'error')}, {_plural(warnings, 'warning')}")
    return EXIT_FINDINGS if errors else EXIT_OK


@_guarded
def run_test(args: argparse.Namespace) -> int:
    """Print the decision and why; exit 1 when the rule file itself is unusable (the decision is then a hold)."""
    accounts: dict[str, MemberAccount] = {}
    management = DEFAULT_MANAGEMENT_ACCOUNT
    if args.state is not None:
        accounts, management = load_state(_read_json(args.state, "state file"))
    request = load_request(_read_json(args.request, "request file"), management)
    ruleset = parse_ruleset(_read_text(args.file, "rule file"), source=str(args.file))
    account = accounts.get(request.environment_account_id)
    partition = partition_for_region(request.region)  # connection and environment share a region, hence a partition
    decision = decide(request, ruleset, account, management, partition=partition)
    evaluations = (
        explain_all(request, ruleset, account, partition=partition) if args.all and isinstance(ruleset, RuleSet) else ()
    )

    if args.json:
        payload = decision.to_dict()
        if args.all:
            payload["evaluations"] = [
                {
                    "index": e.index,
                    "name": e.name,
                    "action": e.action,
                    "matched": e.matched,
                    "conditions": [vars(c) for c in e.conditions],
                }
                for e in evaluations
            ]
        print(json.dumps(payload, indent=2))
    else:
        if decision.effective:
            title = f"Would {decision.action}"
        elif decision.mode == "shadow" and decision.action != "hold":
            title = f"Shadow mode: would {decision.action} (but change nothing)"
        else:
            title = "Would hold for a person"
        result = "held" if decision.action == "hold" else ("shadow" if decision.mode == "shadow" else decision.action)
        print(explain(decision, result, "gatehouse rules test", title=title))
        if args.state is None:
            print("\n(no --state: the account is unknown, as if it were not a member of this Organization)")
        if evaluations:
            print("\nEvery rule, in order")
            for evaluation in evaluations:
                verdict = "MATCH" if evaluation.matched else "no"
                print(f"  #{evaluation.index} {evaluation.name!r} ({evaluation.action}): {verdict}")
                for c in evaluation.conditions:
                    print(f"      [{'yes' if c.held else 'NO '}] {c.field}: wanted {c.expected}; got {c.actual}")
    if any(check.code == "management-account" for check in decision.violations):
        # A real request names its management account; without a --state naming the same one, it is held.
        print(
            f"gatehouse: held because the request names management account {request.management_account_id}, and "
            f"this test assumes {management}: pass --state with organization.management_account_id set to it",
            file=sys.stderr,
        )
    return EXIT_FINDINGS if isinstance(ruleset, RuleSetProblem) else EXIT_OK


@_guarded
def run_show(args: argparse.Namespace) -> int:
    """Read the deployed rule set from SSM; exit 1 when it is missing, unreadable or invalid."""

    from chalicelib.adapters.aws import aws_call
    from chalicelib.core.errors import AwsError

    # Read here, when the command runs: never at import.
    from gatehouse.aws_cli import operator_session

    name = args.parameter
    client = operator_session(args.region, args.profile).client("ssm")
    if args.raw:
        try:
            with aws_call(f"ssm:GetParameter {name}"):
                value = client.get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value", "")
        except AwsError as exc:
            print(f"ssm:{name}: cannot be read: {exc}", file=sys.stderr)
            return EXIT_FINDINGS
        from chalicelib.core.safejson import JsonLimitError, loads_bounded

        try:
            print(json.dumps(loads_bounded(value, max_bytes=MAX_INPUT_BYTES, max_depth=MAX_INPUT_DEPTH), indent=2))
        except JsonLimitError:
            print(value)
        return EXIT_OK

    loaded = load_rules_from_ssm(client, name)
    if isinstance(loaded, RuleSetProblem):
        if args.json:
            print(json.dumps({"parameter": name, "problem": _problem_dict(loaded)}, indent=2))
        else:
            print(loaded.describe())
            print("Every connection request is held until this is fixed.")
        return EXIT_FINDINGS
    findings = lint(loaded)
    if args.json:
        print(
            json.dumps(
                {
                    "parameter": name,
                    "digest": loaded.digest,
                    "document": loaded.document.model_dump(mode="json", exclude_none=True),
                    "findings": [_finding_dict(f) for f in findings],
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(f"ssm:{name}: {_summary(loaded)}")
    if loaded.document.description:
        print(f"  {loaded.document.description}")
    width = max(len(rule.name) for rule in loaded.rules)
    for rule in loaded.rules:
        print(f"  #{rule.index:<3} {rule.name:<{width}}  {describe_rule(rule.rule)}")
    print(f"  otherwise: {loaded.default_action}")
    _print_findings(findings, f"ssm:{name}", sys.stdout)
    return EXIT_OK
