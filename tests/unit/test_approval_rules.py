"""The rule document: schema, error messages that name rule and field, limits, matchers and lint."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.approvals.glob import GlobSet
from chalicelib.approvals.rules.compile import RuleSet, load_rules_from_ssm, parse_ruleset
from chalicelib.approvals.rules.lint import LintFinding, glob_covers, lint
from chalicelib.approvals.rules.schema import MAX_DOCUMENT_BYTES, MAX_RULES, RuleSetProblem


def doc(*rules: dict[str, Any], **top: Any) -> str:
    return json.dumps({"mode": "enforce", **top, "rules": list(rules)})


def parsed(*rules: dict[str, Any], **top: Any) -> RuleSet:
    result = parse_ruleset(doc(*rules, **top))
    assert isinstance(result, RuleSet), result
    return result


def problem(text: str | bytes | None) -> RuleSetProblem:
    result = parse_ruleset(text)
    assert isinstance(result, RuleSetProblem), result
    return result


def messages(result: RuleSetProblem) -> list[str]:
    return [str(error) for error in result.errors]


def findings(ruleset: RuleSet, code: str) -> list[LintFinding]:
    return [f for f in lint(ruleset) if f.code == code]


# --- schema -------------------------------------------------------------------------------------


def test_minimal_document_gets_safe_defaults() -> None:
    ruleset = parsed({"name": "all", "action": "hold"})

    assert ruleset.mode == "enforce"
    assert ruleset.default_action == "hold"
    assert ruleset.document.version == 1
    assert len(ruleset.digest) == 12


def test_mode_is_required_so_nobody_enforces_by_accident() -> None:
    result = problem(json.dumps({"rules": [{"name": "a", "action": "hold"}]}))

    assert result.kind == "invalid"
    assert messages(result) == ["field 'mode': required field is missing"]


def test_unknown_field_in_conditions_names_rule_field_and_suggests_the_right_one() -> None:
    result = problem(doc({"name": "dev", "action": "accept", "when": {"enviroment_names": ["dev-*"]}}))

    assert messages(result) == [
        "rule #1 'dev', field 'when.enviroment_names': unknown field (did you mean 'environment_names'?)"
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"mode": "enforce", "defualt_action": "hold", "rules": [{"name": "a", "action": "hold"}]},
            "field 'defualt_action': unknown field (did you mean 'default_action'?)",
        ),
        (
            {"mode": "enforce", "rules": [{"name": "a", "action": "hold", "condition": {}}]},
            "rule #1 'a', field 'condition': unknown field (known fields: name, description, action, when)",
        ),
        (
            {"mode": "enforce", "rules": [{"name": "a", "action": "approve"}]},
            "rule #1 'a', field 'action': Input should be 'accept', 'reject' or 'hold' (got 'approve')",
        ),
        (
            {"mode": "enforce", "rules": [{"name": "a", "action": "hold"}, {"action": "hold"}]},
            "rule #2, field 'name': required field is missing",
        ),
        (
            {"mode": "fire", "rules": [{"name": "a", "action": "hold"}]},
            "field 'mode': Input should be 'enforce' or 'shadow' (got 'fire')",
        ),
    ],
)
def test_errors_name_the_rule_and_the_field(document: dict[str, Any], expected: str) -> None:
    assert expected in messages(problem(json.dumps(document)))


def test_every_error_is_reported_at_once() -> None:
    result = problem(
        doc(
            {"name": "a", "action": "acept", "when": {"account_ids": ["12345"]}},
            {"name": "a", "action": "hold", "when": {"regions": []}},
        )
    )

    assert len(result.errors) == 4
    assert "rule #2 'a', field 'name': the name is already used by rule #1" in messages(result)
    assert any("when.account_ids[0]" in m for m in messages(result))
    assert any("rule #2 'a', field 'when.regions': an empty list matches nothing" in m for m in messages(result))


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ({"ous": ["ou-bad"]}, "looks like an OU ID but is not one"),
        ({"ous": ["Root/Workloads"]}, "OU paths start below the root"),
        ({"ous": ["Workloads/*"]}, "wildcards are not allowed"),
        ({"ous": ["/"]}, "an empty OU path matches nothing"),
        ({"regions": ["moon-base-1"]}, "is not an AWS region name"),
        ({"account_tags": {}}, "empty tag map"),
        ({"account_tags": {"team": []}}, "an empty list matches nothing"),
        ({"account_ids": ["1234567890123"]}, "String should match pattern"),
        ({"role_names": [""]}, "at least 1 character"),
    ],
)
def test_condition_values_are_checked(when: dict[str, Any], fragment: str) -> None:
    result = problem(doc({"name": "r", "action": "hold", "when": when}))

    assert any(fragment in m and m.startswith("rule #1 'r', field 'when.") for m in messages(result)), messages(result)


def test_a_tag_value_may_be_a_single_string_or_a_list() -> None:
    ruleset = parsed({"name": "t", "action": "hold", "when": {"account_tags": {"team": "a", "stage": ["dev", "qa"]}}})

    assert ruleset.document.rules[0].when.account_tags == {"team": ("a",), "stage": ("dev", "qa")}


def test_ou_paths_are_normalised_and_ids_kept() -> None:
    ruleset = parsed({"name": "o", "action": "hold", "when": {"ous": ["/Workloads/Prod/", "ou-ab12-cd34ef56"]}})

    assert ruleset.document.rules[0].when.ous == ("Workloads/Prod", "ou-ab12-cd34ef56")


# --- empty, invalid and oversized documents ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (None, "missing"),
        ("", "empty"),
        ("   \n", "empty"),
        ("{}", "empty"),
        ('{"mode": "enforce", "rules": []}', "empty"),
        ("{not json", "invalid"),
        ("[]", "invalid"),
        ('{"mode": "enforce", "rulez": []}', "invalid"),
    ],
)
def test_documents_without_usable_rules_are_problems(text: str | None, kind: str) -> None:
    assert problem(text).kind == kind


def test_invalid_json_says_where() -> None:
    assert "line 1 column 2" in problem("{not json").message


def test_a_key_given_twice_is_an_error_not_a_silent_override() -> None:
    text = '{"mode": "enforce", "rules": [{"name": "a", "action": "reject", "action": "accept"}]}'

    result = problem(text)

    assert result.kind == "invalid"
    assert messages(result) == ["key 'action' appears twice in the same object"]


def test_document_over_64_kib_is_oversized() -> None:
    padding = "x" * (MAX_DOCUMENT_BYTES + 1)

    result = problem(doc({"name": "a", "action": "hold", "description": "d"}, description=padding))

    assert result.kind == "oversized"
    assert "65536 bytes" in result.message


def test_more_than_500_rules_is_oversized_and_500_is_fine() -> None:
    def rules(count: int) -> list[dict[str, Any]]:
        return [
            {"name": f"r{n}", "action": "hold", "when": {"account_ids": [f"{100000000000 + n}"]}} for n in range(count)
        ]

    assert isinstance(parse_ruleset(doc(*rules(MAX_RULES))), RuleSet)
    result = problem(doc(*rules(MAX_RULES + 1)))
    assert result.kind == "oversized"
    assert "501 rules" in result.message


def test_problem_describe_lists_each_error() -> None:
    text = problem(doc({"name": "a", "action": "nope"})).describe()

    assert text.splitlines()[0] == "rules: invalid: 1 problem in the rule document"
    assert "rule #1 'a', field 'action'" in text


# --- matchers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "value", "expected"),
    [
        (["dev-*"], "dev-api", True),
        (["dev-*"], "prod-api", False),
        (["dev-?"], "dev-1", True),
        (["dev-?"], "dev-12", False),
        (["a.b"], "aXb", False),  # regex metacharacters are literal
        (["[ab]"], "a", False),  # no character classes
        (["[ab]"], "[ab]", True),
        (["x", "y*"], "yes", True),
        (["*"], "", True),
    ],
)
def test_globset(patterns: list[str], value: str, expected: bool) -> None:
    assert GlobSet(patterns)(value) is expected


@pytest.mark.parametrize(
    ("general", "specific", "expected"),
    [
        ("*", "anything*", True),
        ("dev-*", "dev-api-*", True),
        ("dev-*", "dev-api", True),
        ("dev-*", "de*", False),
        ("*-prod", "api-*-prod", True),
        ("*-prod", "api-*", False),
        ("a*b", "a*b", True),
        ("a*b", "a1*b", False),  # true, but beyond the conservative check: may say no, never wrongly yes
        ("x", "x", True),
        ("x", "y", False),
    ],
)
def test_glob_covers_is_conservative(general: str, specific: str, expected: bool) -> None:
    assert glob_covers(general, specific) is expected


# --- lint ---------------------------------------------------------------------------------------


def test_clean_rule_set_has_no_findings() -> None:
    ruleset = parsed(
        {"name": "prod", "action": "hold", "when": {"ous": ["Workloads/Prod"]}},
        {"name": "dev", "action": "accept", "when": {"ous": ["Workloads/Dev"], "role_names": ["ProtonEnv*"]}},
    )

    assert lint(ruleset) == []


def test_rule_after_a_catch_all_is_shadowed() -> None:
    ruleset = parsed(
        {"name": "everything", "action": "hold"},
        {"name": "dev", "action": "accept", "when": {"ous": ["Workloads/Dev"]}},
    )

    [finding] = findings(ruleset, "shadowed")
    assert finding.severity == "error"
    assert str(finding) == (
        "error: rule #2 'dev': never reached: rule #1 'everything' comes first and matches every request [shadowed]"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"ous": ["Workloads"]}, {"ous": ["Workloads/Prod"], "regions": ["us-east-1"]}),
        ({"account_ids": ["111111111111", "222222222222"]}, {"account_ids": ["222222222222"]}),
        ({"environment_names": ["dev-*"]}, {"environment_names": ["dev-api-*", "dev-web"]}),
        ({"account_tags": {"stage": "dev"}}, {"account_tags": {"stage": "dev", "team": "a"}}),
        ({"role_names": ["proton*"]}, {"role_names": ["ProtonEnv"]}),  # role names ignore case
        ({"role_names": ["ProtonEnv"]}, {"role_names": ["service-role/ProtonEnv"]}),
        ({"regions": ["eu-*"]}, {"regions": ["eu-west-1"]}),
    ],
)
def test_broader_rule_first_shadows_narrower_rule(first: dict[str, Any], second: dict[str, Any]) -> None:
    ruleset = parsed(
        {"name": "broad", "action": "reject", "when": first}, {"name": "narrow", "action": "accept", "when": second}
    )

    [finding] = findings(ruleset, "shadowed")
    assert (finding.rule_index, finding.rule_name) == (2, "narrow")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"ous": ["Workloads/Prod"]}, {"ous": ["Workloads"]}),
        ({"ous": ["Workloads/Prod"]}, {"ous": ["Workloads/Production"]}),
        ({"ous": ["Workloads"]}, {"ous": ["ou-ab12-cd34ef56"]}),  # an ID's path is unknown: not provably shadowed
        ({"environment_names": ["dev-*"]}, {"environment_names": ["dev-*", "qa-*"]}),
        ({"account_tags": {"stage": "dev"}}, {"account_tags": {"team": "a"}}),
        ({"role_names": ["ProtonEnv"]}, {"role_names": ["service-role/*"]}),
        ({"regions": ["eu-west-1"], "ous": ["Workloads"]}, {"regions": ["eu-west-1"]}),
    ],
)
def test_narrower_or_different_rule_first_shadows_nothing(first: dict[str, Any], second: dict[str, Any]) -> None:
    ruleset = parsed(
        {"name": "first", "action": "reject", "when": first}, {"name": "second", "action": "accept", "when": second}
    )

    assert findings(ruleset, "shadowed") == []


def test_same_action_shadowing_suggests_deleting_one() -> None:
    ruleset = parsed(
        {"name": "a", "action": "hold", "when": {"ous": ["Workloads"]}},
        {"name": "b", "action": "hold", "when": {"ous": ["Workloads/Dev"]}},
    )

    assert "(with the same action: delete one)" in findings(ruleset, "shadowed")[0].message


@pytest.mark.parametrize(
    ("when", "field", "fragment"),
    [
        ({"role_names": ["Proton Env"]}, "when.role_names", "characters IAM does not allow"),
        ({"codebuild_role_names": ["R" * 65]}, "when.codebuild_role_names", "at most 64 characters"),
        ({"account_tags": {"aws:createdBy": "x"}}, "when.account_tags", "aws: tags"),
        ({"account_tags": {"k": "v" * 257}}, "when.account_tags", "at most 256 characters"),
    ],
)
def test_conditions_that_can_never_match_are_errors(when: dict[str, Any], field: str, fragment: str) -> None:
    ruleset = parsed({"name": "dead", "action": "accept", "when": {"account_ids": ["123456789012"], **when}})

    [finding] = findings(ruleset, "never-matches")
    assert finding.severity == "error"
    assert (finding.rule_name, finding.field) == ("dead", field)
    assert fragment in finding.message


def test_a_dead_rule_shadows_nothing() -> None:
    ruleset = parsed(
        {"name": "dead", "action": "hold", "when": {"role_names": ["has space*"]}},
        {"name": "live", "action": "hold", "when": {"role_names": ["has space-1"]}},
    )

    assert [f.rule_name for f in findings(ruleset, "never-matches")] == ["dead", "live"]
    assert findings(ruleset, "shadowed") == []


def test_warnings_and_info() -> None:
    ruleset = parsed(
        {"name": "dupe", "action": "hold", "when": {"regions": ["us-east-1", "us-east-1"]}},
        {"name": "any-account", "action": "accept", "when": {"environment_names": ["dev-*"]}},
        {"name": "root", "action": "hold", "when": {"ous": ["r-ab12"]}},
        {"name": "all", "action": "accept"},
        mode="shadow",
        default_action="accept",
    )

    codes = {(f.code, f.severity, f.rule_name) for f in lint(ruleset)}
    assert codes == {
        ("shadow-mode", "info", None),
        ("default-accept", "warning", None),
        ("duplicate-value", "warning", "dupe"),
        ("accept-any-account", "warning", "any-account"),
        ("root-ou", "warning", "root"),
        ("accept-all", "warning", "all"),
    }


# --- SSM ----------------------------------------------------------------------------------------


@mock_aws
def test_load_from_ssm_parses_the_parameter_and_reports_a_missing_one() -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/gatehouse/test/rules", Value=doc({"name": "a", "action": "hold"}), Type="String")

    loaded = load_rules_from_ssm(ssm, "/gatehouse/test/rules")
    missing = load_rules_from_ssm(ssm, "/gatehouse/test/nothing")

    assert isinstance(loaded, RuleSet)
    assert loaded.source == "ssm:/gatehouse/test/rules"
    assert isinstance(missing, RuleSetProblem)
    assert missing.kind == "missing"


def test_a_ten_thousand_deep_document_is_a_problem_not_a_crash() -> None:
    deep = '{"version": 1, "rules": ' + "[" * 10_000 + "]" * 10_000 + "}"  # 20 KB: within the size limit

    found = problem(deep)

    assert found.kind == "oversized"
    assert "nested more than 32 levels deep" in found.message


def test_account_ids_in_rules_are_ascii_digits() -> None:
    doc = {"version": 1, "rules": [{"name": "a", "action": "accept", "when": {"account_ids": ["٤٤٤٤٤٤٤٤٤٤٤٤"]}}]}
    found = problem(json.dumps(doc))
    assert found.kind == "invalid"
    assert any(error.field == "when.account_ids[0]" for error in found.errors), found.errors
