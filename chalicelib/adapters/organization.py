"""Organizations adapter: who an account is, where it sits in the OU tree, and its tags."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from chalicelib.adapters.aws import aws_call
from chalicelib.core.errors import AwsNotFoundError
from chalicelib.core.models import MemberAccount
from chalicelib.planning.guard import OrganizationIds


class OrganizationDirectory:
    """Reads the Organization. OU names and parents are cached for the life of the instance (a container)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ou_names: dict[str, str] = {}
        self._parents: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._management: str | None = None
        self._seen: set[str] = set()  # member account IDs this instance has listed or described
        self._listed = False  # whether the whole tree was walked (then _seen holds every member)

    def describe(self, account_id: str) -> MemberAccount | None:
        """The account with its OU chain and tags, or None when it is not a member of this Organization."""
        try:
            with aws_call(f"organizations:DescribeAccount {account_id}"):
                account = self._client.describe_account(AccountId=account_id)["Account"]
        except AwsNotFoundError:  # AccountNotFoundException
            return None
        ou_chain = self._ou_chain(account_id)
        with self._lock:
            self._seen.add(account_id)
        return MemberAccount(
            is_management=account_id == self.management_account_id(),
            account_id=account_id,
            name=str(account.get("Name") or account_id),
            status=str(account.get("Status") or "ACTIVE"),
            ou_ids=tuple(ou_id for ou_id, _ in ou_chain),
            ou_path="/".join(name for _, name in ou_chain),
            tags=self.tags(account_id),
        )

    def list_members(self, *, with_tags: bool = True) -> list[MemberAccount]:
        """Every account of the Organization with its OU chain, walking the tree once (no per-account lookups
        but the tags, which Organizations lists only one resource at a time)."""
        with aws_call("organizations tree walk"):
            root_id = self._client.list_roots()["Roots"][0]["Id"]
            members: list[MemberAccount] = []
            pending: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [(root_id, (), ())]
            while pending:
                parent_id, ou_ids, ou_names = pending.pop()
                for page in self._client.get_paginator("list_accounts_for_parent").paginate(ParentId=parent_id):
                    for account in page["Accounts"]:
                        members.append(
                            MemberAccount(
                                account_id=account["Id"],
                                name=str(account.get("Name") or account["Id"]),
                                status=str(account.get("Status") or "ACTIVE"),
                                ou_ids=ou_ids,
                                ou_path="/".join(ou_names),
                                is_management=account["Id"] == self.management_account_id(),
                            )
                        )
                paginator = self._client.get_paginator("list_organizational_units_for_parent")
                for page in paginator.paginate(ParentId=parent_id):
                    for unit in page["OrganizationalUnits"]:
                        with self._lock:
                            self._ou_names[unit["Id"]] = unit["Name"]
                            self._parents[unit["Id"]] = parent_id if parent_id.startswith("ou-") else None
                        pending.append((unit["Id"], (*ou_ids, unit["Id"]), (*ou_names, unit["Name"])))
        with self._lock:
            self._seen.update(member.account_id for member in members)
            self._listed = True
        if with_tags:
            members = [replace(member, tags=self.tags(member.account_id)) for member in members]
        return sorted(members, key=lambda member: member.account_id)

    def organization_ids(self, *, complete: bool = False) -> OrganizationIds:
        """The Organization's accounts as far as this instance knows them: the management account and every
        member it has listed or described (a trust principal must be none of them). With `complete`, the tree
        is walked once per instance first, so every member is known (the worker, which writes new roles)."""
        with self._lock:
            listed = self._listed
        if complete and not listed:
            self.list_members(with_tags=False)
        management = self.management_account_id()
        with self._lock:
            return OrganizationIds(management, frozenset(self._seen))

    def management_account_id(self) -> str:
        with self._lock:
            if self._management is not None:
                return self._management
        with aws_call("organizations:DescribeOrganization"):
            organization = self._client.describe_organization()["Organization"]
        with self._lock:
            self._management = str(organization.get("MasterAccountId") or "")
        return self._management

    def tags(self, resource_id: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        with aws_call(f"organizations:ListTagsForResource {resource_id}"):
            for page in self._client.get_paginator("list_tags_for_resource").paginate(ResourceId=resource_id):
                tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags", [])})
        return tags

    def _parent_of(self, child_id: str) -> str | None:
        """The OU above `child_id`, or None when its parent is the root."""
        with self._lock:
            if child_id in self._parents:
                return self._parents[child_id]
        with aws_call(f"organizations:ListParents {child_id}"):
            parents = self._client.list_parents(ChildId=child_id)["Parents"]
        parent = parents[0] if parents else None
        parent_id = parent["Id"] if parent and parent.get("Type") == "ORGANIZATIONAL_UNIT" else None
        if child_id.startswith("ou-"):  # accounts move; OUs almost never do, so only those are cached
            with self._lock:
                self._parents[child_id] = parent_id
        return parent_id

    def _ou_name(self, ou_id: str) -> str:
        with self._lock:
            if ou_id in self._ou_names:
                return self._ou_names[ou_id]
        with aws_call(f"organizations:DescribeOrganizationalUnit {ou_id}"):
            unit = self._client.describe_organizational_unit(OrganizationalUnitId=ou_id)["OrganizationalUnit"]
        name = str(unit.get("Name") or ou_id)
        with self._lock:
            self._ou_names[ou_id] = name
        return name

    def _ou_chain(self, account_id: str) -> list[tuple[str, str]]:
        """(id, name) of each OU from the root down to the account's parent."""
        chain: list[tuple[str, str]] = []
        current = self._parent_of(account_id)
        while current is not None and len(chain) < 10:  # Organizations allows five levels of nesting
            chain.append((current, self._ou_name(current)))
            current = self._parent_of(current)
        chain.reverse()
        return chain
