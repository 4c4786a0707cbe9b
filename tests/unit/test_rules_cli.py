"""`gatehouse rules validate|test|show`: output, exit codes and the inputs they accept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gatehouse.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "proton-rules.json"
ENV = "444444444444"
THIS = "111111111111"

RULES: dict[str, Any] = {
    "mode": "enforce",
    "rules": [
        {"name": "prod", "action": "hold", "when": {"ous": ["Workloads/Prod"]}},
        {"name": "dev", "action": "accept", "when": {"ous": ["Workloads/Dev"], "environment_names": ["dev-*"]}},
    ],
}
STATE = {
    "organization": {
        "management_account_id": THIS,
        "accounts": [{"id": ENV, "name": "payments-dev", "ou": "Workloads/Dev", "tags": {"team": "payments"}}],
    }
}
REQUEST = {
    "environment_account_id": ENV,
    "environment_name": "dev-api",
    "role_arn": f"arn:aws:iam::{ENV}:role/ProtonEnvironmentRole",
}


def write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- validate -----------------------------------------------------------------------------------


def test_the_example_rule_file_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules", "validate", EXAMPLE)

    assert code == 0
    assert out.splitlines()[0].startswith(f"{EXAMPLE}: valid: 8 rules, mode shadow, default action hold")
    assert "error" not in out.replace("0 errors", "")


def test_validate_reports_schema_errors_by_rule_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"mode": "enforce", "rules": [{"name": "dev", "action": "accept", "when": {"enviroment_names": ["x"]}}]}
    path = write(tmp_path, "rules.json", bad)

    code, out, _ = run(capsys, "rules", "validate", path)

    assert code == 1
    assert out.splitlines() == [
        f"{path}: invalid: 1 problem in the rule document",
        f"{path}: error: rule #1 'dev', field 'when.enviroment_names': unknown field (did you mean "
        "'environment_names'?)",
    ]


def test_validate_fails_on_lint_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = {**RULES, "rules": [{"name": "all", "action": "hold"}, *RULES["rules"]]}

    code, out, _ = run(capsys, "rules", "validate", write(tmp_path, "r.json", rules))

    assert code == 1
    assert "schema-valid, but lint found errors" in out
    assert "error: rule #2 'prod': never reached: rule #1 'all' comes first" in out
    assert "error: rule #3 'dev': never reached" in out
    assert out.splitlines()[-1] == "2 errors, 0 warnings"


def test_validate_passes_with_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = {**RULES, "default_action": "accept"}

    code, out, _ = run(capsys, "rules", "validate", write(tmp_path, "r.json", rules))

    assert code == 0
    assert "warning: default_action 'accept' accepts every request no rule matches [default-accept]" in out


@pytest.mark.parametrize(("content", "kind"), [("", "empty"), ("{", "invalid"), ("x" * 70_000, "oversized")])
def test_validate_unusable_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, kind: str
) -> None:
    code, out, _ = run(capsys, "rules", "validate", write(tmp_path, "r.json", content))

    assert code == 1
    assert f": {kind}: " in out


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = {**RULES, "rules": [{"name": "all", "action": "hold"}, RULES["rules"][0]]}

    code, out, _ = run(capsys, "rules", "validate", write(tmp_path, "r.json", rules), "--json")

    data = json.loads(out)
    assert code == 1
    assert data["valid"] is False
    assert [(f["code"], f["rule_name"]) for f in data["findings"]] == [("shadowed", "prod")]


def test_validate_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rules", "validate", tmp_path / "nope.json")

    assert code == 2
    assert "does not exist" in err


# --- test ---------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "rules": write(tmp_path, "rules.json", RULES),
        "state": write(tmp_path, "state.json", STATE),
        "request": write(tmp_path, "request.json", REQUEST),
    }


def test_test_prints_the_decision_and_its_explanation(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "rules", "test", files["rules"], "--request", files["request"], "--state", files["state"]
    )

    assert code == 0
    assert out.startswith("Would accept: Proton environment account connection")
    assert "Rule #2 'dev' (action accept)" in out
    assert "[yes] ous: wanted in OU Workloads/Dev (or below); got OU path Workloads/Dev" in out
    assert "[yes] the environment account is an active member of this Organization" in out


def test_test_json_and_all_rules(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "rules",
        "test",
        files["rules"],
        "--request",
        files["request"],
        "--state",
        files["state"],
        "--json",
        "--all",
    )

    data = json.loads(out)
    assert code == 0
    assert (data["action"], data["rule"], data["effective"]) == ("accept", "dev", True)
    assert [(e["name"], e["matched"]) for e in data["evaluations"]] == [("prod", False), ("dev", True)]


def test_test_all_rules_human(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys, "rules", "test", files["rules"], "--request", files["request"], "--state", files["state"], "--all"
    )

    assert "#1 'prod' (hold): no" in out
    assert "[NO ] ous: wanted in OU Workloads/Prod (or below); got OU path Workloads/Dev" in out
    assert "#2 'dev' (accept): MATCH" in out


def test_test_without_state_treats_the_account_as_unknown(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "rules", "test", files["rules"], "--request", files["request"])

    assert code == 0
    assert out.startswith("Would hold for a person")
    assert "no --state" in out


def test_test_accepts_protons_own_output(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connection_id = "a1b2c3d4-5678-90ab-cdef-111111111111"
    proton = {
        "environmentAccountConnection": {
            "arn": f"arn:aws:proton:eu-west-1:{ENV}:environment-account-connection/{connection_id}",
            "id": connection_id,
            "environmentAccountId": ENV,
            "environmentName": "dev-api",
            "roleArn": f"arn:aws:iam::{ENV}:role/ProtonEnvironmentRole",
            "codebuildRoleArn": "arn:aws:iam::999999999999:role/CodeBuild",
            "managementAccountId": THIS,
            "status": "PENDING",
            "requestedAt": "2026-11-22T16:40:03Z",
            "lastModifiedAt": "2026-11-22T16:40:03Z",
        }
    }
    request = write(tmp_path, "proton.json", proton)

    code, out, _ = run(
        capsys, "rules", "test", files["rules"], "--request", request, "--state", files["state"], "--json"
    )

    data = json.loads(out)
    assert code == 0
    assert data["request"]["region"] == "eu-west-1"
    assert data["action"] == "hold"
    assert data["violations"] == ["roles-in-account"]


def test_test_with_an_invalid_rule_file_holds_and_exits_1(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path, "broken.json", {"mode": "enforce", "rules": [{"name": "x", "action": "yes"}]})

    code, out, _ = run(capsys, "rules", "test", broken, "--request", files["request"], "--state", files["state"])

    assert code == 1
    assert out.startswith("Would hold for a person")
    assert "Rule set: invalid" in out
    assert "rule #1 'x', field 'action'" in out


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({**REQUEST, "roles": []}, "unknown field 'roles'"),
        ({"environment_account_id": ENV}, "needs 'environment_name'"),
        ([1, 2], "must be a JSON object"),
        ({**REQUEST, "region": 5}, "must be a string"),
    ],
)
def test_test_rejects_malformed_requests(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], request_body: Any, fragment: str
) -> None:
    request = write(tmp_path, "bad.json", request_body)

    code, _, err = run(capsys, "rules", "test", files["rules"], "--request", request)

    assert code == 2
    assert fragment in err


def test_test_uses_the_states_management_account(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = {"organization": {**STATE["organization"], "management_account_id": "222222222222"}}
    request = write(tmp_path, "r.json", {**REQUEST, "management_account_id": THIS})

    _, out, _ = run(
        capsys,
        "rules",
        "test",
        files["rules"],
        "--request",
        request,
        "--state",
        write(tmp_path, "s.json", state),
        "--json",
    )

    assert json.loads(out)["violations"] == ["management-account"]


# --- show ---------------------------------------------------------------------------------------


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def test_show_prints_the_deployed_rule_set(
    ssm: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ssm.put_parameter(Name="/gatehouse/prod/proton-rules", Value=EXAMPLE.read_text(), Type="String")
    monkeypatch.setenv("GATEHOUSE_STAGE", "prod")  # the stage from the environment, as from --stage

    code, out, _ = run(capsys, "rules", "show", "--region", "us-east-1")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("ssm:/gatehouse/prod/proton-rules: 8 rules, mode shadow, default action hold")
    assert any(
        line.strip().startswith("#4") and "prod-needs-review" in line and "hold when ous Workloads/Prod" in line
        for line in lines
    )
    assert "  otherwise: hold" in lines


def test_show_names_no_stage_for_you(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rules", "show")

    assert code == 2
    assert err.startswith("gatehouse: name the stage: --stage STAGE (or GATEHOUSE_STAGE=STAGE)")


def test_show_reads_the_stage_parameter(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ssm.put_parameter(Name="/gatehouse/dev/proton-rules", Value=json.dumps(RULES), Type="String")

    code, out, _ = run(capsys, "rules", "show", "--stage", "dev", "--region", "us-east-1", "--json")

    data = json.loads(out)
    assert code == 0
    assert data["parameter"] == "/gatehouse/dev/proton-rules"
    assert [rule["name"] for rule in data["document"]["rules"]] == ["prod", "dev"]


def test_show_raw_prints_the_stored_document(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ssm.put_parameter(Name="/x", Value=json.dumps(RULES), Type="String")

    code, out, _ = run(capsys, "rules", "show", "--parameter", "/x", "--raw", "--region", "us-east-1")

    assert code == 0
    assert json.loads(out) == RULES


def test_show_a_missing_parameter_exits_1_and_says_everything_is_held(
    ssm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "rules", "show", "--parameter", "/gatehouse/none", "--region", "us-east-1")

    assert code == 1
    assert "missing: SSM parameter /gatehouse/none does not exist" in out
    assert "Every connection request is held" in out


def test_show_an_invalid_deployed_document_exits_1(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ssm.put_parameter(Name="/bad", Value='{"mode": "enforce", "rules": [{"name": "x"}]}', Type="String")

    code, out, _ = run(capsys, "rules", "show", "--parameter", "/bad", "--region", "us-east-1")

    assert code == 1
    assert "rule #1 'x', field 'action': required field is missing" in out


# --- the hook into the main CLI --------------------------------------------------------------------


def test_the_main_cli_offers_the_rules_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from gatehouse.cli import main as gatehouse_main

    code = gatehouse_main(["rules", "validate", str(EXAMPLE)])

    assert code == 0
    assert "valid: 8 rules" in capsys.readouterr().out


# --- bounded inputs ----------------------------------------------------------------------------------
DEEP = "[" * 10_000 + "]" * 10_000


def test_validate_reports_a_ten_thousand_deep_file_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "rules", "validate", write(tmp_path, "deep.json", '{"rules": ' + DEEP + "}"))

    assert code == 1
    assert ": oversized: the rule document is nested more than 32 levels deep, the limit" in out
    assert "Traceback" not in err


@pytest.mark.parametrize("which", ["request", "state"])
def test_test_refuses_ten_thousand_deep_inputs_as_usage_errors(
    which: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = {**files, which: write(tmp_path, f"deep-{which}.json", DEEP)}

    code, _, err = run(
        capsys, "rules", "test", chosen["rules"], "--request", chosen["request"], "--state", chosen["state"]
    )

    assert code == 2
    assert f"{which} file" in err
    assert "nested more than 32 levels deep" in err


def test_test_refuses_a_state_account_in_other_digits(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = write(tmp_path, "state.json", {"organization": {"accounts": [{"id": "٤٤٤٤٤٤٤٤٤٤٤٤"}]}})

    code, _, err = run(capsys, "rules", "test", files["rules"], "--request", files["request"], "--state", state)

    assert code == 2
    assert "needs an 'id' of 12 digits" in err


def test_test_judges_roles_in_the_requests_partition(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = {**REQUEST, "role_arn": f"arn:aws-cn:iam::{ENV}:role/ProtonEnvironmentRole"}
    request = write(tmp_path, "cn.json", foreign)

    code, out, _ = run(capsys, "rules", "test", files["rules"], "--request", request, "--state", files["state"])

    assert code == 0
    assert out.startswith("Would hold for a person")
    assert "not an IAM role ARN in partition aws" in out
