"""What the Cloudcraft AWS-account API answers, read defensively: its account registrations, IAM parameters, teams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core.ids import parse_role_arn


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _access(value: Any) -> tuple[str, ...] | None:
    # null means "Cloudcraft's default access"; an empty list is a real (different) answer, so keep it.
    if not isinstance(value, list):
        return None
    return tuple(item for item in value if isinstance(item, str))


@dataclass(frozen=True)
class CloudcraftAccount:
    """One AWS account registration as Cloudcraft holds it."""

    id: str
    name: str
    role_arn: str
    external_id: str | None = None
    read_access: tuple[str, ...] | None = None
    write_access: tuple[str, ...] | None = None
    source: str | None = None
    creator_id: str | None = None
    created_at: str | None = None  # ISO-8601 as sent: ordering needs no parsing, and nothing else reads it
    updated_at: str | None = None

    @property
    def aws_account_id(self) -> str | None:
        """The AWS account the role lives in: the only reliable key, since names differ (e.g. via Datadog)."""
        parsed = parse_role_arn(self.role_arn, partition=None)
        return parsed.account_id if parsed else None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CloudcraftAccount:
        return cls(
            id=text_or_none(data.get("id")) or "",
            name=text_or_none(data.get("name")) or "",
            role_arn=text_or_none(data.get("roleArn")) or "",
            external_id=text_or_none(data.get("externalId")),
            read_access=_access(data.get("readAccess")),
            write_access=_access(data.get("writeAccess")),
            source=text_or_none(data.get("source")),
            # The API spells it with a capital C; accept the conventional spelling too should it ever be fixed.
            creator_id=text_or_none(data.get("CreatorId")) or text_or_none(data.get("creatorId")),
            created_at=text_or_none(data.get("createdAt")),
            updated_at=text_or_none(data.get("updatedAt")),
        )


@dataclass(frozen=True)
class IamParameters:
    """What a role must trust: Cloudcraft's AWS account and the key owner's external ID."""

    account_id: str
    external_id: str
    aws_console_url: str = ""


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    role: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Team:
        return cls(
            id=text_or_none(data.get("id")) or "",
            name=text_or_none(data.get("name")) or "",
            role=text_or_none(data.get("role")),
        )
