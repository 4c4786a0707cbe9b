"""Onboarding one account: scope check, Cloudcraft role in the account, registration, one notification."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from chalicelib.clock import Clock
from chalicelib.errors import AccessRoleUnavailableError, ConfigurationError, GatehouseError
from chalicelib.models import MemberAccount
from chalicelib.notifications import Notification, Notifier
from chalicelib.registration import DesiredRegistration, plan_registration
from chalicelib.role import RoleSpec, plan_role_changes
from chalicelib.scope import check_scope
from chalicelib.settings import Settings

log = logging.getLogger("gatehouse.onboarding")
EVENT_KIND = "account-onboarding"
Outcome = Literal["onboarded", "repaired", "unchanged", "skipped", "failed", "creation-failed", "rejected"]


class Cloudcraft(Protocol):
    """The part of the Cloudcraft client onboarding uses (see chalicelib.cloudcraft)."""

    def list_accounts(self) -> list[Any]: ...
    def create_account(
        self,
        *,
        name: str,
        role_arn: str,
        region: str = ...,
        read_access: tuple[str, ...] | None = ...,
        write_access: tuple[str, ...] | None = ...,
    ) -> Any: ...
    def update_account(
        self,
        account_id: str,
        *,
        name: str,
        role_arn: str,
        read_access: tuple[str, ...] | None,
        write_access: tuple[str, ...] | None,
    ) -> Any: ...


class Directory(Protocol):
    def describe(self, account_id: str) -> MemberAccount | None: ...


@dataclass(frozen=True)
class CloudcraftIdentity:
    """What the role must trust and grant, as Cloudcraft reports it at run time."""

    account_id: str
    external_id: str
    policy: dict[str, Any] | None = None  # the inline policy in custom/minimal mode


@dataclass
class OnboardingResult:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Onboarding:
    """Brings one account to the desired state. Every step is create-or-repair, so re-runs converge."""

    def __init__(
        self,
        *,
        settings: Settings,
        directory: Directory,
        member_session: Callable[[str], Any],
        cloudcraft: Cloudcraft,
        identity: Callable[[], CloudcraftIdentity],
        clock: Clock,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._member_session = member_session
        self._cloudcraft = cloudcraft
        self._identity = identity
        self._clock = clock
        self._jitter = jitter

    def onboard(self, account_id: str, *, trigger: str = "", event_time: datetime | None = None) -> OnboardingResult:
        settings = self._settings
        account = self._directory.describe(account_id)
        if account is None:
            return OnboardingResult(
                account_id, "failed", "the account is not a member of this Organization", trigger=trigger
            )
        result = OnboardingResult(
            account_id, "unchanged", "", account_name=account.name, ou_path=account.ou_path, trigger=trigger
        )
        scope = check_scope(account, settings)
        if not scope.in_scope:
            result.outcome, result.reason = "skipped", scope.reason
            return result

        try:
            member = self._member_session(account_id)
        except AccessRoleUnavailableError as exc:
            age = (self._clock.now() - event_time).total_seconds() if event_time else 0.0
            if age < settings.give_up_after_minutes * 60:
                raise  # hand the wait back to EventBridge's retry instead of sleeping in Lambda
            result.outcome, result.reason = "failed", f"{exc} (gave up {age / 60:.0f} minutes after the event)"
            return result
        result.access_role = member.access_role

        identity = self._identity()
        spec = desired_role(settings, identity)
        iam = member.iam()
        observed = iam.read_role(spec.role_name, inline_documents=spec.inline_policy is not None)
        changes = plan_role_changes(spec, observed)
        if changes:
            iam.apply(spec, changes)
        result.role_changes = [str(change) for change in changes]
        result.role_arn = spec.role_arn(account_id)

        desired = desired_registration(settings, account, result.role_arn)
        plan = plan_registration(self._cloudcraft.list_accounts(), desired)
        if plan.action == "create":
            created = self._register(desired, fresh_role=bool(changes))
            result.registration, result.cloudcraft_id = "created", str(created.id)
        elif plan.action == "update":
            assert plan.target_id is not None
            self._cloudcraft.update_account(
                plan.target_id,
                name=desired.name,
                role_arn=desired.role_arn,
                read_access=desired.read_access,
                write_access=desired.write_access,
            )
            result.registration, result.cloudcraft_id = "updated", plan.target_id
        else:
            result.registration, result.cloudcraft_id = "unchanged", plan.target_id

        created_role = observed is None
        if result.registration == "created" or created_role:
            result.outcome = "onboarded"
        elif changes or result.registration == "updated":
            result.outcome = "repaired"
        result.reason = _explain(result, plan.differences)
        return result

    def _register(self, desired: DesiredRegistration, *, fresh_role: bool) -> Any:
        """POST the registration; Cloudcraft answers 400 while a just-written role has not propagated."""
        from chalicelib.cloudcraft import CloudcraftBadRequest

        attempts = self._settings.register_attempts if fresh_role else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._cloudcraft.create_account(
                    name=desired.name,
                    role_arn=desired.role_arn,
                    region=self._settings.validation_region,
                    read_access=desired.read_access,
                    write_access=desired.write_access,
                )
            except CloudcraftBadRequest:
                if attempt == attempts:
                    raise
                ceiling = min(40.0, 5.0 * 2 ** (attempt - 1))
                delay = self._jitter(ceiling / 2, ceiling)
                log.info("Cloudcraft could not verify the new role yet; retrying in %.0fs", delay)
                self._clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def desired_role(settings: Settings, identity: CloudcraftIdentity) -> RoleSpec:
    if settings.permission_mode == "read-only-access":
        return RoleSpec(settings.cloudcraft_role_name, identity.account_id, identity.external_id)
    if not identity.policy:
        raise ConfigurationError(
            f"permission_mode {settings.permission_mode!r} needs Cloudcraft's policy document, which was empty"
        )
    return RoleSpec(
        settings.cloudcraft_role_name,
        identity.account_id,
        identity.external_id,
        managed_policy_arns=(),
        inline_policy=identity.policy,
    )


def desired_registration(settings: Settings, account: MemberAccount, role_arn: str) -> DesiredRegistration:
    return DesiredRegistration(
        aws_account_id=account.account_id,
        name=settings.registration_name(account.account_id, account.name, account.ou_path),
        role_arn=role_arn,
        read_access=settings.read_access or None,
        write_access=settings.write_access or None,
    )


def _explain(result: OnboardingResult, differences: tuple[str, ...]) -> str:
    role = f"role changes: {', '.join(result.role_changes)}" if result.role_changes else "role already in order"
    registration = {
        "created": "registered with Cloudcraft",
        "updated": f"Cloudcraft registration updated ({', '.join(differences)})",
        "unchanged": "Cloudcraft registration already up to date",
    }.get(result.registration, "")
    return "; ".join(part for part in (role, registration) if part)


# --- notifications ---------------------------------------------------------------------------------------

HEADLINES = {
    "onboarded": "connected to Cloudcraft",
    "repaired": "Cloudcraft connection repaired",
    "unchanged": "Cloudcraft connection already in order",
    "skipped": "skipped (out of scope)",
    "failed": "onboarding FAILED",
    "creation-failed": "account creation FAILED",
    "rejected": "event REJECTED (malformed)",
}


def onboarding_notification(result: OnboardingResult) -> Notification:
    who = f"{result.account_name} ({result.account_id})" if result.account_name else result.account_id
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
        body={"event_kind": EVENT_KIND, **result.to_dict()},
        attributes={"event_kind": EVENT_KIND, "outcome": result.outcome, "account_id": result.account_id},
    )


def notify_safely(notifier: Notifier, notification: Notification) -> bool:
    """Publishing must never turn a done job into a failure (and a retry that repeats it)."""
    try:
        notifier.publish(notification)
    except GatehouseError as exc:
        log.error("could not publish notification %r: %s", notification.subject, exc)
        return False
    return True
