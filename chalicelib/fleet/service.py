"""The whole Organization at once: plan every account concurrently, then apply at Cloudcraft's pace."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.member import MemberSession
from chalicelib.core.errors import GatehouseError
from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import SNS_MESSAGE_MAX_BYTES, Notification
from chalicelib.core.settings import Settings
from chalicelib.fleet.report import ReportLocation, cut_reconciliation_notification
from chalicelib.planning.executor import Executor
from chalicelib.planning.plan import (
    AccountPlan,
    Cloudcraft,
    CloudcraftIdentity,
    FleetPlan,
    MemberView,
    plan_account,
    plan_orphans,
)
from chalicelib.planning.scope import check_scope

log = logging.getLogger("gatehouse.fleet")
DEFAULT_WORKERS = 16  # member-account reads run in parallel; Cloudcraft writes never do


class FleetDirectory(Protocol):
    def list_members(self, *, with_tags: bool = True) -> list[MemberAccount]: ...
    def tags(self, resource_id: str) -> dict[str, str]: ...


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)  # account IDs brought in line
    deregistered: list[str] = field(default_factory=list)  # registration IDs
    failed: dict[str, str] = field(default_factory=dict)  # account or registration ID → why

    def to_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "deregistered": self.deregistered, "failed": self.failed}


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    writes_left: int
    eta_seconds: float


class Fleet:
    def __init__(
        self,
        *,
        settings: Settings,
        directory: FleetDirectory,
        member_session: Callable[[str], MemberSession],
        cloudcraft: Cloudcraft,
        identity: Callable[[], CloudcraftIdentity],
        ledger: Ledger,
        executor: Executor,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._member_session = member_session
        self._cloudcraft = cloudcraft
        self._identity = identity
        self._ledger = ledger
        self._executor = executor
        self._workers = workers

    # --- plan (reads only) -------------------------------------------------------------------------------
    def plan(self) -> FleetPlan:
        settings = self._settings
        members = self._directory.list_members(with_tags=False)
        registrations = list(self._cloudcraft.list_accounts())
        identity = self._identity()
        owned = self._ledger.owned()

        def one(member: MemberAccount) -> tuple[MemberAccount, MemberView | None]:
            if settings.opt_out_tag is not None:
                member = replace(member, tags=self._directory.tags(member.account_id))
            if not check_scope(member, settings).in_scope:
                return member, None
            return member, self.read_member(member.account_id)

        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            read = list(pool.map(one, members))
        plan = FleetPlan(offboarding=settings.offboarding, registrations=registrations)
        plan.accounts = [
            plan_account(member, settings, identity, view, registrations=registrations, owned=owned)
            for member, view in read
        ]
        plan.orphans = plan_orphans([member for member, _ in read], settings, registrations, owned)
        return plan

    def read_member(self, account_id: str) -> MemberView:
        """The Cloudcraft role in one account, or the reason it could not be read (never raises)."""
        try:
            member = self._member_session(account_id)
            role = member.iam().read_role(
                self._settings.cloudcraft_role_name,
                inline_documents=self._settings.permission_mode != "read-only-access",
            )
        except GatehouseError as exc:
            return MemberView(error=str(exc))
        return MemberView(member.access_role, role)

    # --- apply -------------------------------------------------------------------------------------------
    def apply(
        self,
        plan: FleetPlan,
        *,
        requests_per_minute: float,
        progress: Callable[[Progress], None] | None = None,
    ) -> ApplyReport:
        """Carry out a plan, one account at a time (Cloudcraft's rate limit is the pace, not AWS)."""
        report = ApplyReport()
        todo: Sequence[AccountPlan] = [p for p in plan.accounts if p.changes]
        writes_left = plan.cloudcraft_writes()
        total = len(todo) + len(plan.deregistrations)
        done = 0

        def tick() -> None:
            if progress is not None:
                progress(Progress(done, total, writes_left, writes_left * 60.0 / requests_per_minute))

        tick()
        for account_plan in todo:
            account_id = account_plan.account.account_id
            try:
                self._executor.execute(account_plan, self._member_session(account_id).iam())
                report.applied.append(account_id)
            except GatehouseError as exc:
                log.error("apply failed for %s: %s", account_id, exc)
                report.failed[account_id] = str(exc)
            done += 1
            writes_left -= account_plan.cloudcraft_writes
            tick()
        for orphan in plan.deregistrations:
            try:
                self._executor.deregister(orphan)
                report.deregistered.append(orphan.registration_id)
            except GatehouseError as exc:
                report.failed[orphan.registration_id] = str(exc)
            done += 1
            writes_left -= 1
            tick()
        return report


RECONCILE_KIND = "reconciliation"


def reconciliation_notification(
    plan: FleetPlan | None,
    error: str,
    *,
    queued: int,
    repair: bool,
    run_id: str = "",
    location: ReportLocation | None = None,
) -> Notification:
    """One summary per run: counts by action, and the accounts that failed and why. A run too large for one SNS
    message gets a cut summary that says where the full report is (`location`, see fleet/report.py)."""
    if plan is None:
        return Notification(
            subject="Gatehouse: reconciliation FAILED",
            text=f"The reconciliation could not plan the Organization.\n\nWhy: {error}\n\nNothing was changed.",
            body={"event_kind": RECONCILE_KIND, "outcome": "failed", "reason": error, "run_id": run_id},
            attributes={"event_kind": RECONCILE_KIND, "outcome": "failed"},
        )
    summary = plan.summary()
    failed = {p.account.account_id: p.error for p in plan.accounts if p.error}
    outcome = "failed" if failed else "drift" if plan.changes else "in-order"
    headline = f"Reconciliation of {len(plan.accounts)} accounts: {outcome}."
    subject = f"Gatehouse: reconciliation {outcome} ({len(plan.accounts)} accounts)"
    queued_line = ""
    if plan.changes:
        queued_line = (
            f"{queued} repairs queued for the fleet worker." if repair else "Repairs not queued: reconcile=report."
        )
    lines = [headline, ""]
    lines += [f"  {action}: {count}" for action, count in sorted(summary.items())]
    if queued_line:
        lines += ["", queued_line]
    if failed:
        lines += ["", "Accounts that could not be read:"] + [
            f"  {account}: {why}" for account, why in sorted(failed.items())
        ]
    unowned = [o for o in plan.orphans if not o.owned]
    if unowned:
        lines += ["", "Registrations of accounts outside the scope that Gatehouse does not own (left alone):"]
        lines += [f"  {o.name} ({o.aws_account_id}): {o.reason}" for o in unowned]
    if run_id:
        lines += ["", f"Run: {run_id}"]
    notification = Notification(
        subject=subject,
        text="\n".join(lines),
        body={
            "event_kind": RECONCILE_KIND,
            "outcome": outcome,
            "queued": queued,
            "failed": failed,
            "run_id": run_id,
            **plan.to_dict(),
        },
        attributes={"event_kind": RECONCILE_KIND, "outcome": outcome},
    )
    if notification.sns_size() <= SNS_MESSAGE_MAX_BYTES:
        return notification
    return cut_reconciliation_notification(
        plan,
        headline=headline,
        subject=subject,
        outcome=outcome,
        queued=queued,
        queued_line=queued_line,
        run_id=run_id,
        location=location,
    )
