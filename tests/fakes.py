"""Small in-memory stand-ins shared by tests: they keep the contracts of the adapters they replace."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from chalicelib.adapters.cloudcraft.errors import CloudcraftNotFound
from chalicelib.adapters.cloudcraft.models import CloudcraftAccount
from chalicelib.approvals.engine import ConnectionRequest
from chalicelib.approvals.errors import ConnectionNotFound
from chalicelib.approvals.service import Connection
from chalicelib.core.errors import AccessRoleUnavailableError, AwsError
from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import Notification
from chalicelib.core.settings import Settings, StageConfig
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.role import (
    INLINE_POLICY_NAME,
    MAX_SESSION_SECONDS,
    OWNER_TAG,
    OWNER_TAG_VALUE,
    ObservedRole,
    RoleChange,
    RoleSpec,
)
from tests.clocks import RecordingClock as VirtualRecordingClock

T = TypeVar("T")


@dataclass(frozen=True)
class Reg:
    """A Cloudcraft registration, as chalicelib.planning.registration reads one."""

    id: str
    name: str
    role_arn: str
    read_access: tuple[str, ...] | None = None
    write_access: tuple[str, ...] | None = None
    created_at: str | None = None

    @property
    def aws_account_id(self) -> str | None:
        parts = self.role_arn.split(":")
        return parts[4] if len(parts) > 5 else None


# =========================================================================================================
# In-memory fakes of the adapter protocols, for direct tests of the use cases: no moto, no HTTP, no sleeps.
# Each records what was asked of it and fails on demand, so a test can say what was written and what was not.
# =========================================================================================================

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


def top_of_range(low: float, high: float) -> float:
    """A jitter that always takes the longest wait, so backoff sequences are exact numbers."""
    return high


class RecordingClock(VirtualRecordingClock):
    """The tests' recording virtual clock, starting at EPOCH so times in assertions are exact."""

    def __init__(self, start: datetime = EPOCH) -> None:
        super().__init__(start)


class Script:
    """Errors to raise on the next calls of named operations, first in first out."""

    def __init__(self) -> None:
        self._queued: dict[str, list[BaseException]] = {}

    def fail_next(self, operation: str, *errors: BaseException) -> None:
        self._queued.setdefault(operation, []).extend(errors)

    def check(self, operation: str) -> None:
        queued = self._queued.get(operation)
        if queued:
            raise queued.pop(0)

    @property
    def pending(self) -> dict[str, int]:
        return {operation: len(errors) for operation, errors in self._queued.items() if errors}


# --- Cloudcraft ------------------------------------------------------------------------------------------


class FakeCloudcraft:
    """The Cloudcraft client protocol (chalicelib.planning.plan.Cloudcraft) over a dict of registrations.

    `calls` lists every call in order: ("list",), ("create", role ARN), ("update", id), ("delete", id).
    `script.fail_next("create", CloudcraftBadRequest(...))` makes the next create raise; a scripted failure
    changes nothing, like a refused request.
    """

    def __init__(self, *registrations: CloudcraftAccount) -> None:
        self.accounts: dict[str, CloudcraftAccount] = {r.id: r for r in registrations}
        self.calls: list[tuple[str, ...]] = []
        self.script = Script()
        self._ids = itertools.count(1)

    def add(
        self,
        aws_account_id: str,
        *,
        name: str = "",
        role_name: str = "cloudcraft",
        registration_id: str = "",
        read_access: tuple[str, ...] | None = None,
        write_access: tuple[str, ...] | None = None,
    ) -> CloudcraftAccount:
        """Seed a registration (not a call)."""
        number = next(self._ids)
        account = CloudcraftAccount(
            id=registration_id or f"cc-{number}",
            name=name or f"seeded {aws_account_id}",
            role_arn=f"arn:aws:iam::{aws_account_id}:role/{role_name}",
            read_access=read_access,
            write_access=write_access,
            created_at=(EPOCH + timedelta(seconds=number)).isoformat(),
        )
        self.accounts[account.id] = account
        return account

    @property
    def writes(self) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] != "list"]

    def of(self, aws_account_id: str) -> list[CloudcraftAccount]:
        return [r for r in self.accounts.values() if r.aws_account_id == aws_account_id]

    def list_accounts(self) -> list[CloudcraftAccount]:
        self.calls.append(("list",))
        self.script.check("list")
        return list(self.accounts.values())

    def create_account(
        self,
        *,
        name: str,
        role_arn: str,
        region: str = "us-east-1",
        read_access: tuple[str, ...] | None = None,
        write_access: tuple[str, ...] | None = None,
    ) -> CloudcraftAccount:
        self.calls.append(("create", role_arn))
        self.script.check("create")
        number = next(self._ids)
        account = CloudcraftAccount(
            id=f"cc-{number}",
            name=name,
            role_arn=role_arn,
            read_access=read_access,
            write_access=write_access,
            created_at=(EPOCH + timedelta(seconds=number)).isoformat(),
        )
        self.accounts[account.id] = account
        return account

    def update_account(
        self,
        account_id: str,
        *,
        name: str,
        role_arn: str,
        read_access: tuple[str, ...] | None,
        write_access: tuple[str, ...] | None,
    ) -> CloudcraftAccount:
        self.calls.append(("update", account_id))
        self.script.check("update")
        if account_id not in self.accounts:
            raise CloudcraftNotFound(f"Cloudcraft PUT /aws/account/{account_id} returned 404", status=404)
        account = replace(
            self.accounts[account_id],
            name=name,
            role_arn=role_arn,
            read_access=read_access,
            write_access=write_access,
        )
        self.accounts[account_id] = account
        return account

    def delete_account(self, account_id: str) -> None:
        self.calls.append(("delete", account_id))
        self.script.check("delete")
        if self.accounts.pop(account_id, None) is None:
            raise CloudcraftNotFound(f"Cloudcraft DELETE /aws/account/{account_id} returned 404", status=404)


# --- member accounts: sessions and IAM -------------------------------------------------------------------


def role_as_wanted(spec: RoleSpec, **changes: Any) -> ObservedRole:
    """The role exactly as `spec` wants it (as IAM would report it after Gatehouse created it), then `changes`."""
    role = ObservedRole(
        role_name=spec.role_name,
        trust_policy=spec.trust_policy(),
        max_session_seconds=MAX_SESSION_SECONDS,
        managed_policy_arns=spec.managed_policy_arns,
        inline_policies={INLINE_POLICY_NAME: spec.inline_policy} if spec.inline_policy is not None else {},
        tags={OWNER_TAG: OWNER_TAG_VALUE},
        permissions_boundary=spec.permissions_boundary,
    )
    return replace(role, **changes)


@dataclass
class FakeMemberSession:
    account_id: str
    access_role: str
    members: FakeMembers

    def iam(self) -> FakeIam:
        return FakeIam(self.account_id, self.members)


class FakeIam:
    """IAM in one member account, over FakeMembers.roles; carries planned changes out like MemberIam."""

    def __init__(self, account_id: str, members: FakeMembers) -> None:
        self.account_id = account_id
        self._members = members

    def read_role(self, role_name: str, *, inline_documents: bool) -> ObservedRole | None:
        self._members.calls.append(("read", self.account_id, role_name))
        self._members.script.check(f"read:{self.account_id}")
        role = self._members.roles.get((self.account_id, role_name))
        if role is None or inline_documents:
            return role
        return replace(role, inline_policies=dict.fromkeys(role.inline_policies))  # names only, like IAM lists

    def apply(self, spec: RoleSpec, changes: Sequence[RoleChange]) -> None:
        self._members.calls.append(("apply", self.account_id, *(str(change) for change in changes)))
        self._members.script.check(f"apply:{self.account_id}")
        key = (self.account_id, spec.role_name)
        role = self._members.roles.get(key)
        for change in changes:
            if change.kind == "create-role":
                role = role_as_wanted(spec)
                continue
            if role is None:
                raise AwsError(
                    f"iam change of role {spec.role_name} in {self.account_id}: NoSuchEntity", "NoSuchEntity"
                )
            if change.kind == "set-boundary":
                role = replace(role, permissions_boundary=spec.permissions_boundary)
            elif change.kind == "update-trust":
                role = replace(role, trust_policy=spec.trust_policy())
            elif change.kind == "set-max-session":
                role = replace(role, max_session_seconds=MAX_SESSION_SECONDS)
            elif change.kind == "attach-policy":
                role = replace(role, managed_policy_arns=(*role.managed_policy_arns, change.detail))
            elif change.kind == "detach-policy":
                kept = tuple(arn for arn in role.managed_policy_arns if arn != change.detail)
                role = replace(role, managed_policy_arns=kept)
            elif change.kind == "put-inline-policy":
                role = replace(role, inline_policies={**role.inline_policies, INLINE_POLICY_NAME: spec.inline_policy})
            elif change.kind == "delete-inline-policy":
                inline = {k: v for k, v in role.inline_policies.items() if k != change.detail}
                role = replace(role, inline_policies=inline)
            elif change.kind == "tag-owner":
                role = replace(role, tags={**role.tags, OWNER_TAG: OWNER_TAG_VALUE})
        if role is not None:
            self._members.roles[key] = role

    def delete_role(self, observed: ObservedRole) -> None:
        self._members.calls.append(("delete", self.account_id, observed.role_name))
        self._members.script.check(f"delete:{self.account_id}")
        self._members.roles.pop((self.account_id, observed.role_name), None)


class FakeMembers:
    """Member sessions (the `member_session` callable) and the IAM roles of every member account.

    `refuse` holds accounts whose access roles refuse AssumeRole; `script.fail_next("apply:<id>", error)`
    (or "read:<id>", "delete:<id>", "session:<id>") fails one IAM call or session there.
    """

    def __init__(self, access_role: str = "OrganizationAccountAccessRole") -> None:
        self.access_role = access_role
        self.roles: dict[tuple[str, str], ObservedRole] = {}
        self.refuse: set[str] = set()
        self.script = Script()
        self.sessions: list[str] = []
        self.calls: list[tuple[str, ...]] = []

    def session(self, account_id: str) -> FakeMemberSession:
        self.sessions.append(account_id)
        self.script.check(f"session:{account_id}")
        if account_id in self.refuse:
            raise AccessRoleUnavailableError(f"no access role could be assumed in {account_id}")
        return FakeMemberSession(account_id, self.access_role, self)

    def put(self, account_id: str, role: ObservedRole) -> None:
        self.roles[(account_id, role.role_name)] = role

    def role(self, account_id: str, name: str = "cloudcraft") -> ObservedRole | None:
        return self.roles.get((account_id, name))

    @property
    def writes(self) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] != "read"]


# --- Organizations ---------------------------------------------------------------------------------------


class FakeDirectory:
    """The Organization as a dict of members: describe (onboarding), list_members and tags (the fleet)."""

    def __init__(self, *members: MemberAccount) -> None:
        self.members: dict[str, MemberAccount] = {m.account_id: m for m in members}
        self.script = Script()
        self.described: list[str] = []
        self.tag_reads: list[str] = []

    def management_account_id(self) -> str:
        return next((m.account_id for m in self.members.values() if m.is_management), "000000000000")

    def organization_ids(self, *, complete: bool = False) -> OrganizationIds:
        return OrganizationIds(self.management_account_id(), frozenset(self.members))

    def describe(self, account_id: str) -> MemberAccount | None:
        self.described.append(account_id)
        self.script.check("describe")
        return self.members.get(account_id)

    def list_members(self, *, with_tags: bool = True) -> list[MemberAccount]:
        self.script.check("list")
        members = sorted(self.members.values(), key=lambda m: m.account_id)
        return members if with_tags else [replace(m, tags={}) for m in members]

    def tags(self, resource_id: str) -> dict[str, str]:
        self.tag_reads.append(resource_id)
        self.script.check("tags")
        member = self.members.get(resource_id)
        return dict(member.tags) if member else {}


# --- ledger, once-guard, notifier, work queue ------------------------------------------------------------


class FakeLedger:
    """Ownership records in a dict; `writes` lists ("record", account, registration) and ("forget", account)."""

    def __init__(self, records: dict[str, str] | None = None) -> None:
        self.records = dict(records or {})
        self.writes: list[tuple[str, ...]] = []
        self.principal_of_record: str | None = None
        self.script = Script()

    def record(self, aws_account_id: str, registration_id: str) -> None:
        self.script.check("record")
        self.writes.append(("record", aws_account_id, registration_id))
        self.records[aws_account_id] = registration_id

    def lookup(self, aws_account_id: str) -> str | None:
        self.script.check("lookup")
        return self.records.get(aws_account_id)

    def forget(self, aws_account_id: str) -> None:
        self.script.check("forget")
        self.writes.append(("forget", aws_account_id))
        self.records.pop(aws_account_id, None)

    def owned(self) -> dict[str, str]:
        self.script.check("owned")
        return dict(self.records)

    def principal(self) -> str | None:
        return self.principal_of_record

    def record_principal(self, account_id: str) -> None:
        """Kept apart from `writes`, which lists ownership records only."""
        self.principal_of_record = account_id


class FakeOnceGuard:
    """The OnceGuard contract: a job's result is saved under its key; a job that raises leaves no record.

    A key in `running` stands for a duplicate still running elsewhere: run_once raises like Powertools does.
    """

    def __init__(self) -> None:
        self.done: dict[str, Any] = {}
        self.running: set[str] = set()
        self.runs: list[str] = []  # keys whose job actually ran
        self.contexts: list[Any] = []
        self._lock = threading.Lock()  # duplicates may be delivered from several threads at once

    def run_once(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            if key in self.done:
                saved: T = self.done[key]
                return saved
            if key in self.running:
                raise IdempotencyAlreadyInProgressError(f"{key} is in progress")
            self.runs.append(key)
            self.running.add(key)
        try:
            result = fn()
        finally:
            with self._lock:
                self.running.discard(key)
        with self._lock:
            self.done[key] = result
        return result

    def register_lambda_context(self, context: Any) -> None:
        self.contexts.append(context)

    def forget(self, key: str) -> None:
        with self._lock:
            self.done.pop(key, None)


class FakeNotifier:
    """Keeps what was published; with `error` set, publishing raises it (and keeps nothing)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.error: Exception | None = None

    def publish(self, notification: Notification) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(notification)


class FakeWorkQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.deferred: list[tuple[str, float]] = []
        self.delayed: list[tuple[dict[str, Any], int]] = []  # (message, DelaySeconds)

    def send(self, messages: Sequence[dict[str, Any]]) -> int:
        self.sent.extend(messages)
        return len(messages)

    def defer(self, receipt_handle: str, seconds: float) -> None:
        self.deferred.append((receipt_handle, seconds))

    def send_later(self, message: dict[str, Any], delay_seconds: int) -> str:
        self.delayed.append((message, delay_seconds))
        return f"delayed-{len(self.delayed)}"


# --- approvals gateway -----------------------------------------------------------------------------------


def connection_request(
    number: int = 1,
    *,
    account_id: str = "444444444444",
    environment_name: str = "dev-api",
    role_name: str = "ProtonEnvRole",
    management_account_id: str = "111111111111",
) -> ConnectionRequest:
    return ConnectionRequest(
        id=f"conn-{number}",
        environment_account_id=account_id,
        environment_name=environment_name,
        role_arn=f"arn:aws:iam::{account_id}:role/{role_name}",
        component_role_arn=None,
        codebuild_role_arn=None,
        management_account_id=management_account_id,
        region="us-east-1",
    )


class FakeConnectionGateway:
    """A ConnectionGateway over a dict; `script.fail_next("accept:<id>", error)` fails one call."""

    kind = "proton-connection"

    def __init__(self, *requests: ConnectionRequest) -> None:
        self.connections: dict[str, Connection] = {r.id: Connection(r, "PENDING") for r in requests}
        self.calls: list[tuple[str, str]] = []
        self.script = Script()

    def set_status(self, connection_id: str, status: str) -> None:
        self.connections[connection_id] = replace(self.connections[connection_id], status=status)

    @property
    def changes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] in ("accept", "reject")]

    def get(self, connection_id: str) -> Connection:
        self.calls.append(("get", connection_id))
        self.script.check(f"get:{connection_id}")
        if connection_id not in self.connections:
            raise ConnectionNotFound(f"connection {connection_id} not found", "ResourceNotFoundException")
        return self.connections[connection_id]

    def list_pending(self) -> list[str]:
        self.calls.append(("list", ""))
        self.script.check("list")
        return [cid for cid, connection in self.connections.items() if connection.pending]

    def accept(self, connection_id: str) -> Connection:
        return self._change("accept", connection_id, "CONNECTED")

    def reject(self, connection_id: str) -> Connection:
        return self._change("reject", connection_id, "REJECTED")

    def _change(self, action: str, connection_id: str, status: str) -> Connection:
        self.calls.append((action, connection_id))
        self.script.check(f"{action}:{connection_id}")
        if connection_id not in self.connections:
            raise ConnectionNotFound(f"connection {connection_id} not found", "ResourceNotFoundException")
        self.set_status(connection_id, status)
        return self.connections[connection_id]


# --- the composition root over the fakes -----------------------------------------------------------------


class MemoryRuns:
    """chalicelib.adapters.runs.DynamoRuns in memory (the real one is exercised on moto by the sandbox)."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def start(self, run_id: str, *, header: dict[str, Any], pages: list[dict[str, Any]], now: int) -> None:
        for number, page in enumerate(pages, start=1):
            self.items[f"{run_id}#page#{number}"] = json.dumps(page)
        self.items[run_id] = {"header": header, "parts": len(pages) + 1, "reported": set()}

    def header(self, run_id: str) -> dict[str, Any] | None:
        run = self.items.get(run_id)
        return dict(run["header"]) if run else None

    def page(self, run_id: str, page: int) -> str | None:
        text = self.items.get(f"{run_id}#page#{page}")
        return str(text) if text is not None else None

    def report(self, run_id: str, part: int, tally: dict[str, Any], *, now: int) -> bool:
        key = f"{run_id}#part#{part}"
        new = key not in self.items
        self.items.setdefault(key, json.loads(json.dumps(tally)))
        self.items[run_id]["reported"].add(part)
        return new

    def progress(self, run_id: str) -> Any:
        from chalicelib.adapters.runs import RunProgress

        run = self.items[run_id]
        return RunProgress(run["parts"], len(run["reported"]))

    def parts(self, run_id: str, count: int) -> Iterator[dict[str, Any]]:
        for part in range(count):
            if f"{run_id}#part#{part}" in self.items:
                yield self.items[f"{run_id}#part#{part}"]


@dataclass
class FakeServices:
    """What handlers and the fleet worker ask of chalicelib.container.Services, built from the fakes above.

    The use cases themselves are the real ones (Onboarding, Offboarding, Fleet, Executor).
    """

    settings_document: Settings
    identity_value: Any = None  # a CloudcraftIdentity; None: the default of `identity()`
    directory: FakeDirectory = field(default_factory=FakeDirectory)
    members: FakeMembers = field(default_factory=FakeMembers)
    cloudcraft_client: FakeCloudcraft = field(default_factory=FakeCloudcraft)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    clock: RecordingClock = field(default_factory=RecordingClock)
    config: StageConfig = field(default_factory=lambda: StageConfig.for_stage("test", "us-east-1"))
    notifier: FakeNotifier = field(default_factory=FakeNotifier)
    once: FakeOnceGuard = field(default_factory=FakeOnceGuard)
    work_queue: FakeWorkQueue = field(default_factory=FakeWorkQueue)
    plan_queue: FakeWorkQueue = field(default_factory=FakeWorkQueue)
    runs: MemoryRuns = field(default_factory=MemoryRuns)
    settings_error: Exception | None = None
    hand_back_rate_limits: bool = False
    recent_registrations: tuple[float, list[Any]] | None = None
    session_attempts: list[int | None] = field(default_factory=list)
    leases: Any = None  # an AccountLeases over an in-memory lease; built on this clock when None

    def __post_init__(self) -> None:
        if self.leases is None:
            from chalicelib.adapters.lease import AccountLeases
            from tests.lease_fakes import MemoryLease

            self.leases = AccountLeases(MemoryLease(), self.clock)

    def settings(self) -> Settings:
        if self.settings_error is not None:
            raise self.settings_error
        return self.settings_document

    def cloudcraft(self, settings: Settings) -> FakeCloudcraft:
        return self.cloudcraft_client

    def cloudcraft_identity(self, settings: Settings) -> Any:
        from chalicelib.planning.plan import CloudcraftIdentity

        identity = self.identity_value or CloudcraftIdentity("999999999999", "ext-1")
        return replace(identity, recorded_account_id=self.ledger.principal())

    def member_session(self, settings: Settings, *, attempts: int | None = None) -> Callable[[str], Any]:
        self.session_attempts.append(attempts)
        return self.members.session

    def executor(self, settings: Settings) -> Any:
        from chalicelib.planning.executor import Executor

        return Executor(
            self.cloudcraft_client,
            self.ledger,
            settings,
            self.clock,
            top_of_range,
            hand_back_waits=self.hand_back_rate_limits,
        )

    def onboarding(self, settings: Settings) -> Any:
        from chalicelib.onboarding.arrival import Onboarding

        return Onboarding(
            settings=settings,
            directory=self.directory,
            member_session=self.members.session,
            cloudcraft=self.cloudcraft_client,
            identity=lambda: self.cloudcraft_identity(settings),
            ledger=self.ledger,
            clock=self.clock,
            jitter=top_of_range,
            leases=self.leases,
        )

    def offboarding(self, settings: Settings) -> Any:
        from chalicelib.onboarding.departure import Offboarding

        return Offboarding(
            settings=settings,
            directory=self.directory,
            member_session=self.members.session,
            cloudcraft=self.cloudcraft_client,
            ledger=self.ledger,
            executor=self.executor(settings),
            leases=self.leases,
        )

    def fleet(self, settings: Settings) -> Any:
        from chalicelib.fleet.service import Fleet

        return Fleet(
            settings=settings,
            directory=self.directory,
            member_session=self.member_session(settings, attempts=1),
            cloudcraft=self.cloudcraft_client,
            identity=lambda: self.cloudcraft_identity(settings),
            ledger=self.ledger,
            executor=self.executor(settings),
            leases=self.leases,
            workers=1,
        )


@dataclass
class LambdaContextStub:
    """What Powertools reads from a Lambda context."""

    function_name: str = "gatehouse-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:111111111111:function:gatehouse-test"
    aws_request_id: str = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class FakeLog:
    """The approvals Log protocol: keeps (level, message, extra) of every call."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, msg: object, *args: object, extra: Any = None) -> None:
        self.records.append(("info", str(msg), dict(extra or {})))

    def warning(self, msg: object, *args: object, extra: Any = None) -> None:
        self.records.append(("warning", str(msg), dict(extra or {})))

    def error(self, msg: object, *args: object, extra: Any = None) -> None:
        self.records.append(("error", str(msg), dict(extra or {})))

    def at(self, level: str) -> list[str]:
        return [message for logged_level, message, _ in self.records if logged_level == level]
