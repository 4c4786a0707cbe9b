"""Compiling a rule document into matchers, once per rule set, so a decision costs set look-ups and at most one
regex per field; and loading a rule set from text or from SSM."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.approvals.glob import GlobSet
from chalicelib.approvals.rules.schema import (
    CONDITION_FIELDS,
    Action,
    Conditions,
    Mode,
    Rule,
    RuleDocument,
    RuleSetProblem,
    parse_document,
)

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

# Slots of the per-request facts tuple the engine builds; compiled conditions read one slot each.
SLOT_ACCOUNT_ID = 0
SLOT_OU_KEYS = 1  # frozenset of the account's OU IDs and every prefix of its OU path, or None
SLOT_TAGS = 2  # the account's tags, or None when the account is not known to the Organization
SLOT_ENVIRONMENT_NAME = 3
SLOT_ROLE = 4  # (name, path/name), both lower-cased, or None when the request has no such role
SLOT_COMPONENT_ROLE = 5
SLOT_CODEBUILD_ROLE = 6
SLOT_REGION = 7


def _one_of(values: Iterable[str]) -> str:
    shown = list(values)
    if len(shown) == 1:
        return shown[0]
    head = ", ".join(shown[:8])
    return f"one of {head}" + (f" (+{len(shown) - 8} more)" if len(shown) > 8 else "")


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """One condition of a rule: `test` reads `facts[slot]`; `expected` says in words what it wants."""

    field: str
    slot: int
    test: Callable[[Any], bool]
    expected: str


def _account_ids_condition(values: tuple[str, ...]) -> CompiledCondition:
    accepted = frozenset(values)
    return CompiledCondition("account_ids", SLOT_ACCOUNT_ID, accepted.__contains__, _one_of(values))


def _ous_condition(values: tuple[str, ...]) -> CompiledCondition:
    # The engine gives the account's OU IDs plus every prefix of its OU path as one set, so "in this OU or
    # below" is a single disjointness test.
    keys = frozenset(values)

    def test(ou_keys: frozenset[str] | None) -> bool:
        return ou_keys is not None and not keys.isdisjoint(ou_keys)

    return CompiledCondition("ous", SLOT_OU_KEYS, test, "in OU " + _one_of(values) + " (or below)")


def _tags_condition(tags: Mapping[str, tuple[str, ...]]) -> CompiledCondition:
    required = tuple((key, GlobSet(patterns)) for key, patterns in tags.items())

    def test(account_tags: Mapping[str, str] | None) -> bool:
        if account_tags is None:
            return False
        for key, accepted in required:
            value = account_tags.get(key)
            if value is None or not accepted(value):
                return False
        return True

    expected = ", ".join(f"{key}={_one_of(matcher.patterns)}" for key, matcher in required)
    return CompiledCondition("account_tags", SLOT_TAGS, test, "tags " + expected)


def _glob_condition(name: str, slot: int, patterns: tuple[str, ...]) -> CompiledCondition:
    matcher = GlobSet(patterns)
    return CompiledCondition(name, slot, matcher, _one_of(patterns))


def _role_condition(name: str, slot: int, patterns: tuple[str, ...]) -> CompiledCondition:
    # IAM role names are unique regardless of case, so matching ignores case: a rule must not be
    # sidestepped by a request that spells the same role differently.
    by_name = GlobSet((p for p in patterns if "/" not in p), ignore_case=True)
    by_path = GlobSet((p for p in patterns if "/" in p), ignore_case=True)

    def test(role: tuple[str, str] | None) -> bool:
        if role is None:
            return False
        return (bool(by_name) and by_name(role[0])) or (bool(by_path) and by_path(role[1]))

    return CompiledCondition(name, slot, test, "role " + _one_of(patterns))


def compile_conditions(when: Conditions) -> tuple[CompiledCondition, ...]:
    # Cheapest and most selective first, so a non-matching rule is usually rejected by its first test.
    out: list[CompiledCondition] = []
    if when.account_ids is not None:
        out.append(_account_ids_condition(when.account_ids))
    if when.regions is not None:
        out.append(_glob_condition("regions", SLOT_REGION, when.regions))
    if when.environment_names is not None:
        out.append(_glob_condition("environment_names", SLOT_ENVIRONMENT_NAME, when.environment_names))
    if when.ous is not None:
        out.append(_ous_condition(when.ous))
    if when.account_tags is not None:
        out.append(_tags_condition(when.account_tags))
    if when.role_names is not None:
        out.append(_role_condition("role_names", SLOT_ROLE, when.role_names))
    if when.component_role_names is not None:
        out.append(_role_condition("component_role_names", SLOT_COMPONENT_ROLE, when.component_role_names))
    if when.codebuild_role_names is not None:
        out.append(_role_condition("codebuild_role_names", SLOT_CODEBUILD_ROLE, when.codebuild_role_names))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int  # 1-based position in the document
    rule: Rule
    conditions: tuple[CompiledCondition, ...]
    # The fast path: (slot, test) pairs, cheapest and most selective first.
    tests: tuple[tuple[int, Callable[[Any], bool]], ...]
    account_ids: frozenset[str] | None

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def action(self) -> Action:
        return self.rule.action

    def matches(self, facts: tuple[Any, ...]) -> bool:
        return all(test(facts[slot]) for slot, test in self.tests)


@dataclass
class RuleSet:
    """A parsed, validated and compiled rule document. Build it with `parse_ruleset`."""

    document: RuleDocument
    rules: tuple[CompiledRule, ...]
    digest: str
    source: str = "rules"
    # Rules that can apply to a given account, in document order: those naming it plus those naming no
    # account. Filled lazily, since most rule sets name far fewer accounts than they are asked about.
    _by_account: dict[str, tuple[CompiledRule, ...]] = field(default_factory=dict, repr=False)

    @property
    def mode(self) -> Mode:
        return self.document.mode

    @property
    def default_action(self) -> Action:
        return self.document.default_action

    def candidates(self, account_id: str) -> tuple[CompiledRule, ...]:
        found = self._by_account.get(account_id)
        if found is None:
            found = tuple(r for r in self.rules if r.account_ids is None or account_id in r.account_ids)
            if len(self._by_account) < 100_000:  # a bound, so a flood of unknown accounts cannot grow it
                self._by_account[account_id] = found
        return found


def compile_document(document: RuleDocument, *, digest: str = "", source: str = "rules") -> RuleSet:
    compiled: list[CompiledRule] = []
    for index, rule in enumerate(document.rules, start=1):
        conditions = compile_conditions(rule.when)
        compiled.append(
            CompiledRule(
                index=index,
                rule=rule,
                # Explanations follow the schema's order, as people read a rule; tests run cheapest first.
                conditions=tuple(sorted(conditions, key=lambda c: CONDITION_FIELDS.index(c.field))),
                tests=tuple((c.slot, c.test) for c in conditions),
                account_ids=frozenset(rule.when.account_ids) if rule.when.account_ids is not None else None,
            )
        )
    if not digest:
        canonical = json.dumps(document.model_dump(mode="json"), sort_keys=True).encode()
        digest = hashlib.sha256(canonical).hexdigest()[:12]
    return RuleSet(document=document, rules=tuple(compiled), digest=digest, source=source)


def parse_ruleset(text: str | bytes | None, *, source: str = "rules") -> RuleSet | RuleSetProblem:
    """Parse, validate and compile a rule document; anything wrong comes back as a RuleSetProblem."""
    parsed = parse_document(text, source=source)
    if isinstance(parsed, RuleSetProblem):
        return parsed
    data = text.encode("utf-8") if isinstance(text, str) else (text or b"")
    return compile_document(parsed, digest=hashlib.sha256(data).hexdigest()[:12], source=source)


def load_rules_from_ssm(client: SSMClient, parameter_name: str) -> RuleSet | RuleSetProblem:
    """Read and parse the deployed rule set; a missing or unreadable parameter is a problem, not an error."""
    from chalicelib.adapters.aws import aws_call
    from chalicelib.core.errors import AwsError, AwsNotFoundError

    source = f"ssm:{parameter_name}"
    try:
        with aws_call(f"ssm:GetParameter {parameter_name}"):
            response = client.get_parameter(Name=parameter_name, WithDecryption=True)
    except AwsNotFoundError:  # ParameterNotFound
        return RuleSetProblem("missing", f"SSM parameter {parameter_name} does not exist", source=source)
    except AwsError as exc:  # the service's error code, or botocore's failure (e.g. EndpointConnectionError)
        return RuleSetProblem(
            "unreadable", f"SSM parameter {parameter_name} could not be read: {exc.code}", source=source
        )
    return parse_ruleset(response.get("Parameter", {}).get("Value"), source=source)
