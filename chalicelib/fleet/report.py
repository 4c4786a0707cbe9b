"""The reconciliation's full report: one structured log line per account and per registration, with the run ID;
and its tally, the bounded summary of a run that pages add up (fleet/fanout.py), which fits one SNS message
however large the Organization and says where the full report is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.notifications import Notification
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
# Categories counted only: an account in order or out of scope needs no line of its own in the summary.
COUNTED_ONLY = frozenset({IN_ORDER, OUT_OF_SCOPE})
EXAMPLES = 10  # accounts the summary names per reason
REASONS = 20  # distinct reasons the summary keeps per category; the rest are counted
RECONCILE_KIND = "reconciliation"
INSIGHTS_LIMIT = 10_000  # rows one Logs Insights query returns by default


@dataclass(frozen=True)
class ReportLocation:
    """Where a run's full report is: the log groups of the reconcile functions (the coordinator logs the orphans
    of accounts gone from the Organization, the pages their accounts), and the Logs Insights query."""

    log_groups: tuple[str, ...]
    run_id: str

    @classmethod
    def of_function(cls, log_group: str, run_id: str) -> ReportLocation:
        """From either function's log group (`.../gatehouse-<stage>-reconcile` or `..._page`)."""
        base = log_group.removesuffix("_page")
        return cls((base, base + "_page"), run_id)

    @property
    def query(self) -> str:
        return (
            "fields @timestamp, category, account_id, account_name, detail"
            f' | filter message = "{REPORT_MESSAGE}" and run_id = "{self.run_id}"'
            f" | sort account_id asc | limit {INSIGHTS_LIMIT}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"log_groups": list(self.log_groups), "run_id": self.run_id, "logs_insights_query": self.query}

    def describe(self) -> list[str]:
        return [
            f"Full report: CloudWatch Logs Insights on log groups {' and '.join(self.log_groups)} (time range: this "
            "run), query:",
            f"  {self.query}",
            f"  (or: aws logs start-query --log-group-names {' '.join(self.log_groups)} --start-time <epoch s> "
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


def _label(entry: dict[str, Any]) -> str:
    """How the summary names an entry: the account ID; a registration by its name and account."""
    if entry.get("registration_id"):
        return f"{entry['account_name']} ({entry['account_id'] or 'no AWS account in its role ARN'})"
    return str(entry["account_id"])


@dataclass
class ReasonTally:
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class CategoryTally:
    count: int = 0
    reasons: dict[str, ReasonTally] = field(default_factory=dict)
    other_reasons: int = 0  # entries whose reason was past the first REASONS: counted, not named

    def add(self, reason: str, count: int, examples: Iterable[str]) -> None:
        self.count += count
        if reason not in self.reasons and len(self.reasons) >= REASONS:
            self.other_reasons += count
            return
        tally = self.reasons.setdefault(reason, ReasonTally())
        tally.count += count
        room = EXAMPLES - len(tally.examples)
        if room > 0:
            tally.examples.extend(list(examples)[:room])

    @property
    def left_out(self) -> int:
        return self.count - sum(len(r.examples) for r in self.reasons.values())


@dataclass
class RunTally:
    """What a reconciliation found, summed over its pages: exact counts, and at most REASONS reasons with
    EXAMPLES accounts each per category, so its size and the summary's do not grow with the Organization."""

    accounts: int = 0
    queued: int = 0
    changes: bool = False
    summary: Counter[str] = field(default_factory=Counter)
    categories: dict[str, CategoryTally] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: FleetPlan, *, queued: int) -> RunTally:
        tally = cls(accounts=len(plan.accounts), queued=queued, changes=plan.changes, summary=plan.summary())
        for entry in report_entries(plan):
            category = tally.categories.setdefault(entry["category"], CategoryTally())
            if entry["category"] in COUNTED_ONLY:
                category.count += 1
            else:
                category.add(entry["detail"], 1, [_label(entry)])
        return tally

    def merge(self, other: RunTally) -> None:
        self.accounts += other.accounts
        self.queued += other.queued
        self.changes = self.changes or other.changes
        self.summary.update(other.summary)
        for name, theirs in other.categories.items():
            mine = self.categories.setdefault(name, CategoryTally())
            for reason, counted in theirs.reasons.items():
                mine.add(reason, counted.count, counted.examples)
            mine.count += theirs.count - sum(r.count for r in theirs.reasons.values())
            mine.other_reasons += theirs.other_reasons

    def count(self, category: str) -> int:
        return self.categories[category].count if category in self.categories else 0

    @property
    def outcome(self) -> str:
        if self.count(UNREADABLE) or self.count(REFUSED) or self.count(HELD):
            return "failed"
        return "drift" if self.changes else "in-order"

    def examples(self, category: str) -> dict[str, str]:
        """The accounts named under `category`, with their reason (account IDs of account categories)."""
        found = self.categories.get(category)
        return {label: reason for reason, r in found.reasons.items() for label in r.examples} if found else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "queued": self.queued,
            "changes": self.changes,
            "summary": dict(self.summary),
            "categories": {
                name: {
                    "count": c.count,
                    "reasons": [{"reason": k, "count": r.count, "examples": r.examples} for k, r in c.reasons.items()],
                    "other_reasons": c.other_reasons,
                }
                for name, c in self.categories.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTally:
        """A tally as to_dict wrote it (a part of a run, read back from Gatehouse's table)."""
        tally = cls(
            accounts=int(data["accounts"]),
            queued=int(data["queued"]),
            changes=bool(data["changes"]),
            summary=Counter({str(k): int(v) for k, v in data["summary"].items()}),
        )
        for name, raw in data["categories"].items():
            category = CategoryTally(count=int(raw["count"]), other_reasons=int(raw["other_reasons"]))
            for reason in raw["reasons"]:
                category.reasons[str(reason["reason"])] = ReasonTally(
                    int(reason["count"]), [str(e) for e in reason["examples"]][:EXAMPLES]
                )
            tally.categories[str(name)] = category
        return tally


def run_notification(
    tally: RunTally, *, repair: bool, run_id: str = "", location: ReportLocation | None = None
) -> Notification:
    """One summary per run: counts by action, then each kind of finding grouped by reason, naming up to ten
    accounts each; when any are left out, where the full report is."""
    outcome = tally.outcome
    headline = f"Reconciliation of {tally.accounts} accounts: {outcome}."
    lines = [headline, ""] + [f"  {action}: {count}" for action, count in sorted(tally.summary.items())]
    if tally.changes:
        lines += [
            "",
            f"{tally.queued} repairs queued for the fleet worker."
            if repair
            else "Repairs not queued: reconcile=report.",
        ]
    left_out = 0
    for category in (REFUSED, HELD, UNREADABLE, CHANGES, DEREGISTER, FOREIGN, KEPT):
        found = tally.categories.get(category)
        if not found or not found.count:
            continue
        lines += ["", f"{HEADINGS[category]}:"]
        for reason, counted in found.reasons.items():
            more = counted.count - len(counted.examples)
            named = ", ".join(counted.examples) + (f" and {more} more" if more else "")
            lines.append(f"  {reason or '(no detail)'} ({counted.count} account(s): {named})")
        if found.other_reasons:
            lines.append(f"  ... and {found.other_reasons} more for other reasons")
        left_out += found.left_out
    if left_out:
        lines += ["", f"{left_out} entries are left out of this summary (it names {EXAMPLES} accounts per reason)."]
        lines += location.describe() if location else ["Full report: the reconcile functions' CloudWatch Logs."]
    if run_id:
        lines += ["", f"Run: {run_id}"]
    body = {
        "event_kind": RECONCILE_KIND,
        "outcome": outcome,
        "run_id": run_id,
        **tally.to_dict(),
        "failed": tally.examples(UNREADABLE),
        "refused": tally.examples(REFUSED),
        "held": tally.examples(HELD),
        "truncated": bool(left_out),
        "full_report": location.to_dict() if location else None,
    }
    return Notification(
        subject=f"Gatehouse: reconciliation {outcome} ({tally.accounts} accounts)",
        text="\n".join(lines),
        body=body,
        attributes={"event_kind": RECONCILE_KIND, "outcome": outcome},
    )


def failed_run_notification(error: str, *, run_id: str = "") -> Notification:
    """The run could not start (or could not add up its pages): nothing was changed."""
    return Notification(
        subject="Gatehouse: reconciliation FAILED",
        text=f"The reconciliation could not plan the Organization.\n\nWhy: {error}\n\nNothing was changed.",
        body={"event_kind": RECONCILE_KIND, "outcome": "failed", "reason": error, "run_id": run_id},
        attributes={"event_kind": RECONCILE_KIND, "outcome": "failed"},
    )
