"""Domain models shared across features. Plain frozen dataclasses: cheap to build, easy to compare."""

from __future__ import annotations

from dataclasses import dataclass, field


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
