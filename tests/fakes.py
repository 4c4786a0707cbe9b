"""Small in-memory stand-ins shared by unit tests."""

from __future__ import annotations

from dataclasses import dataclass


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
