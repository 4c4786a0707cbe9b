"""The message about one approval decision: the rule, each condition and each invariant, for people and machines."""

from __future__ import annotations

from typing import Any

from chalicelib.approvals.engine import Decision
from chalicelib.core.notifications import Notification
from chalicelib.events import event_id_of

LABELS = {"proton-connection": "Proton environment account connection"}

HEADLINES = {
    "accepted": "Accepted",
    "rejected": "Rejected",
    "held": "Held for a person",
    "conflict": "Could not be changed (in use)",
    "state-changed": "Already decided elsewhere",
    "not-found": "Gone before it could be changed",
    "not-pending": "Left alone (not pending)",
    "in-progress": "Being decided by another run",
}

NEXT_STEPS = {
    "held": "It stays PENDING. Accept or reject it yourself, or change the rules; the next sweep decides it again.",
    "conflict": "The service refused the change; Gatehouse will not retry it. Resolve it by hand.",
    "state-changed": "Someone else accepted or rejected it between Gatehouse's read and its call.",
    "shadow": "Shadow mode: nothing was changed. Switch the rule set to 'enforce' to let Gatehouse act.",
}


def _mark(held: bool) -> str:
    return "yes" if held else "NO "


def headline(decision: Decision, result: str) -> str:
    if result == "shadow":
        return f"Shadow mode: would {decision.action}"
    return HEADLINES.get(result, result)


def explain(
    decision: Decision, result: str, trigger: str, *, kind: str = "proton-connection", title: str | None = None
) -> str:
    """The human text: what was asked, what was decided and why, condition by condition."""
    request = decision.request
    label = LABELS.get(kind, kind)
    lines = [
        f"{title or headline(decision, result)}: {label} {request.id}",
        "",
        "Request",
        f"  environment:        {request.environment_name} in {request.environment_account_id}, {request.region}",
        f"  role:               {request.role_arn or '-'}",
        f"  component role:     {request.component_role_arn or '-'}",
        f"  codebuild role:     {request.codebuild_role_arn or '-'}",
        f"  management account: {request.management_account_id}",
        "",
        f"Decision: {decision.action.upper()} (mode {decision.mode}, found by {trigger})",
        f"  {decision.reason}",
    ]
    if decision.problem is not None:
        lines += ["", f"Rule set: {decision.problem.kind}: {decision.problem.message}"]
        lines += [f"  - {error}" for error in decision.problem.errors[:20]]
        if len(decision.problem.errors) > 20:
            lines.append(f"  ... and {len(decision.problem.errors) - 20} more")
    elif decision.rule is not None:
        lines += ["", f"Rule #{decision.rule_index} {decision.rule!r} (action {decision.rule_action})"]
        if not decision.conditions:
            lines.append("  (no conditions: matches every request)")
        for condition in decision.conditions:
            lines.append(
                f"  [{_mark(condition.held)}] {condition.field}: wanted {condition.expected}; got {condition.actual}"
            )
    else:
        lines += ["", f"No rule matched; the default action is {decision.rule_action} (rules {decision.rules_digest})"]
    lines += ["", "Invariants (no rule can override these)"]
    for check in decision.invariants:
        lines.append(f"  [{_mark(check.held)}] {check.requirement}: {check.detail}")
    step = NEXT_STEPS.get(result)
    if step:
        lines += ["", step]
    return "\n".join(lines)


def build_notification(
    decision: Decision, result: str, trigger: str, *, kind: str = "proton-connection"
) -> Notification:
    request = decision.request
    label = LABELS.get(kind, kind)
    subject = (
        f"Gatehouse: {headline(decision, result)} - {label} {request.environment_name} "
        f"from {request.environment_account_id}"
    )
    body: dict[str, Any] = {
        "event_kind": kind,
        "result": result,
        "trigger": trigger,
        **decision.to_dict(),
    }
    return Notification(
        subject=subject,
        text=explain(decision, result, trigger, kind=kind),
        body=body,
        attributes={
            "event_kind": kind,
            "decision": decision.action,
            "mode": decision.mode,
            "account_id": request.environment_account_id,
            "result": result,
        },
    )


def malformed_event_notification(event: Any, problem: str, *, kind: str = "proton-connection") -> Notification:
    """A connection event Gatehouse cannot read: nothing is decided, and ops are told why."""
    event_id = event_id_of(event)
    return Notification(
        subject=f"Gatehouse: {LABELS.get(kind, kind)} event REJECTED (malformed)",
        text=(
            f"Event {event_id} could not be read: {problem}.\n\nNothing was decided. The scheduled sweep still "
            "finds every pending connection, so no request is lost."
        ),
        body={"event_kind": kind, "result": "rejected", "event_id": event_id, "reason": problem},
        attributes={"event_kind": kind, "decision": "none", "result": "rejected"},
    )
