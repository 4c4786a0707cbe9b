"""The reconciliation's full report: one structured log line per account and per registration, with the run ID;
and the summary that fits in one SNS message however large the Organization, saying where the full report is."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.core.notifications import SNS_MESSAGE_MAX_BYTES, Notification
from chalicelib.planning.plan import FleetPlan

REPORT_MESSAGE = "reconciliation entry"  # the `message` of each report line
# Categories, in the order the summary lists them.
UNREADABLE = "could not be read"
REFUSED = "cloudcraft answer refused"
HELD = "principal change held"
CHANGES = "changes"
DEREGISTER = "deregister orphan"
FOREIGN = "orphan not owned (left alone)"
KEPT = "owned orphan kept (offboarding=keep)"
IN_ORDER = "in order"
OUT_OF_SCOPE = "out of scope"
CATEGORIES = (UNREADABLE, REFUSED, HELD, CHANGES, DEREGISTER, FOREIGN, KEPT, IN_ORDER, OUT_OF_SCOPE)
HEADINGS = {
    UNREADABLE: "Accounts that could not be read",
    REFUSED: "Cloudcraft's answer was REFUSED; nothing was written for these accounts",
    HELD: "Principal changes held; nothing was written for these accounts",
    CHANGES: "Accounts with changes",
    DEREGISTER: "Owned registrations to deregister",
    FOREIGN: "Registrations of accounts outside the scope that Gatehouse does not own (left alone)",
    KEPT: "Owned registrations outside the scope, kept (offboarding=keep)",
}
# How many entries of each category a cut summary keeps: the most that fit, tried from the first.
KEEP_PER_CATEGORY = (50, 20, 10, 5, 2, 1, 0)
INSIGHTS_LIMIT = 10_000  # rows one Logs Insights query returns by default


@dataclass(frozen=True)
class ReportLocation:
    """Where a run's full report is: the reconcile function's log group, and the Logs Insights query."""

    log_group: str
    run_id: str

    @property
    def query(self) -> str:
        return (
            "fields @timestamp, category, account_id, account_name, detail"
            f' | filter message = "{REPORT_MESSAGE}" and run_id = "{self.run_id}"'
            f" | sort account_id asc | limit {INSIGHTS_LIMIT}"
        )

    def to_dict(self) -> dict[str, str]:
        return {"log_group": self.log_group, "run_id": self.run_id, "logs_insights_query": self.query}

    def describe(self) -> list[str]:
        return [
            f"Full report: CloudWatch Logs Insights on log group {self.log_group} (time range: this run), query:",
            f"  {self.query}",
            f"  (or: aws logs start-query --log-group-name {self.log_group} --start-time <epoch s> "
            "--end-time <epoch s> --query-string '<the query>')",
        ]


def report_entries(plan: FleetPlan) -> Iterator[dict[str, Any]]:
    """One entry per account and per registration no in-scope account claims: what the run found and plans."""
    for account_plan in plan.accounts:
        account = account_plan.account
        if account_plan.error:
            category, detail = UNREADABLE, account_plan.error
        elif account_plan.refused:
            category, detail = REFUSED, account_plan.refused
        elif account_plan.held:
            category, detail = HELD, account_plan.held
        elif not account_plan.scope.in_scope:
            category, detail = OUT_OF_SCOPE, account_plan.scope.reason
        elif account_plan.changes:
            category, detail = CHANGES, "; ".join(account_plan.actions())
        else:
            category, detail = IN_ORDER, ""
        yield {
            "category": category,
            "account_id": account.account_id,
            "account_name": account.name,
            "ou_path": account.ou_path,
            "detail": detail,
        }
    deregistered = {orphan.registration_id for orphan in plan.deregistrations}
    for orphan in plan.orphans:
        category = DEREGISTER if orphan.registration_id in deregistered else KEPT if orphan.owned else FOREIGN
        yield {
            "category": category,
            "account_id": orphan.aws_account_id or "",
            "account_name": orphan.name,
            "registration_id": orphan.registration_id,
            "detail": orphan.reason,
        }


def _line(entry: dict[str, Any]) -> str:
    who = f"{entry['account_id'] or '(no account)'} {entry['account_name']}".strip()
    if entry.get("registration_id"):
        who += f" [registration {entry['registration_id']}]"
    return f"  {who}: {entry['detail']}" if entry["detail"] else f"  {who}"


def cut_reconciliation_notification(
    plan: FleetPlan,
    *,
    headline: str,
    subject: str,
    outcome: str,
    queued: int,
    queued_line: str,
    run_id: str,
    location: ReportLocation | None,
    limit: int = SNS_MESSAGE_MAX_BYTES,
) -> Notification:
    """The summary of a run too large for one message: the counts, the first entries of each category, how many
    were left out, and where the full report is. Keeps as many entries per category as fit in `limit`."""
    by_category: dict[str, list[dict[str, Any]]] = {category: [] for category in CATEGORIES}
    for entry in report_entries(plan):
        by_category[entry["category"]].append(entry)
    summary = dict(plan.summary())
    notification = None
    for keep in KEEP_PER_CATEGORY:
        left_out = sum(max(0, len(by_category[c]) - keep) for c in HEADINGS)
        lines = [headline, ""]
        lines += [f"  {action}: {count}" for action, count in sorted(summary.items())]
        if queued_line:
            lines += ["", queued_line]
        lines += [
            "",
            f"This summary is cut to fit one SNS message: it lists the first {keep} of each kind of entry "
            f"below; {left_out} entries are left out.",
        ]
        lines += location.describe() if location else ["Full report: the reconcile function's CloudWatch Logs."]
        categories: dict[str, Any] = {}
        for category in CATEGORIES:
            entries = by_category[category]
            if category in HEADINGS and entries:
                shown = entries[:keep]
                lines += ["", f"{HEADINGS[category]} ({len(shown)} of {len(entries)}):"]
                lines += [_line(entry) for entry in shown]
                categories[category] = {"count": len(entries), "first": shown, "left_out": len(entries) - len(shown)}
            elif entries:
                categories[category] = {"count": len(entries), "first": [], "left_out": len(entries)}
        body = {
            "event_kind": "reconciliation",
            "outcome": outcome,
            "queued": queued,
            "run_id": run_id,
            "changes": plan.changes,
            "summary": summary,
            "truncated": True,
            "categories": categories,
            "full_report": location.to_dict() if location else None,
        }
        notification = Notification(
            subject=subject,
            text="\n".join(lines),
            body=body,
            attributes={"event_kind": "reconciliation", "outcome": outcome},
        )
        if notification.sns_size() <= limit:
            return notification
    assert notification is not None
    return notification  # with no entries at all; the SNS adapter cuts what still does not fit
