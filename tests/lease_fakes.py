"""In-memory stand-ins for the one-writer-per-account tests: the lease, and the parties a converge job writes to."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chalicelib.adapters.lease import LeaseAttempt
from chalicelib.core.models import MemberAccount
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.role import ObservedRole, RoleChange, RoleSpec
from tests.fakes import Reg, role_as_wanted

# --- one writer per account: the lease and the outside parties a converge job writes to ---------------------


class MemoryLease:
    """chalicelib.adapters.lease.AccountLease in memory, with the DynamoDB condition's meaning: taken when
    absent, expired, or already the caller's. `on_release` runs after each release (to sequence tests)."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str, int]] = {}  # account -> (holder, expires_at)
        self.attempts: list[tuple[str, str, bool]] = []  # (account, holder, acquired)
        self.on_release: Callable[[str, str], None] | None = None
        self._lock = threading.Lock()

    def try_acquire(self, account_id: str, *, holder: str, now: int, expires_at: int) -> LeaseAttempt:
        with self._lock:
            current = self.records.get(account_id)
            if current is None or current[1] < now or current[0] == holder:
                self.records[account_id] = (holder, expires_at)
                self.attempts.append((account_id, holder, True))
                return LeaseAttempt(True)
            self.attempts.append((account_id, holder, False))
            return LeaseAttempt(False, current[0])

    def release(self, account_id: str, *, holder: str) -> None:
        with self._lock:
            if self.records.get(account_id, ("", 0))[0] == holder:
                del self.records[account_id]
        if self.on_release is not None:
            self.on_release(account_id, holder)


class FakeCloudcraft:
    """The registrations part of the Cloudcraft client, counting writes. `on_post` runs inside each POST, after
    the registration exists (to sequence tests around a job that is in the middle of writing)."""

    def __init__(self, registrations: list[Reg] | None = None) -> None:
        self.registrations: list[Reg] = list(registrations or [])
        self.posts: list[str] = []  # role ARNs POSTed
        self.deleted: list[str] = []
        self.on_post: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def list_accounts(self) -> list[Reg]:
        with self._lock:
            return list(self.registrations)

    def create_account(
        self,
        *,
        name: str,
        role_arn: str,
        region: str = "us-east-1",
        read_access: tuple[str, ...] | None = None,
        write_access: tuple[str, ...] | None = None,
    ) -> Reg:
        with self._lock:
            created = Reg(
                f"cc-{next(self._ids)}",
                name,
                role_arn,
                read_access,
                write_access,
                f"2026-01-01T00:00:{len(self.posts):02d}Z",
            )
            self.registrations.append(created)
            self.posts.append(role_arn)
        if self.on_post is not None:
            hook, self.on_post = self.on_post, None  # once
            hook()
        return created

    def update_account(
        self,
        account_id: str,
        *,
        name: str,
        role_arn: str,
        read_access: tuple[str, ...] | None,
        write_access: tuple[str, ...] | None,
    ) -> Reg:
        with self._lock:
            [old] = [r for r in self.registrations if r.id == account_id]
            new = Reg(account_id, name, role_arn, read_access, write_access, old.created_at)
            self.registrations[self.registrations.index(old)] = new
            return new

    def delete_account(self, account_id: str) -> None:
        with self._lock:
            self.registrations = [r for r in self.registrations if r.id != account_id]
            self.deleted.append(account_id)


class FakeIam:
    """One member account's IAM as RoleWriter and the reader a converge job uses."""

    def __init__(self) -> None:
        self.role: ObservedRole | None = None
        self.writes = 0

    def read_role(self, role_name: str, *, inline_documents: bool) -> ObservedRole | None:
        return self.role

    def apply(self, spec: RoleSpec, changes: Sequence[RoleChange]) -> None:
        self.writes += 1
        self.role = role_as_wanted(spec)

    def delete_role(self, observed: ObservedRole) -> None:
        self.writes += 1
        self.role = None


@dataclass
class FakeMember:
    account_id: str
    iam_: FakeIam
    access_role: str = "OrganizationAccountAccessRole"

    def iam(self) -> FakeIam:
        return self.iam_


class FakeDirectory:
    """Organizations: the members by ID, and the management account."""

    def __init__(self, members: Sequence[MemberAccount], management: str = "123456789012") -> None:
        self.members = {member.account_id: member for member in members}
        self.management = management

    def describe(self, account_id: str) -> MemberAccount | None:
        return self.members.get(account_id)

    def management_account_id(self) -> str:
        return self.management

    def organization_ids(self, *, complete: bool = False) -> OrganizationIds:
        return OrganizationIds(self.management, frozenset(self.members))

    def list_members(self, *, with_tags: bool = True) -> list[MemberAccount]:
        return sorted(self.members.values(), key=lambda member: member.account_id)

    def tags(self, resource_id: str) -> dict[str, str]:
        member = self.members.get(resource_id)
        return dict(member.tags) if member else {}
