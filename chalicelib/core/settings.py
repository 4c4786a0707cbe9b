"""Gatehouse settings: the JSON document in SSM, validated into a model, and the stage configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chalicelib.core.errors import ConfigurationError
from chalicelib.core.models import OU_ID
from chalicelib.core.naming import render_name, template_errors

ACCOUNT_ID = r"^\d{12}$"
ROLE_NAME = r"^[\w+=,.@-]{1,64}$"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

PermissionMode = Literal["read-only-access", "custom", "minimal"]
OffboardingMode = Literal["keep", "deregister", "deregister-and-delete-role"]
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID)]
RoleName = Annotated[str, Field(pattern=ROLE_NAME)]


class OptOutTag(BaseModel):
    """An account carrying this tag (with this value, or any value when `value` is null) is left alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(default="gatehouse:opt-out", min_length=1, max_length=128)
    value: str | None = "true"


class Settings(BaseModel):
    """The settings document. Every field has a safe default, so `{}` is a valid document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Organizational units in scope, as IDs (ou-xxxx-yyyyyyyy) or name paths ("Workloads/Prod"); nested
    # OUs are included. Empty means the whole Organization.
    scope_ous: tuple[str, ...] = ()
    exclude_accounts: tuple[AccountId, ...] = ()
    opt_out_tag: OptOutTag | None = OptOutTag()
    cloudcraft_role_name: RoleName = "cloudcraft"
    access_role_names: tuple[RoleName, ...] = Field(
        default=("OrganizationAccountAccessRole", "AWSControlTowerExecution"), min_length=1
    )
    permission_mode: PermissionMode = "read-only-access"
    name_template: str = Field(default="{account_name} ({account_id})", min_length=1, max_length=200)
    read_access_teams: tuple[str, ...] = ()
    write_access_teams: tuple[str, ...] = ()
    validation_region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    cloudcraft_base_url: str = "https://api.cloudcraft.co"
    cloudcraft_requests_per_minute: int = Field(default=20, ge=1, le=600)
    # Bounded waits inside one invocation; longer waits are handed back to the platform's retry.
    assume_role_attempts: int = Field(default=4, ge=1, le=10)
    register_attempts: int = Field(default=5, ge=1, le=10)
    # After this long since the event, a fresh account that still refuses AssumeRole is reported as failed
    # instead of being handed back for another retry.
    give_up_after_minutes: int = Field(default=60, ge=1, le=1440)
    offboarding: OffboardingMode = "deregister"
    # What the scheduled reconciliation does with drift: queue the repairs, or only report them.
    reconcile: Literal["repair", "report"] = "repair"

    @field_validator("scope_ous")
    @classmethod
    def _check_ous(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if entry.startswith("ou-") and not OU_ID.match(entry):
                raise ValueError(f"{entry!r} looks like an OU ID but is not one (expected ou-xxxx-yyyyyyyy)")
            if not entry.strip("/ "):
                raise ValueError("an empty OU path matches nothing; use [] for the whole Organization")
        return tuple(entry.strip("/") if not entry.startswith("ou-") else entry for entry in value)

    @field_validator("read_access_teams", "write_access_teams")
    @classmethod
    def _check_teams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for team in value:
            if not team or "/" in team:
                raise ValueError(f"{team!r} is not a team ID (give the bare ID, without 'team/')")
        return value

    @field_validator("name_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        problems = template_errors(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("cloudcraft_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        url = urlparse(value)
        # Plain HTTP only to loopback (the sandbox's emulator): the API key must not cross a network in clear.
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK_HOSTS):
            raise ValueError("must be an https:// URL (plain http is allowed only to 127.0.0.1)")
        if not url.hostname:
            raise ValueError("has no host")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_role_names(self) -> Settings:
        if self.cloudcraft_role_name in self.access_role_names:
            raise ValueError("cloudcraft_role_name must differ from every access role name")
        return self

    def registration_name(self, account_id: str, account_name: str, ou_path: str) -> str:
        values = {"account_id": account_id, "account_name": account_name, "ou_path": ou_path}
        return render_name(self.name_template, values)

    @property
    def read_access(self) -> tuple[str, ...]:
        return tuple(f"team/{team}" for team in self.read_access_teams)

    @property
    def write_access(self) -> tuple[str, ...]:
        return tuple(f"team/{team}" for team in self.write_access_teams)


def parse_settings(document: Any, source: str = "settings") -> Settings:
    """Validate a settings document; the error names every bad field and how to fix it."""
    if document is None or document == "":
        document = {}
    if not isinstance(document, dict):
        raise ConfigurationError(f"{source}: the document must be a JSON object, got {type(document).__name__}")
    try:
        return Settings.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(f"{source} is invalid: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the field path: `scope_ous.0: ...`."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against the settings reference in the README)"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


@dataclass(frozen=True)
class StageConfig:
    """Names of the deployed resources, from the stage's environment variables (read at call time)."""

    settings_parameter: str
    api_key_secret: str
    topic_arn: str
    idempotency_table: str
    rules_parameter: str = ""
    work_queue_url: str = ""
    stage: str = ""  # the deployment stage (GATEHOUSE_STAGE); names the stage's own metrics

    @classmethod
    def for_stage(cls, stage: str, region: str, account_id: str = "") -> StageConfig:
        """The names the deployment template gives a stage's resources (for the operator CLI)."""
        return cls(
            settings_parameter=f"/gatehouse/{stage}/settings",
            api_key_secret=f"gatehouse/{stage}/cloudcraft-api-key",
            topic_arn=f"arn:aws:sns:{region}:{account_id}:gatehouse-{stage}-ops" if account_id else "",
            idempotency_table=f"gatehouse-{stage}-idempotency",
            rules_parameter=f"/gatehouse/{stage}/proton-rules",
            work_queue_url="",
            stage=stage,
        )

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> StageConfig:
        env = os.environ if environ is None else environ
        missing = [
            name
            for name in (
                "GATEHOUSE_SETTINGS_PARAMETER",
                "GATEHOUSE_API_KEY_SECRET",
                "GATEHOUSE_TOPIC_ARN",
                "GATEHOUSE_IDEMPOTENCY_TABLE",
            )
            if not env.get(name)
        ]
        if missing:
            raise ConfigurationError(
                f"missing environment variable(s) {', '.join(missing)}: set them in .chalice/config.json"
            )
        return cls(
            settings_parameter=env["GATEHOUSE_SETTINGS_PARAMETER"],
            api_key_secret=env["GATEHOUSE_API_KEY_SECRET"],
            topic_arn=env["GATEHOUSE_TOPIC_ARN"],
            idempotency_table=env["GATEHOUSE_IDEMPOTENCY_TABLE"],
            rules_parameter=env.get("GATEHOUSE_RULES_PARAMETER", ""),
            work_queue_url=env.get("GATEHOUSE_WORK_QUEUE_URL", ""),
            stage=env.get("GATEHOUSE_STAGE", ""),
        )
