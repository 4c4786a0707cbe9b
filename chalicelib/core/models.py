"""Domain models shared across features. Plain frozen dataclasses: cheap to build, easy to compare."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

OU_ID = re.compile(r"^ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}$")


@dataclass(frozen=True)
class MemberAccount:
    """What Gatehouse knows of one account of the Organization (from Organizations, never from events)."""

    account_id: str
    name: str
    status: str = "ACTIVE"  # ACTIVE | SUSPENDED | PENDING_CLOSURE
    # Organizational units from the root down to the account's parent, e.g. ("ou-ab12-root1", "ou-ab12-cd34").
    ou_ids: tuple[str, ...] = ()
    # The same chain by name, joined with "/", e.g. "Workloads/Prod"; "" for an account at the root.
    ou_path: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    is_management: bool = False  # the Organization's management account: no access role leads into it

    @property
    def is_active(self) -> bool:
        return self.status == "ACTIVE"

    @property
    def ou_keys(self) -> frozenset[str]:
        """The OU IDs and every prefix of the OU path: "in this OU or below" is membership in this set,
        for the onboarding scope and the approval rules alike."""
        keys = set(self.ou_ids)
        if self.ou_path:
            parts = self.ou_path.strip("/").split("/")
            keys.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return frozenset(keys)
