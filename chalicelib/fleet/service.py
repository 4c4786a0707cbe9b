"""The whole Organization at once: plan every account concurrently, then apply at Cloudcraft's pace."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from chalicelib.adapters.lease import AccountLeases
from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.member import MemberSession
from chalicelib.core.errors import AccessRoleUnavailableError, GatehouseError
from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import SNS_MESSAGE_MAX_BYTES, Notification
from chalicelib.core.settings import Settings
from chalicelib.fleet.report import ReportLocation, cut_reconciliation_notification
from chalicelib.planning.executor import ExecutionResult, Executor
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import (
    PRINCIPAL_CHANGE_HELD,
    AccountPlan,
    Cloudcraft,
    CloudcraftIdentity,
    FleetPlan,
    MemberView,
    OrphanPlan,
    plan_account,
    plan_orphans,
    refusal,
)
from chalicelib.planning.registration import Registration, RegistrationIndex
from chalicelib.planning.scope import check_scope, management_refusal

log = logging.getLogger("gatehouse.fleet")
DEFAULT_WORKERS = 16  # member-account reads run in parallel; Cloudcraft writes never do


# Cloudcraft's list as a caller already has it, or how to get it when a job first needs it (the worker's batch).
KnownRegistrations = Sequence[Registration] | Callable[[], Sequence[Registration]]


class FleetDirectory(Protocol):
    def list_members(self, *, with_tags: bool = True) -> list[MemberAccount]: ...
    def tags(self, resource_id: str) -> dict[str, str]: ...
    def describe(self, account_id: str) -> MemberAccount | None: ...
    def management_account_id(self) -> str: ...
    def organization_ids(self, *, complete: bool = False) -> OrganizationIds: ...


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)  # account IDs brought in line
    deregistered: list[str] = field(default_factory=list)  # registration IDs
    failed: dict[str, str] = field(default_factory=dict)  # account or registration ID → why
    # Accounts found in order when their turn came (another job did the work), and those Gatehouse would not touch.
    unchanged: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "deregistered": self.deregistered,
            "failed": self.failed,
            "unchanged": self.unchanged,
            "refused": self.refused,
        }


@dataclass(frozen=True)
class AccountWork:
    """What one job did to one account, re-planned from live state under the account's lease."""

    account_id: str
    outcome: str  # applied | unchanged | skipped | refused | deregistered
    reason: str
    actions: tuple[str, ...] = ()
    execution: ExecutionResult | None = None
    deregistered: str | None = None  # the registration removed

    def to_dict(self) -> dict[str, Any]:
        done: dict[str, Any] = {
            "account_id": self.account_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "actions": list(self.actions),
        }
        if self.execution is not None:
            done.update(self.execution.__dict__)
        if self.deregistered:
            done["registration_id"] = self.deregistered
        return done


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
        leases: AccountLeases,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._member_session = member_session
        self._cloudcraft = cloudcraft
        self._identity = identity
        self._ledger = ledger
        self._executor = executor
        self._leases = leases
        self._workers = workers

    # --- plan (reads only) -------------------------------------------------------------------------------
    def plan(self) -> FleetPlan:
        settings = self._settings
        members = self._directory.list_members(with_tags=False)
        registrations = list(self._cloudcraft.list_accounts())
        identity = self._identity()
        owned = self._ledger.owned()
        # Every account of the Organization: none of them may become the trust principal.
        management = next((member.account_id for member in members if member.is_management), "")
        organization = OrganizationIds(management, frozenset(member.account_id for member in members))
        refused = refusal(settings, identity, organization)

        def one(member: MemberAccount) -> tuple[MemberAccount, MemberView | None]:
            # Tags decide only whether an in-scope account opts out: read them only for those (fewer calls to
            # Organizations' most throttled API), and a failed read is this account's result, not the plan's end.
            if not check_scope(member, settings).in_scope:
                return member, None
            if settings.opt_out_tag is not None:
                try:
                    member = replace(member, tags=self._directory.tags(member.account_id))
                except GatehouseError as exc:
                    return member, MemberView(error=f"its tags could not be read: {exc}")
                if not check_scope(member, settings).in_scope:
                    return member, None
            if refused:
                return member, MemberView()  # not read: plan_account refuses the answer before looking at it
            return member, self.read_member(member.account_id)

        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            read = list(pool.map(one, members))
        plan = FleetPlan(offboarding=settings.offboarding, registrations=registrations, refusal=refused)
        index = RegistrationIndex(registrations)  # once: each account's plan looks up its own registrations
        plan.accounts = [
            plan_account(member, settings, identity, view, registrations=index, owned=owned, organization=organization)
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

    def record_principal(self, plan: FleetPlan) -> None:
        """Before a plan's repairs are queued: when no role of Gatehouse's trusts an account yet, record the one
        this plan checked (outside the whole Organization), so a worker meets an answer naming another account
        between plan and work with a refusal, not a second principal in the fleet."""
        if self._identity().recorded_account_id is not None:
            return
        principals = {p.spec.trusted_account_id for p in plan.accounts if p.spec is not None and p.changes}
        if len(principals) == 1:
            self._ledger.record_principal(principals.pop())

    # --- one account, under its lease ---------------------------------------------------------------------
    def converge_account(
        self, account_id: str, *, job: str, registrations: KnownRegistrations | None = None
    ) -> AccountWork:
        """Bring one account in line from what Organizations, IAM, the ledger and Cloudcraft say now.

        Whatever asked for it (a work item, an operator), the account is looked up again; the management
        account is refused, an account out of scope or gone is skipped.
        """
        refusal = self._refusal(account_id)
        if refusal is not None:
            return refusal
        account = self._directory.describe(account_id)
        if account is None:
            return AccountWork(account_id, "skipped", "not a member of this Organization (any more)")
        if account.is_management:
            return AccountWork(account_id, "refused", management_refusal(account_id))
        scope = check_scope(account, self._settings)
        if not scope.in_scope:
            return AccountWork(account_id, "skipped", scope.reason)
        return self.converge(account, job=job, registrations=registrations)

    def converge(
        self,
        account: MemberAccount,
        *,
        job: str,
        registrations: KnownRegistrations | None = None,
        identity: CloudcraftIdentity | None = None,
    ) -> AccountWork:
        """Re-plan an in-scope account under its lease and carry the plan out.

        `registrations`: Cloudcraft's list as a plan saw it, used when nothing says it is stale; Cloudcraft is
        listed again when the lease was held by another job first, when the ledger names a registration the list
        does not have (registered since), or when no list is given. `identity`: what a plan was made with (an
        apply keeps to it, as it keeps to its Cloudcraft pace); read when not given. Raises
        AccessRoleUnavailableError when the account cannot be read, AccountBusyError when another job keeps it.
        """
        account_id = account.account_id
        with self._leases.hold(account_id, job) as hold:
            view = self.read_member(account_id)
            if view.error:
                raise AccessRoleUnavailableError(view.error)
            owned = self._ledger.lookup(account_id)
            if view.role is None and self._executor.hands_back_waits and not owned:
                # The role is written now and registered on a later run (Cloudcraft cannot verify it yet), which
                # reads Cloudcraft's list then: reading it now would spend a request on nothing.
                registrations = []
            registrations = registrations() if callable(registrations) else registrations
            if registrations is None or hold.waited or (owned and owned not in {r.id for r in registrations}):
                registrations = list(self._cloudcraft.list_accounts())
            plan = plan_account(
                account,
                self._settings,
                identity or self._identity(),
                view,
                registrations=registrations,
                owned={account_id: owned} if owned else {},
                # Every account of the Organization (the tree is walked once per container): a trust principal
                # among them is refused, whatever asked for this job.
                organization=self._directory.organization_ids(complete=True).including([account_id]),
            )
            if plan.refused or plan.held:
                return AccountWork(account_id, "refused", plan.refused or f"{PRINCIPAL_CHANGE_HELD}: {plan.held}")
            # Executed even when in order: the registration kept is then recorded as Gatehouse's, as on arrival.
            executed = self._executor.execute(plan, self._member_session(account_id).iam())
        if not plan.changes:
            return AccountWork(account_id, "unchanged", "role and registration already in order", (), executed)
        return AccountWork(account_id, "applied", "; ".join(plan.actions()), tuple(plan.actions()), executed)

    def deregister_orphan(
        self, account_id: str, *, job: str, registrations: KnownRegistrations | None = None
    ) -> AccountWork:
        """Remove the registration of an account that left the Organization or its scope, when Gatehouse's
        ledger says it is Gatehouse's and Cloudcraft still has it for that account; nothing else is deleted."""
        refusal = self._refusal(account_id)
        if refusal is not None:
            return refusal
        if self._settings.offboarding == "keep":
            return AccountWork(account_id, "skipped", "settings.offboarding is 'keep'")
        account = self._directory.describe(account_id)
        if account is not None and check_scope(account, self._settings).in_scope:
            return AccountWork(account_id, "skipped", "an in-scope member of the Organization: nothing deregistered")
        reason = "the AWS account is not a member of the Organization"
        if account is not None:
            reason = check_scope(account, self._settings).reason
        with self._leases.hold(account_id, job) as hold:
            owned = self._ledger.lookup(account_id)
            registrations = registrations() if callable(registrations) else registrations
            if registrations is None or hold.waited or (owned and owned not in {r.id for r in registrations}):
                registrations = list(self._cloudcraft.list_accounts())
            of_account = [r for r in registrations if r.aws_account_id == account_id]
            target = next((r for r in registrations if owned and r.id == owned), None)
            if target is None or target.aws_account_id != account_id:
                if not of_account:
                    return AccountWork(account_id, "unchanged", "no Cloudcraft registration of this account")
                foreign = ", ".join(f"{r.id} ({r.name})" for r in of_account)
                return AccountWork(
                    account_id,
                    "refused",
                    f"registration(s) {foreign} of account {account_id} are not Gatehouse's (its ledger "
                    f"{'names ' + owned if owned else 'names none'}): nothing deleted",
                )
            self._executor.deregister(OrphanPlan(target.id, target.name, account_id, True, reason))
        return AccountWork(account_id, "deregistered", reason, ("deregister orphan",), deregistered=target.id)

    def _refusal(self, account_id: str) -> AccountWork | None:
        if account_id == self._directory.management_account_id():
            return AccountWork(account_id, "refused", management_refusal(account_id))
        return None

    # --- apply -------------------------------------------------------------------------------------------
    def apply(
        self,
        plan: FleetPlan,
        *,
        requests_per_minute: float,
        progress: Callable[[Progress], None] | None = None,
        job: str = "gatehouse apply",
    ) -> ApplyReport:
        """Carry out a plan, one account at a time (Cloudcraft's rate limit is the pace, not AWS).

        Each account is re-planned under its lease just before it is written, so an account another job wrote
        since the plan was made is not written twice.
        """
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
                work = self._refusal(account_id) or self.converge(
                    account_plan.account,
                    job=job,
                    registrations=plan.registrations,
                    identity=_identity_of(account_plan),
                )
                self._file(report, work)
            except GatehouseError as exc:
                log.error("apply failed for %s: %s", account_id, exc)
                report.failed[account_id] = str(exc)
            done += 1
            writes_left -= account_plan.cloudcraft_writes
            tick()
        for orphan in plan.deregistrations:
            try:
                if not orphan.aws_account_id:
                    raise GatehouseError(
                        f"registration {orphan.registration_id} ({orphan.name}) names no AWS account in its role "
                        "ARN: remove it by hand if it is Gatehouse's"
                    )
                work = self.deregister_orphan(orphan.aws_account_id, job=job, registrations=plan.registrations)
                self._file(report, work)
            except GatehouseError as exc:
                report.failed[orphan.registration_id] = str(exc)
            done += 1
            writes_left -= 1
            tick()
        return report

    @staticmethod
    def _file(report: ApplyReport, work: AccountWork) -> None:
        if work.outcome == "applied":
            report.applied.append(work.account_id)
        elif work.outcome == "deregistered" and work.deregistered:
            report.deregistered.append(work.deregistered)
        elif work.outcome == "refused":
            report.refused[work.account_id] = work.reason
        else:
            report.unchanged.append(work.account_id)


def _identity_of(plan: AccountPlan) -> CloudcraftIdentity | None:
    """The Cloudcraft identity a plan's role spec was made from."""
    spec = plan.spec
    if spec is None:
        return None
    return CloudcraftIdentity(spec.trusted_account_id, spec.external_id, spec.inline_policy)


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
    refused, held = plan.refused, plan.held
    outcome = "failed" if failed or refused or held else "drift" if plan.changes else "in-order"
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
    if refused:
        lines += ["", "Cloudcraft's answer was REFUSED; nothing was written for these accounts:"]
        lines += grouped_reasons(refused)
    if held:
        lines += ["", "Principal changes held; nothing was written for these accounts:"]
        lines += grouped_reasons(held)
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
            "refused": refused,
            "held": held,
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


def grouped_reasons(reasons: dict[str, str], limit: int = 10) -> list[str]:
    """One line per distinct reason with the accounts it applies to: a refusal of the whole Organization reads
    as one line, not a thousand."""
    by_reason: dict[str, list[str]] = {}
    for account, why in sorted(reasons.items()):
        by_reason.setdefault(why, []).append(account)
    lines = []
    for why, accounts in by_reason.items():
        shown = ", ".join(accounts[:limit]) + (f" and {len(accounts) - limit} more" if len(accounts) > limit else "")
        lines.append(f"  {why} ({len(accounts)} account(s): {shown})")
    return lines
