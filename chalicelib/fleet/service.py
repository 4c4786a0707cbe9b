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
from chalicelib.core.settings import Settings
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


@dataclass(frozen=True)
class Survey:
    """What planning reads once for the whole Organization (see Fleet.survey)."""

    members: list[MemberAccount]
    registrations: Sequence[Registration]
    identity: CloudcraftIdentity
    owned: dict[str, str]  # AWS account ID → the registration Gatehouse owns
    management: str  # the management account's ID
    refusal: str  # Cloudcraft's answer refused for the whole Organization ("" when not)


def read_member(member_session: Callable[[str], MemberSession], settings: Settings, account_id: str) -> MemberView:
    """The Cloudcraft role in one account, or the reason it could not be read (never raises)."""
    try:
        member = member_session(account_id)
        role = member.iam().read_role(
            settings.cloudcraft_role_name, inline_documents=settings.permission_mode != "read-only-access"
        )
    except GatehouseError as exc:
        return MemberView(error=str(exc))
    return MemberView(member.access_role, role)


def plan_members(
    members: Sequence[MemberAccount],
    settings: Settings,
    survey: Survey,
    *,
    tags: Callable[[str], dict[str, str]],
    read: Callable[[str], MemberView],
    organization: OrganizationIds,
    workers: int = DEFAULT_WORKERS,
) -> FleetPlan:
    """Plan `members` (all of the Organization, or one page of it) against what `survey` read once: each
    account's role read concurrently, then planned against registrations indexed by account once.

    `organization`: the accounts a trust principal must not be; the survey's refusal already covers the whole
    Organization, so a page may pass its own accounts. Orphans are the registrations of `members` out of scope,
    and, when `members` is the whole Organization, those of accounts not in it."""

    def one(member: MemberAccount) -> tuple[MemberAccount, MemberView | None]:
        # Tags decide only whether an in-scope account opts out: read them only for those (fewer calls to
        # Organizations' most throttled API), and a failed read is this account's result, not the plan's end.
        if not check_scope(member, settings).in_scope:
            return member, None
        if settings.opt_out_tag is not None:
            try:
                member = replace(member, tags=tags(member.account_id))
            except GatehouseError as exc:
                return member, MemberView(error=f"its tags could not be read: {exc}")
            if not check_scope(member, settings).in_scope:
                return member, None
        if survey.refusal:
            return member, MemberView()  # not read: plan_account refuses the answer before looking at it
        return member, read(member.account_id)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        read_views = list(pool.map(one, members))
    plan = FleetPlan(offboarding=settings.offboarding, refusal=survey.refusal)
    index = RegistrationIndex(survey.registrations)  # once: each account's plan looks up its own registrations
    plan.accounts = [
        plan_account(
            member, settings, survey.identity, view, registrations=index, owned=survey.owned, organization=organization
        )
        for member, view in read_views
    ]
    plan.orphans = plan_orphans([member for member, _ in read_views], settings, survey.registrations, survey.owned)
    return plan


def record_principal(plan: FleetPlan, identity: CloudcraftIdentity, ledger: Ledger) -> None:
    """Before a plan's repairs are queued: when no role of Gatehouse's trusts an account yet, record the one
    this plan checked (outside the whole Organization), so a worker meets an answer naming another account
    between plan and work with a refusal, not a second principal in the fleet."""
    if identity.recorded_account_id is not None:
        return
    principals = {p.spec.trusted_account_id for p in plan.accounts if p.spec is not None and p.changes}
    if len(principals) == 1:
        ledger.record_principal(principals.pop())


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
    def survey(self) -> Survey:
        """What a plan reads once for the whole Organization: its accounts (no tags), Cloudcraft's list and
        identity, Gatehouse's ownership records, and whether Cloudcraft's answer is refused for all of them."""
        members = self._directory.list_members(with_tags=False)
        registrations = list(self._cloudcraft.list_accounts())
        identity = self._identity()
        # Every account of the Organization: none of them may become the trust principal.
        management = next((member.account_id for member in members if member.is_management), "")
        organization = OrganizationIds(management, frozenset(member.account_id for member in members))
        refused = refusal(self._settings, identity, organization)
        return Survey(members, registrations, identity, self._ledger.owned(), management, refused)

    def plan(self) -> FleetPlan:
        """The whole Organization in one plan (the operator's `gatehouse plan`; the scheduled reconciliation
        plans it in pages, fleet/fanout.py)."""
        survey = self.survey()
        plan = plan_members(
            survey.members,
            self._settings,
            survey,
            tags=self._directory.tags,
            read=self.read_member,
            workers=self._workers,
            organization=OrganizationIds(survey.management, frozenset(m.account_id for m in survey.members)),
        )
        plan.registrations = list(survey.registrations)
        return plan

    def read_member(self, account_id: str) -> MemberView:
        """The Cloudcraft role in one account, or the reason it could not be read (never raises)."""
        return read_member(self._member_session, self._settings, account_id)

    def record_principal(self, plan: FleetPlan) -> None:
        record_principal(plan, self._identity(), self._ledger)

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
