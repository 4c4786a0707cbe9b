"""The decision engine: each action and condition, first-match order, shadow mode and the invariants."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.approvals.engine import (
    INVARIANT_MANAGEMENT,
    INVARIANT_MEMBER,
    INVARIANT_ROLES,
    INVARIANT_RULES,
    ConnectionRequest,
    Decision,
    decide,
    explain_all,
    parse_role_arn,
)
from chalicelib.approvals.rules.compile import RuleSet, parse_ruleset
from chalicelib.approvals.rules.schema import RuleSetProblem
from chalicelib.core.models import MemberAccount

THIS = "111111111111"
ENV = "444444444444"
OTHER = "999999999999"

ACCOUNT = MemberAccount(
    account_id=ENV,
    name="payments-dev",
    ou_ids=("r-ab12", "ou-ab12-11111111", "ou-ab12-22222222"),
    ou_path="Workloads/Dev",
    tags={"team": "payments", "stage": "dev"},
)


def request(**changes: Any) -> ConnectionRequest:
    base = ConnectionRequest(
        id="a1b2c3d4-5678-90ab-cdef-111111111111",
        environment_account_id=ENV,
        environment_name="dev-api",
        role_arn=f"arn:aws:iam::{ENV}:role/ProtonEnvRole",
        component_role_arn=None,
        codebuild_role_arn=f"arn:aws:iam::{ENV}:role/service-role/ProtonCodeBuild",
        management_account_id=THIS,
        region="us-east-1",
    )
    return replace(base, **changes)


def rules(*items: dict[str, Any], **top: Any) -> RuleSet:
    result = parse_ruleset(json.dumps({"mode": "enforce", **top, "rules": list(items)}))
    assert isinstance(result, RuleSet), result
    return result


def only(action: str, **when: Any) -> RuleSet:
    return rules({"name": "only", "action": action, "when": when})


def run(ruleset: RuleSet | RuleSetProblem, req: ConnectionRequest | None = None, account: Any = ACCOUNT) -> Decision:
    return decide(req or request(), ruleset, account, THIS)


# --- actions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["accept", "reject", "hold"])
def test_each_action_is_decided_by_the_matching_rule(action: str) -> None:
    decision = run(only(action, account_ids=[ENV]))

    assert (decision.action, decision.rule, decision.rule_index, decision.mode) == (action, "only", 1, "enforce")
    assert decision.effective is (action != "hold")
    assert decision.violations == ()


def test_nothing_matches_gives_the_default_action_which_defaults_to_hold() -> None:
    decision = run(only("accept", account_ids=[OTHER]))

    assert (decision.action, decision.rule, decision.effective) == ("hold", None, False)
    assert decision.reason == "no rule matched: default action hold"


def test_default_action_can_be_set() -> None:
    ruleset = rules({"name": "x", "action": "hold", "when": {"account_ids": [OTHER]}}, default_action="reject")

    assert run(ruleset).action == "reject"


# --- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "matches"),
    [
        ({"account_ids": [ENV]}, True),
        ({"account_ids": [OTHER]}, False),
        ({"ous": ["ou-ab12-22222222"]}, True),  # the parent
        ({"ous": ["ou-ab12-11111111"]}, True),  # an OU further up the chain
        ({"ous": ["ou-ab12-33333333"]}, False),
        ({"ous": ["Workloads"]}, True),  # path prefix
        ({"ous": ["Workloads/Dev"]}, True),
        ({"ous": ["Workloads/De"]}, False),  # prefixes are whole OU names
        ({"ous": ["Workloads/Dev/Team"]}, False),
        ({"ous": ["Dev"]}, False),
        ({"account_tags": {"team": "payments"}}, True),
        ({"account_tags": {"team": "pay*", "stage": ["prod", "dev"]}}, True),
        ({"account_tags": {"team": "payments", "stage": "prod"}}, False),
        ({"account_tags": {"owner": "*"}}, False),  # absent key
        ({"environment_names": ["dev-*"]}, True),
        ({"environment_names": ["prod-*", "dev-a?i"]}, True),
        ({"environment_names": ["dev"]}, False),
        ({"role_names": ["ProtonEnvRole"]}, True),
        ({"role_names": ["protonenv*"]}, True),  # IAM role names ignore case
        ({"role_names": ["Admin*"]}, False),
        ({"codebuild_role_names": ["service-role/Proton*"]}, True),  # path pattern
        ({"codebuild_role_names": ["ProtonCodeBuild"]}, True),  # name pattern ignores the path
        ({"codebuild_role_names": ["other-path/*"]}, False),
        ({"component_role_names": ["*"]}, False),  # the request names no component role
        ({"regions": ["us-east-1"]}, True),
        ({"regions": ["us-*"]}, True),
        ({"regions": ["eu-west-1"]}, False),
        ({"account_ids": [ENV], "regions": ["eu-west-1"]}, False),  # all conditions must hold
    ],
)
def test_each_condition(when: dict[str, Any], matches: bool) -> None:
    decision = run(only("accept", **when))

    assert (decision.rule == "only") is matches
    assert decision.action == ("accept" if matches else "hold")


def test_component_role_condition_matches_when_the_request_has_one() -> None:
    req = request(component_role_arn=f"arn:aws:iam::{ENV}:role/ProtonComponent")

    assert run(only("accept", component_role_names=["ProtonComp*"]), req).action == "accept"


def test_ou_and_tag_conditions_never_hold_for_an_unknown_account() -> None:
    assert run(only("hold", ous=["Workloads"]), account=None).rule is None
    assert run(only("hold", account_tags={"team": "*"}), account=None).rule is None


# --- order --------------------------------------------------------------------------------------


def test_first_match_wins() -> None:
    accept_first = rules(
        {"name": "dev", "action": "accept", "when": {"environment_names": ["dev-*"]}},
        {"name": "payments", "action": "reject", "when": {"account_tags": {"team": "payments"}}},
    )
    reject_first = rules(
        {"name": "payments", "action": "reject", "when": {"account_tags": {"team": "payments"}}},
        {"name": "dev", "action": "accept", "when": {"environment_names": ["dev-*"]}},
    )

    assert (run(accept_first).action, run(accept_first).rule) == ("accept", "dev")
    assert (run(reject_first).action, run(reject_first).rule) == ("reject", "payments")


def test_rules_naming_other_accounts_are_skipped_in_order() -> None:
    ruleset = rules(
        {"name": "other", "action": "reject", "when": {"account_ids": [OTHER]}},
        {"name": "mine", "action": "accept", "when": {"account_ids": [OTHER, ENV]}},
        {"name": "any", "action": "reject"},
    )

    assert run(ruleset).rule == "mine"
    assert run(ruleset, request(environment_account_id="555555555555")).rule == "any"


# --- explanations -------------------------------------------------------------------------------


def test_decision_explains_every_condition_of_the_matching_rule() -> None:
    ruleset = only("accept", ous=["Workloads"], environment_names=["dev-*"], role_names=["ProtonEnv*"])

    decision = run(ruleset)

    assert [(c.field, c.held) for c in decision.conditions] == [  # in the order the schema lists them
        ("ous", True),
        ("environment_names", True),
        ("role_names", True),
    ]
    ous = decision.conditions[0]
    assert ous.expected == "in OU Workloads (or below)"
    assert ous.actual.startswith("OU path Workloads/Dev")
    assert decision.reason == "rule #1 'only' matched: accept"
    assert [check.code for check in decision.invariants] == [
        INVARIANT_RULES,
        INVARIANT_ROLES,
        INVARIANT_MEMBER,
        INVARIANT_MANAGEMENT,
    ]
    assert all(check.held for check in decision.invariants)


def test_explain_all_shows_why_each_rule_did_or_did_not_match() -> None:
    ruleset = rules(
        {"name": "prod", "action": "hold", "when": {"ous": ["Workloads/Prod"], "environment_names": ["dev-*"]}},
        {"name": "dev", "action": "accept", "when": {"ous": ["Workloads/Dev"]}},
    )

    first, second = explain_all(request(), ruleset, ACCOUNT)

    assert not first.matched
    assert [(c.field, c.held) for c in first.conditions] == [("ous", False), ("environment_names", True)]
    assert second.matched


def test_decision_serialises_to_json() -> None:
    decision = run(only("accept", account_ids=[ENV]))

    data = json.loads(json.dumps(decision.to_dict()))

    assert data["action"] == "accept"
    assert data["rule"] == "only"
    assert data["violations"] == []
    assert data["conditions"][0] == {"field": "account_ids", "expected": ENV, "actual": ENV, "held": True}


# --- shadow mode --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["accept", "reject"])
def test_shadow_mode_decides_but_is_never_effective(action: str) -> None:
    ruleset = rules({"name": "r", "action": action}, mode="shadow")

    decision = run(ruleset)

    assert (decision.action, decision.mode, decision.effective) == (action, "shadow", False)
    assert decision.reason.endswith("(shadow mode: nothing changed)")


# --- invariants: no rule can override them ------------------------------------------------------

ACCEPT_ALL = rules({"name": "yes", "action": "accept"}, default_action="accept")
ACCEPT_NAMED = rules({"name": "named", "action": "accept", "when": {"account_ids": [ENV]}})


@pytest.mark.parametrize(
    "problem",
    [
        RuleSetProblem("missing", "no parameter"),
        RuleSetProblem("unreadable", "AccessDenied"),
        RuleSetProblem("invalid", "1 problem"),
        RuleSetProblem("empty", "no rules"),
        RuleSetProblem("oversized", "too big"),
    ],
)
def test_no_usable_rule_set_holds(problem: RuleSetProblem) -> None:
    decision = run(problem)

    assert (decision.action, decision.mode, decision.effective, decision.rule) == ("hold", "no-rules", False, None)
    assert [v.code for v in decision.violations] == [INVARIANT_RULES]
    assert decision.problem is problem
    assert decision.reason.startswith(f"held: the rule set is {problem.kind}")


@pytest.mark.parametrize("ruleset", [ACCEPT_ALL, ACCEPT_NAMED], ids=["accept-all", "accept-named"])
@pytest.mark.parametrize(
    "changes",
    [
        {"role_arn": f"arn:aws:iam::{OTHER}:role/ProtonEnvRole"},
        {"component_role_arn": f"arn:aws:iam::{OTHER}:role/Component"},
        {"codebuild_role_arn": f"arn:aws:iam::{OTHER}:role/CodeBuild"},
        {"role_arn": "arn:aws:iam::444444444444:user/ProtonEnvRole"},  # not a role
        {"role_arn": "not-an-arn"},
        {"role_arn": ""},
        {"codebuild_role_arn": f"arn:aws:iam::{ENV}:role/bad name"},
    ],
)
def test_roles_outside_the_environment_account_hold(ruleset: RuleSet, changes: dict[str, str]) -> None:
    decision = run(ruleset, request(**changes))

    assert decision.action == "hold"
    assert decision.rule_action == "accept"
    assert [v.code for v in decision.violations] == [INVARIANT_ROLES]
    assert decision.effective is False


def test_roles_outside_the_account_hold_even_when_a_rule_rejects() -> None:
    decision = run(only("reject", account_ids=[ENV]), request(role_arn=f"arn:aws:iam::{OTHER}:role/R"))

    assert decision.action == "hold"


@pytest.mark.parametrize(
    "account",
    [None, replace(ACCOUNT, status="SUSPENDED"), replace(ACCOUNT, account_id=OTHER)],
    ids=["not-a-member", "suspended", "directory-answered-for-another-account"],
)
def test_accounts_that_are_not_active_members_hold(account: MemberAccount | None) -> None:
    decision = run(ACCEPT_ALL, account=account)

    assert decision.action == "hold"
    assert [v.code for v in decision.violations] == [INVARIANT_MEMBER]


def test_membership_invariant_also_holds_against_ou_and_tag_rules() -> None:
    decision = run(only("accept", environment_names=["*"]), account=None)

    assert decision.action == "hold"


def test_a_rule_naming_the_account_explicitly_waives_membership_only() -> None:
    decision = run(ACCEPT_NAMED, account=None)

    assert decision.action == "accept"
    member = next(check for check in decision.invariants if check.code == INVARIANT_MEMBER)
    assert member.held
    assert member.waived_by == "named"
    assert "names this account explicitly" in member.detail


def test_an_earlier_rule_naming_the_account_does_not_waive_for_the_rule_that_matched() -> None:
    ruleset = rules(
        {"name": "named", "action": "accept", "when": {"account_ids": [ENV], "regions": ["eu-west-1"]}},
        {"name": "any", "action": "accept"},
    )

    assert run(ruleset, account=None).action == "hold"


def test_explicit_naming_does_not_waive_the_other_invariants() -> None:
    foreign_role = request(role_arn=f"arn:aws:iam::{OTHER}:role/R")
    other_management = request(management_account_id="222222222222")

    assert run(ACCEPT_NAMED, foreign_role, account=None).action == "hold"
    decision = run(ACCEPT_NAMED, other_management)
    assert decision.action == "hold"
    assert [v.code for v in decision.violations] == [INVARIANT_MANAGEMENT]


def test_all_violations_are_reported_together() -> None:
    req = request(role_arn=f"arn:aws:iam::{OTHER}:role/R", management_account_id="222222222222")

    decision = run(RuleSetProblem("invalid", "bad"), req, account=None)

    assert [v.code for v in decision.violations] == [
        INVARIANT_RULES,
        INVARIANT_ROLES,
        INVARIANT_MEMBER,
        INVARIANT_MANAGEMENT,
    ]
    assert decision.reason.endswith("(and 3 more)")


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        ("arn:aws:iam::123456789012:role/R", ("123456789012", "", "R")),
        ("arn:aws:iam::123456789012:role/a/b/R+=,.@-", ("123456789012", "a/b/", "R+=,.@-")),
        ("arn:aws-us-gov:iam::123456789012:role/R", None),  # another partition than the deployment's
        ("arn:aws-cn:iam::123456789012:role/R", None),
        ("arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/R", None),  # digits of another script
        ("arn:aws:iam::123456789012:user/R", None),
        ("arn:aws:s3::123456789012:role/R", None),
        ("arn:aws:iam::123456789012:role/", None),
        ("arn:aws:iam::12345678901:role/R", None),
        ("arn:aws:iam:us-east-1:123456789012:role/R", None),
        ("arn:aws:sts::123456789012:assumed-role/R/s", None),
        ("arn:aws:iam::123456789012:role/R\n", None),
    ],
)
def test_parse_role_arn(arn: str, expected: tuple[str, str, str] | None) -> None:
    assert parse_role_arn(arn) == expected


def test_parse_role_arn_in_the_deployments_partition() -> None:
    arn = "arn:aws-us-gov:iam::123456789012:role/a/b/R"
    assert parse_role_arn(arn, "aws-us-gov") == ("123456789012", "a/b/", "R")
    assert parse_role_arn("arn:aws:iam::123456789012:role/R", "aws-us-gov") is None


def test_a_role_in_another_partition_is_not_in_the_environment_account() -> None:
    # Same account digits, other partition: a different principal altogether, so the request is held.
    req = request(role_arn=f"arn:aws-cn:iam::{ENV}:role/ProtonEnvRole")

    decision = run(only("accept"), req)

    assert decision.action == "hold"
    [violation] = decision.violations
    assert violation.code == INVARIANT_ROLES
    assert "not an IAM role ARN in partition aws" in violation.detail


def test_a_deployment_in_another_partition_accepts_its_own_roles_only() -> None:
    gov = request(
        role_arn=f"arn:aws-us-gov:iam::{ENV}:role/ProtonEnvRole",
        codebuild_role_arn=f"arn:aws-us-gov:iam::{ENV}:role/ProtonCodeBuild",
        region="us-gov-west-1",
    )

    assert decide(gov, only("accept"), ACCOUNT, THIS, partition="aws-us-gov").action == "accept"
    assert decide(gov, only("accept"), ACCOUNT, THIS).action == "hold"  # the default partition is aws


def test_an_environment_account_in_other_digits_is_held() -> None:
    odd = "٤٤٤٤٤٤٤٤٤٤٤٤"  # twelve Arabic-Indic digits: \d would take them
    req = request(environment_account_id=odd, role_arn=f"arn:aws:iam::{odd}:role/R", codebuild_role_arn=None)

    decision = run(only("accept"), req, account=None)

    assert decision.action == "hold"
    assert INVARIANT_ROLES in [v.code for v in decision.violations]


# --- properties ---------------------------------------------------------------------------------

ACCOUNTS = st.sampled_from(["111111111111", "222222222222", ENV, OTHER])
NAMES = st.sampled_from(["dev-api", "prod-web", "x", "Admin"])
ROLE_NAMES = st.sampled_from(["ProtonEnvRole", "Admin", "service-role/CodeBuild", "r"])
GLOBS = st.sampled_from(["*", "dev-*", "*Admin*", "ProtonEnv*", "x", "?", "service-role/*", "r"])


@st.composite
def role_arn(draw: st.DrawFn, account: str | None = None) -> str:
    owner = account or draw(ACCOUNTS)
    return f"arn:aws:iam::{owner}:role/{draw(ROLE_NAMES)}"


@st.composite
def conditions(draw: st.DrawFn, env_account: str) -> dict[str, Any]:
    options: dict[str, st.SearchStrategy[Any]] = {
        # Rules often name the very account asking: the strongest attempt to override the invariants.
        "account_ids": st.lists(st.sampled_from([env_account, OTHER, "222222222222"]), min_size=1, max_size=3),
        "ous": st.lists(st.sampled_from(["Workloads", "Workloads/Dev", "ou-ab12-22222222"]), min_size=1, max_size=2),
        "account_tags": st.dictionaries(st.sampled_from(["team", "stage"]), GLOBS.map(lambda g: [g]), min_size=1),
        "environment_names": st.lists(GLOBS, min_size=1, max_size=3),
        "role_names": st.lists(GLOBS, min_size=1, max_size=3),
        "component_role_names": st.lists(GLOBS, min_size=1, max_size=3),
        "codebuild_role_names": st.lists(GLOBS, min_size=1, max_size=3),
        "regions": st.lists(st.sampled_from(["us-east-1", "*", "eu-*"]), min_size=1, max_size=2),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=4))
    return {name: draw(options[name]) for name in chosen}


@st.composite
def rule_sets(draw: st.DrawFn, env_account: str) -> RuleSet:
    count = draw(st.integers(min_value=1, max_value=6))
    items = [
        {
            "name": f"r{n}",
            "action": draw(st.sampled_from(["accept", "accept", "reject", "hold"])),
            "when": draw(conditions(env_account)),
        }
        for n in range(count)
    ]
    document = {
        "mode": draw(st.sampled_from(["enforce", "shadow"])),
        "default_action": draw(st.sampled_from(["accept", "reject", "hold"])),
        "rules": items,
    }
    result = parse_ruleset(json.dumps(document))
    assert isinstance(result, RuleSet)
    return result


@st.composite
def accounts(draw: st.DrawFn, account_id: str) -> MemberAccount | None:
    if draw(st.booleans()):
        return None
    return MemberAccount(
        account_id=account_id,
        name="generated",
        status=draw(st.sampled_from(["ACTIVE", "ACTIVE", "SUSPENDED", "PENDING_CLOSURE"])),
        ou_ids=("ou-ab12-22222222",),
        ou_path=draw(st.sampled_from(["", "Workloads", "Workloads/Dev"])),
        tags=draw(st.dictionaries(st.sampled_from(["team", "stage"]), NAMES)),
    )


@st.composite
def foreign_role_requests(draw: st.DrawFn) -> ConnectionRequest:
    """Requests in which at least one role ARN lies outside the environment account."""
    env = draw(ACCOUNTS)
    outsider = draw(ACCOUNTS.filter(lambda a: a != env))
    slots = ["role_arn", "component_role_arn", "codebuild_role_arn"]
    foreign = draw(st.sets(st.sampled_from(slots), min_size=1))
    arns: dict[str, str | None] = {}
    for slot in slots:
        if slot in foreign:
            arns[slot] = draw(role_arn(outsider))
        elif slot == "role_arn" or draw(st.booleans()):
            arns[slot] = draw(role_arn(env))
        else:
            arns[slot] = None
    return ConnectionRequest(
        id="a1b2c3d4-5678-90ab-cdef-222222222222",
        environment_account_id=env,
        environment_name=draw(NAMES),
        role_arn=arns["role_arn"] or "",
        component_role_arn=arns["component_role_arn"],
        codebuild_role_arn=arns["codebuild_role_arn"],
        management_account_id=draw(st.sampled_from([THIS, THIS, "222222222222"])),
        region=draw(st.sampled_from(["us-east-1", "eu-west-1"])),
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_no_request_with_a_role_outside_the_environment_account_is_ever_accepted(data: st.DataObject) -> None:
    req = data.draw(foreign_role_requests())
    ruleset = data.draw(rule_sets(req.environment_account_id))
    account = data.draw(accounts(req.environment_account_id))

    decision = decide(req, ruleset, account, THIS)

    assert decision.action != "accept"
    assert decision.action == "hold"
    assert INVARIANT_ROLES in [v.code for v in decision.violations]
    assert decision.effective is False


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_an_accept_is_always_justified(data: st.DataObject) -> None:
    env = data.draw(ACCOUNTS)
    req = request(
        environment_account_id=env,
        role_arn=data.draw(role_arn(env)),
        codebuild_role_arn=data.draw(st.one_of(st.none(), role_arn())),
        management_account_id=data.draw(st.sampled_from([THIS, "222222222222"])),
    )
    ruleset = data.draw(st.one_of(rule_sets(env), st.just(RuleSetProblem("invalid", "generated"))))
    account = data.draw(accounts(env))

    decision = decide(req, ruleset, account, THIS)

    if decision.action == "accept":
        assert isinstance(ruleset, RuleSet)
        assert req.management_account_id == THIS
        assert all(parse_role_arn(arn) and parse_role_arn(arn)[0] == env for _, arn in req.role_arns())  # type: ignore[index]
        member = account is not None and account.is_active
        named = decision.rule is not None and env in (ruleset.rules[decision.rule_index - 1].account_ids or ())  # type: ignore[operator]
        assert member or named
    if decision.violations:
        assert decision.action == "hold"
