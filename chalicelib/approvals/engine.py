"""The approval decision: a pure function of a request, the rules and what the Organization says of the account."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from chalicelib.approvals.rules.compile import (
    SLOT_ACCOUNT_ID,
    SLOT_CODEBUILD_ROLE,
    SLOT_COMPONENT_ROLE,
    SLOT_ENVIRONMENT_NAME,
    SLOT_OU_KEYS,
    SLOT_REGION,
    SLOT_ROLE,
    SLOT_TAGS,
    CompiledRule,
    RuleSet,
)
from chalicelib.approvals.rules.schema import Action, RuleSetProblem
from chalicelib.core import ids
from chalicelib.core.ids import DEFAULT_PARTITION, is_account_id
from chalicelib.core.models import MemberAccount

DecisionMode = Literal["enforce", "shadow", "no-rules"]


INVARIANT_RULES = "rules-valid"
INVARIANT_ROLES = "roles-in-account"
INVARIANT_MEMBER = "active-member"
INVARIANT_MANAGEMENT = "management-account"


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    """A request from one account for cross-account access: the engine's only input about the outside."""

    id: str
    environment_account_id: str
    environment_name: str
    role_arn: str
    component_role_arn: str | None
    codebuild_role_arn: str | None
    management_account_id: str
    region: str

    def role_arns(self) -> tuple[tuple[str, str], ...]:
        """(field, ARN) for each role the request names; optional roles left empty are not named."""
        named = [("role_arn", self.role_arn)]
        if self.component_role_arn:
            named.append(("component_role_arn", self.component_role_arn))
        if self.codebuild_role_arn:
            named.append(("codebuild_role_arn", self.codebuild_role_arn))
        return tuple(named)


@dataclass(frozen=True)
class ConditionResult:
    field: str
    expected: str
    actual: str
    held: bool


@dataclass(frozen=True)
class InvariantCheck:
    """A check no rule can override; when one does not hold, the request is held for a person."""

    code: str
    requirement: str
    held: bool
    detail: str
    waived_by: str | None = None


@dataclass(frozen=True)
class RuleEvaluation:
    """How one rule fared against a request: every condition evaluated, none skipped (for explanations)."""

    index: int
    name: str
    action: Action
    matched: bool
    conditions: tuple[ConditionResult, ...]


@dataclass(frozen=True)
class Decision:
    request: ConnectionRequest
    action: Action  # what happens: the rules' answer, or "hold" when an invariant does not hold
    rule: str | None  # the rule that matched; None when none did (default action) or there are no rules
    rule_index: int | None
    rule_action: Action  # what the rules alone said, before invariants
    mode: DecisionMode
    effective: bool  # whether Gatehouse will accept or reject (enforce mode and not a hold)
    conditions: tuple[ConditionResult, ...]  # of the matched rule
    invariants: tuple[InvariantCheck, ...]
    rules_digest: str | None = None
    problem: RuleSetProblem | None = None

    @property
    def violations(self) -> tuple[InvariantCheck, ...]:
        return tuple(check for check in self.invariants if not check.held)

    @property
    def reason(self) -> str:
        if self.violations:
            first = self.violations[0]
            more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
            return f"held: {first.detail}{more}"
        if self.rule is not None:
            because = f"rule #{self.rule_index} {self.rule!r} matched: {self.rule_action}"
        else:
            because = f"no rule matched: default action {self.rule_action}"
        if self.mode == "shadow" and self.action != "hold":
            return f"{because} (shadow mode: nothing changed)"
        return because

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": asdict(self.request),
            "action": self.action,
            "rule": self.rule,
            "rule_index": self.rule_index,
            "rule_action": self.rule_action,
            "mode": self.mode,
            "effective": self.effective,
            "reason": self.reason,
            "conditions": [asdict(c) for c in self.conditions],
            "invariants": [asdict(c) for c in self.invariants],
            "violations": [c.code for c in self.violations],
            "rules_digest": self.rules_digest,
            "problem": None
            if self.problem is None
            else {
                "kind": self.problem.kind,
                "message": self.problem.message,
                "errors": [str(e) for e in self.problem.errors],
                "source": self.problem.source,
            },
        }


# --------------------------------------------------------------------------------------------------


def parse_role_arn(arn: str, partition: str = DEFAULT_PARTITION) -> tuple[str, str, str] | None:
    """(account, path, name) of an IAM role ARN in `partition` (the deployment's), or None when it is not one:
    a role in another partition is in no account of this Organization, whatever its account ID says."""
    parsed = ids.parse_role_arn(arn, partition=partition)
    return None if parsed is None else (parsed.account_id, parsed.path, parsed.name)


def _role_fact(arn: str | None, partition: str) -> tuple[str, str] | None:
    if not arn:
        return None
    parsed = parse_role_arn(arn, partition)
    if parsed is None:
        return None
    _, path, name = parsed
    return name.lower(), (path + name).lower()  # IAM names ignore case


def _facts(request: ConnectionRequest, account: MemberAccount | None, partition: str) -> tuple[Any, ...]:
    return (
        request.environment_account_id,  # SLOT_ACCOUNT_ID
        account.ou_keys if account is not None else None,  # SLOT_OU_KEYS
        account.tags if account is not None else None,  # SLOT_TAGS
        request.environment_name,  # SLOT_ENVIRONMENT_NAME
        _role_fact(request.role_arn, partition),  # SLOT_ROLE
        _role_fact(request.component_role_arn, partition),  # SLOT_COMPONENT_ROLE
        _role_fact(request.codebuild_role_arn, partition),  # SLOT_CODEBUILD_ROLE
        request.region,  # SLOT_REGION
    )


def _actual(slot: int, request: ConnectionRequest, account: MemberAccount | None, expected: str, partition: str) -> str:
    if slot == SLOT_ACCOUNT_ID:
        return request.environment_account_id
    if slot == SLOT_ENVIRONMENT_NAME:
        return request.environment_name
    if slot == SLOT_REGION:
        return request.region
    if slot in (SLOT_ROLE, SLOT_COMPONENT_ROLE, SLOT_CODEBUILD_ROLE):
        arn = {
            SLOT_ROLE: request.role_arn,
            SLOT_COMPONENT_ROLE: request.component_role_arn,
            SLOT_CODEBUILD_ROLE: request.codebuild_role_arn,
        }[slot]
        if not arn:
            return "no such role in the request"
        return arn if parse_role_arn(arn, partition) is not None else f"{arn} (not an IAM role ARN in {partition})"
    if account is None:
        return "account unknown to this Organization"
    if slot == SLOT_OU_KEYS:
        ids = "/".join(account.ou_ids)
        return f"OU path {account.ou_path or '(root)'}" + (f" [{ids}]" if ids else "")
    if slot == SLOT_TAGS:
        asked = [part.split("=", 1)[0] for part in expected.removeprefix("tags ").split(", ") if "=" in part]
        shown = {key: account.tags.get(key) for key in asked}
        return ", ".join(f"{key}={value if value is not None else '(absent)'}" for key, value in shown.items())
    return "?"


def evaluate_rule(
    rule: CompiledRule,
    request: ConnectionRequest,
    account: MemberAccount | None,
    *,
    partition: str = DEFAULT_PARTITION,
) -> RuleEvaluation:
    """Every condition of one rule, evaluated in full: for explaining, not for deciding."""
    account = _same_account(request, account)
    return _evaluate(rule, _facts(request, account, partition), request, account, partition)


def _evaluate(
    rule: CompiledRule,
    facts: tuple[Any, ...],
    request: ConnectionRequest,
    account: MemberAccount | None,
    partition: str,
) -> RuleEvaluation:
    results = tuple(
        ConditionResult(
            field=c.field,
            expected=c.expected,
            actual=_actual(c.slot, request, account, c.expected, partition),
            held=bool(c.test(facts[c.slot])),
        )
        for c in rule.conditions
    )
    return RuleEvaluation(rule.index, rule.name, rule.action, all(r.held for r in results), results)


def explain_all(
    request: ConnectionRequest,
    rules: RuleSet,
    account: MemberAccount | None,
    *,
    partition: str = DEFAULT_PARTITION,
) -> tuple[RuleEvaluation, ...]:
    """Every rule against the request, in order, for `gatehouse rules test --all`."""
    return tuple(evaluate_rule(rule, request, account, partition=partition) for rule in rules.rules)


def _same_account(request: ConnectionRequest, account: MemberAccount | None) -> MemberAccount | None:
    # A directory that answers about another account is as good as no answer.
    if account is not None and account.account_id != request.environment_account_id:
        return None
    return account


def _invariants(
    request: ConnectionRequest,
    rules: RuleSet | RuleSetProblem,
    account: MemberAccount | None,
    this_account_id: str,
    matched: CompiledRule | None,
    *,
    partition: str,
) -> tuple[InvariantCheck, ...]:
    if isinstance(rules, RuleSetProblem):
        rules_check = InvariantCheck(
            INVARIANT_RULES,
            "the rule set is present and valid",
            False,
            f"the rule set is {rules.kind}: {rules.message}",
        )
    else:
        rules_check = InvariantCheck(
            INVARIANT_RULES, "the rule set is present and valid", True, f"rules {rules.digest}"
        )

    outside: list[str] = []
    if not is_account_id(request.environment_account_id):
        outside.append(f"the environment account {request.environment_account_id!r} is not a 12-digit account ID")
    for field_name, arn in request.role_arns():
        parsed = parse_role_arn(arn, partition) if arn else None
        if parsed is None:
            outside.append(f"{field_name} {arn or '(empty)'} is not an IAM role ARN in partition {partition}")
        elif parsed[0] != request.environment_account_id:
            outside.append(f"{field_name} {arn} is in account {parsed[0]}")
    roles_check = InvariantCheck(
        INVARIANT_ROLES,
        f"every role is in the environment account {request.environment_account_id}",
        not outside,
        "; ".join(outside) if outside else "all roles are in the environment account",
    )

    if account is not None and account.is_active:
        member_check = InvariantCheck(
            INVARIANT_MEMBER,
            "the environment account is an active member of this Organization",
            True,
            f"{account.account_id} ({account.name}) is ACTIVE",
        )
    else:
        why = (
            f"{request.environment_account_id} is not a member of this Organization"
            if account is None
            else f"{account.account_id} ({account.name}) is {account.status}, not ACTIVE"
        )
        names_it = (
            matched is not None
            and matched.account_ids is not None
            and request.environment_account_id in matched.account_ids
        )
        member_check = InvariantCheck(
            INVARIANT_MEMBER,
            "the environment account is an active member of this Organization",
            names_it,
            why + (f"; rule {matched.name!r} names this account explicitly" if names_it and matched else ""),
            waived_by=matched.name if names_it and matched else None,
        )

    management_ok = request.management_account_id == this_account_id
    management_check = InvariantCheck(
        INVARIANT_MANAGEMENT,
        f"the request names this account ({this_account_id}) as its management account",
        management_ok,
        f"the request names {request.management_account_id}"
        + ("" if management_ok else f", not this account {this_account_id}"),
    )
    return rules_check, roles_check, member_check, management_check


def decide(
    request: ConnectionRequest,
    rules: RuleSet | RuleSetProblem,
    account: MemberAccount | None,
    this_account_id: str,
    *,
    partition: str = DEFAULT_PARTITION,
) -> Decision:
    """First matching rule wins; then the invariants, which can only turn the answer into a hold.

    `partition` is the deployment's (`aws` unless deployed in China or GovCloud, say): a role ARN in any other
    partition is not in the environment account."""
    account = _same_account(request, account)
    matched: CompiledRule | None = None
    facts = _facts(request, account, partition)
    if isinstance(rules, RuleSet):
        for rule in rules.candidates(request.environment_account_id):
            # Inlined CompiledRule.matches: this loop is the engine's hot path.
            for slot, test in rule.tests:
                if not test(facts[slot]):
                    break
            else:
                matched = rule
                break
        rule_action: Action = matched.action if matched is not None else rules.default_action
        mode: DecisionMode = rules.mode
        digest: str | None = rules.digest
        problem = None
    else:
        rule_action, mode, digest, problem = "hold", "no-rules", None, rules

    invariants = _invariants(request, rules, account, this_account_id, matched, partition=partition)
    held = all(check.held for check in invariants)
    action: Action = rule_action if held else "hold"
    conditions = _evaluate(matched, facts, request, account, partition).conditions if matched is not None else ()
    return Decision(
        request=request,
        action=action,
        rule=matched.name if matched is not None else None,
        rule_index=matched.index if matched is not None else None,
        rule_action=rule_action,
        mode=mode,
        effective=mode == "enforce" and action != "hold",
        conditions=conditions,
        invariants=invariants,
        rules_digest=digest,
        problem=problem,
    )
