"""The guard on Cloudcraft's custom/minimal policy: reads pass, anything more is refused by name (pure, properties)."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.errors import GatehouseError
from chalicelib.planning.guard import UnsafeAnswer
from chalicelib.planning.policy_guard import (
    MAX_POLICY_CHARS,
    READ_VERBS,
    SECRET_READS,
    PolicyRefused,
    action_problem,
    check_policy,
)
from gatehouse.sandbox.cloudcraft_emulator import ADMIN_POLICY, custom_policy, minimal_policy


def policy(*actions: str, **statement: Any) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*", **statement}],
    }


def refusal(document: Any) -> str:
    with pytest.raises(PolicyRefused) as caught:
        check_policy(document)
    return str(caught.value)


def test_cloudcraft_documented_policies_pass() -> None:
    check_policy(custom_policy())
    check_policy(minimal_policy())
    check_policy({"Statement": {"Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": ["*"]}})


def test_an_admin_policy_is_refused_naming_statement_sid_and_action() -> None:
    message = refusal(ADMIN_POLICY)
    assert "Statement[0] (Sid 'Everything') grants '*'" in message
    assert "every action of every service" in message
    assert "Nothing was written" in message


@pytest.mark.parametrize(
    ("action", "why"),
    [
        ("*", "every action of every service"),
        ("s3:*", "every action of s3"),
        ("ec2:*Instances", "every action of ec2"),
        ("iam:CreateRole", "not a read action"),
        ("ec2:RunInstances", "not a read action"),
        ("tag:TagResources", "not a read action"),
        ("ec2:CreateTags", "not a read action"),
        ("iam:PassRole", "hands a role to a service"),
        ("iam:Pass*", "hands a role to a service"),
        ("sts:AssumeRole", "an sts action"),
        ("STS:GetCallerIdentity", "an sts action"),
        ("ec2:G*", "not a read action"),  # the wildcard comes before the verb is complete
        ("secretsmanager:GetSecretValue", "secrets or credentials"),
        ("ssm:Get*", "covers ssm:getparameter"),
        ("ec2:Get*", "covers ec2:getpassworddata"),
        ("redshift:GetClusterCredentials", "secrets or credentials"),
        ("sso:GetSomeNewCredential", "secrets or credentials"),
        ("ec2 :DescribeVpcs", "not a service:Action name"),
        ("ec2:Describe Vpcs", "not a service:Action name"),
        ("ec2:Describe\u0130*", "not a service:Action name"),
        ("*:Get*", "not a service:Action name"),
    ],
)
def test_non_read_actions_are_refused_with_the_reason(action: str, why: str) -> None:
    assert why in (action_problem(action) or "")
    message = refusal(policy("ec2:DescribeVpcs", action))
    assert repr(action) in message


@pytest.mark.parametrize("action", ["ec2:Describe*", "EC2:describeVPCs", "s3:GetBucketLocation", "cloudtrail:Lookup*"])
def test_read_actions_pass_whatever_their_case(action: str) -> None:
    assert action_problem(action) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Effect": "Deny"}, "only Allow"),
        ({"NotAction": "iam:*"}, "NotAction grants every action it does not name"),
        ({"NotResource": "arn:aws:s3:::x"}, "NotResource"),
        ({"Condition": {"Bool": {"aws:SecureTransport": "true"}}}, "needs no Condition"),
        ({"Principal": "*"}, "has no Principal"),
        ({"Action": []}, "no Action"),
        ({"Action": [1]}, "no Action"),
        ({"Resource": None}, "no Resource"),
        ({"Sid": 7}, "Sid that is not"),
    ],
)
def test_statement_tricks_are_refused(change: dict[str, Any], why: str) -> None:
    document = policy("ec2:DescribeVpcs")
    document["Statement"][0].update(change)
    if change.get("Resource", "") is None:
        del document["Statement"][0]["Resource"]
    assert why in refusal(document)


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ([], "not a JSON object"),
        ({"Version": "2012-10-17"}, "Statement is not"),
        ({"Statement": []}, "Statement is not"),
        ({"Version": "2099-01-01", "Statement": []}, "Version"),
        ({"Statement": [{}], "Extra": 1}, "unknown top-level field"),
        ({"Statement": ["x"]}, "not an object"),
        ({"Statement": [policy("ec2:DescribeVpcs")["Statement"][0]] * 21}, "21 statements"),
    ],
)
def test_documents_that_are_not_a_plain_policy_are_refused(document: Any, why: str) -> None:
    assert why in refusal(document)


def test_size_is_bounded_by_iams_inline_limit() -> None:
    actions = [f"ec2:Describe{'X' * 100}{i}" for i in range(120)]
    assert len(json.dumps(policy(*actions))) > MAX_POLICY_CHARS
    assert "over IAM's 10240" in refusal(policy(*actions))


def test_a_refusal_is_an_unsafe_answer_and_a_gatehouse_error() -> None:
    assert issubclass(PolicyRefused, UnsafeAnswer)
    assert issubclass(PolicyRefused, GatehouseError)


# --- properties ------------------------------------------------------------------------------------------

SECRET_SERVICES = {entry.split(":")[0] for entry in SECRET_READS} | {"sts"}
LOWER = "abcdefghijklmnopqrstuvwxyz"
services = st.builds(
    lambda head, rest: head + rest, st.sampled_from(LOWER), st.text(alphabet=LOWER + "0123456789-", max_size=12)
).filter(lambda service: service not in SECRET_SERVICES)
# A read verb, a tail of letters (not spelling a secret), optionally a wildcard after the verb is complete.
tails = st.builds(
    lambda head, rest: head + rest, st.sampled_from(LOWER.upper()), st.text(alphabet=LOWER, max_size=10)
).filter(lambda tail: not any(word in tail.lower() for word in ("credential", "password", "secretvalue", "token")))
reads = st.builds(
    lambda service, verb, tail, star, upper: (
        (f"{service}:{verb}{tail}{'*' if star else ''}").upper()
        if upper
        else f"{service}:{verb}{tail}{'*' if star else ''}"
    ),
    services,
    st.sampled_from(READ_VERBS),
    tails | st.just(""),
    st.booleans(),
    st.booleans(),
)
WRITE_VERBS = ("Create", "Put", "Delete", "Update", "Attach", "Tag", "Untag", "Run", "Modify", "Pass", "Set")
forbidden = st.one_of(
    st.just("*"),
    st.builds(lambda service: f"{service}:*", services),
    st.builds(lambda service, verb, tail: f"{service}:{verb}{tail}", services, st.sampled_from(WRITE_VERBS), tails),
    st.builds(lambda name: f"sts:{name}", st.sampled_from(("AssumeRole", "GetCallerIdentity", "Get*", "*"))),
    st.sampled_from(("iam:PassRole", "iam:Pass*", "ec2:G*", "ssm:Get*", "ec2:Get*", *SECRET_READS)),
)


@st.composite
def read_documents(draw: st.DrawFn) -> dict[str, Any]:
    statements = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "Effect": st.just("Allow"),
                    "Action": st.lists(reads, min_size=1, max_size=12),
                    "Resource": st.just("*"),
                },
                optional={"Sid": st.text(alphabet=LOWER + "0123456789", min_size=1, max_size=12)},
            ),
            min_size=1,
            max_size=4,
        )
    )
    return {"Version": "2012-10-17", "Statement": statements}


@settings(max_examples=60, deadline=None)
@given(read_documents())
def test_any_document_built_only_from_read_actions_passes(document: dict[str, Any]) -> None:
    check_policy(document)


@settings(max_examples=60, deadline=None)
@given(read_documents(), forbidden, st.data())
def test_any_document_with_a_write_or_wildcard_action_anywhere_is_refused(
    document: dict[str, Any], bad: str, data: st.DataObject
) -> None:
    document = copy.deepcopy(document)
    statement = data.draw(st.sampled_from(document["Statement"]))
    position = data.draw(st.integers(min_value=0, max_value=len(statement["Action"])))
    statement["Action"].insert(position, bad)

    with pytest.raises(PolicyRefused) as caught:
        check_policy(document)

    assert repr(bad)[:40].rstrip("'") in str(caught.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)
anything = st.one_of(
    json_values,
    st.fixed_dictionaries({"Statement": json_values}),
    st.fixed_dictionaries(
        {
            "Statement": st.lists(
                st.dictionaries(
                    st.sampled_from(sorted({"Sid", "Effect", "Action", "Resource", "NotAction", "Condition"})),
                    json_values,
                ),
                max_size=3,
            )
        }
    ),
    st.builds(object),
    st.sets(st.integers(), max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(anything)
def test_the_guard_never_raises_anything_but_its_own_error(document: Any) -> None:
    with contextlib.suppress(PolicyRefused):  # any other exception fails the test
        check_policy(document)


def test_the_guard_survives_nesting_deeper_than_the_interpreter_allows() -> None:
    deep: Any = "ec2:DescribeVpcs"
    for _ in range(100_000):
        deep = [deep]
    assert "no Action" in refusal({"Statement": [{"Effect": "Allow", "Action": deep, "Resource": "*"}]})
