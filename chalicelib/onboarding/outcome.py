"""What one account job, onboarding or offboarding, did to one account, and the one notification that says so."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from chalicelib.core.notifications import Notification

ONBOARDING_KIND = "account-onboarding"
OFFBOARDING_KIND = "account-offboarding"
Outcome = Literal[
    "onboarded", "repaired", "unchanged", "skipped", "failed", "creation-failed", "rejected", "offboarded", "kept"
]


@dataclass
class AccountOutcome:
    """What one onboarding or offboarding job did to one account: the handler's answer and the notification's body."""

    account_id: str
    outcome: Outcome
    reason: str
    account_name: str = ""
    ou_path: str = ""
    role_arn: str = ""
    access_role: str = ""
    role_changes: list[str] = field(default_factory=list)
    registration: str = "none"  # created | updated | unchanged | none
    cloudcraft_id: str | None = None
    trigger: str = ""
    event_kind: str = ONBOARDING_KIND
    deregistered: list[str] = field(default_factory=list)
    role_deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


HEADLINES = {
    "onboarded": "connected to Cloudcraft",
    "repaired": "Cloudcraft connection repaired",
    "unchanged": "Cloudcraft connection already in order",
    "skipped": "skipped (out of scope)",
    "failed": "onboarding FAILED",
    "creation-failed": "account creation FAILED",
    "rejected": "event REJECTED (malformed)",
    "offboarded": "disconnected from Cloudcraft",
    "kept": "left the scope; Cloudcraft connection kept",
}


def outcome_notification(result: AccountOutcome) -> Notification:
    who = result.account_name or result.account_id  # a failed creation has a name but no account ID
    if result.account_name and result.account_id:
        who = f"{result.account_name} ({result.account_id})"
    lines = [f"Account {who}: {HEADLINES[result.outcome]}.", "", f"Why: {result.reason}"]
    if result.ou_path:
        lines.append(f"OU: {result.ou_path}")
    if result.role_arn:
        lines.append(f"Role: {result.role_arn} (assumed via {result.access_role})")
    if result.cloudcraft_id:
        lines.append(f"Cloudcraft account: {result.cloudcraft_id} ({result.registration})")
    if result.trigger:
        lines.append(f"Trigger: {result.trigger}")
    if result.outcome in ("failed", "creation-failed", "rejected"):
        lines += ["", "Nothing further was changed. The daily reconciliation will try again once this is fixed."]
    return Notification(
        subject=f"Gatehouse: {who} {HEADLINES[result.outcome]}",
        text="\n".join(lines),
        body=result.to_dict(),
        attributes={"event_kind": result.event_kind, "outcome": result.outcome, "account_id": result.account_id},
    )
