"""Gatehouse settings: the JSON document in SSM, validated into a model, and the stage configuration."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from chalicelib.core.errors import ConfigurationError
from chalicelib.core.ids import ACCOUNT_ID_PATTERN, REGION_PATTERN, ROLE_NAME_PATTERN, same_iam_name
from chalicelib.core.models import OU_ID
from chalicelib.core.naming import render_name, template_errors
from chalicelib.core.safejson import JsonLimitError, check_depth, loads_bounded

# The document lives in one SSM parameter (8 KB at most, advanced tier); anything far larger or deeper is not it.
MAX_SETTINGS_BYTES = 64 * 1024
MAX_SETTINGS_DEPTH = 16
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
CLOUDCRAFT_HOST = "api.cloudcraft.co"
ALLOWED_HOSTS_VARIABLE = "GATEHOUSE_CLOUDCRAFT_ALLOWED_HOSTS"
# Scheme, host (letters, digits, dots, dashes; or [::1]), optional port and path: no user info, query, fragment,
# backslash or space that one URL parser could read differently from another.
_BASE_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]+|\[::1\])(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~/-]*)?",
    re.ASCII,
)
_ALLOWED_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?", re.ASCII)

PermissionMode = Literal["read-only-access", "custom", "minimal"]
OffboardingMode = Literal["keep", "deregister", "deregister-and-delete-role"]
AccountId = Annotated[str, Field(pattern=ACCOUNT_ID_PATTERN)]
RoleName = Annotated[str, Field(pattern=ROLE_NAME_PATTERN)]


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
    validation_region: str = Field(default="us-east-1", pattern=REGION_PATTERN)
    cloudcraft_base_url: str = f"https://{CLOUDCRAFT_HOST}"
    # Cloudcraft's AWS account, when known (IaC modules pin 968898580625): any other iamParameters answer is
    # refused, and a change of the account existing roles trust is applied only once this names the new one.
    cloudcraft_aws_account_id: AccountId | None = None
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
    def _check_url(cls, value: str, info: ValidationInfo) -> str:
        allowed = (info.context or {}).get("cloudcraft_allowed_hosts", ())
        return check_base_url(value, allowed)

    @model_validator(mode="after")
    def _check_role_names(self) -> Settings:
        # IAM role names are unique regardless of case: "Cloudcraft" and "cloudcraft" are the same role.
        clash = [name for name in self.access_role_names if same_iam_name(name, self.cloudcraft_role_name)]
        if clash:
            raise ValueError(
                f"cloudcraft_role_name {self.cloudcraft_role_name!r} is the access role {clash[0]!r} (IAM role "
                "names ignore case): it must differ from every access role name"
            )
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


def parse_settings_text(
    text: str | bytes | None, source: str = "settings", *, allowed_hosts: tuple[str, ...] = ()
) -> Settings:
    """Parse and validate the settings document as stored (JSON text), within size and nesting limits."""
    if text is None or not (text.strip() if isinstance(text, str) else bytes(text).strip()):
        return parse_settings({}, source, allowed_hosts=allowed_hosts)
    try:
        document = loads_bounded(
            text, max_bytes=MAX_SETTINGS_BYTES, max_depth=MAX_SETTINGS_DEPTH, what="the settings document"
        )
    except JsonLimitError as exc:
        raise ConfigurationError(f"{source}: {exc}; fix it with aws ssm put-parameter") from None
    return parse_settings(document, source, allowed_hosts=allowed_hosts)


def check_base_url(value: str, allowed_hosts: tuple[str, ...] = ()) -> str:
    """The Cloudcraft base URL, if the API key may be sent there: Cloudcraft's own host, a host the deployment
    allows (`allowed_hosts`, from GATEHOUSE_CLOUDCRAFT_ALLOWED_HOSTS, never from the settings document), or
    loopback (the sandbox). Hosts compare exactly, ignoring case; a port must be allowed with its host."""
    match = _BASE_URL.fullmatch(value)
    if match is None:
        raise ValueError(
            "must be a plain https://host[:port][/path] URL (no user info, query, fragment, spaces or backslashes)"
        )
    host = match["host"].lower()
    if host in LOOPBACK_HOSTS:
        return value.rstrip("/")  # the sandbox's emulator: plain http never leaves the machine
    if match["scheme"] != "https":
        raise ValueError("must be an https:// URL (plain http is allowed only to 127.0.0.1, the sandbox)")
    where = f"{host}:{match['port']}" if match["port"] else host
    if where != CLOUDCRAFT_HOST and where not in {entry.lower() for entry in allowed_hosts}:
        raise ValueError(
            f"{where!r} is not Cloudcraft's API host ({CLOUDCRAFT_HOST}) and the deployment does not allow it: the "
            f"API key goes to this host. To use another host (GovCloud, a proxy), deploy with the stack parameter "
            f"CloudcraftAllowedHosts={where} (environment variable {ALLOWED_HOSTS_VARIABLE})"
        )
    return value.rstrip("/")


def parse_allowed_hosts(value: str) -> tuple[str, ...]:
    """GATEHOUSE_CLOUDCRAFT_ALLOWED_HOSTS: comma-separated host or host:port entries (empty: none)."""
    entries = tuple(entry.strip().lower() for entry in value.split(",") if entry.strip())
    bad = [entry for entry in entries if not _ALLOWED_HOST.fullmatch(entry)]
    if bad:
        raise ConfigurationError(
            f"{ALLOWED_HOSTS_VARIABLE} holds {bad[0]!r}, which is not a host name or host:port: give bare host "
            "names separated by commas (e.g. api.cloudcraft.example), without scheme or path"
        )
    return entries


def parse_settings(document: Any, source: str = "settings", *, allowed_hosts: tuple[str, ...] = ()) -> Settings:
    """Validate a settings document; the error names every bad field and how to fix it.

    `allowed_hosts`: Cloudcraft hosts besides api.cloudcraft.co the deployment allows (StageConfig)."""
    if document is None or document == "":
        document = {}
    if not isinstance(document, dict):
        raise ConfigurationError(f"{source}: the document must be a JSON object, got {type(document).__name__}")
    try:
        check_depth(document, MAX_SETTINGS_DEPTH, what="the settings document")
    except JsonLimitError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None
    try:
        return Settings.model_validate(document, context={"cloudcraft_allowed_hosts": allowed_hosts})
    except ValidationError as exc:
        raise ConfigurationError(f"{source} is invalid: {describe_validation_error(exc)}") from None


def _did_you_mean(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(Settings.model_fields), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "check the spelling against the settings reference in the README"


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the field path: `scope_ous.0: ...`."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            top = str(error["loc"][0]) if len(error["loc"]) == 1 else ""  # suggestions among the top-level fields
            message = "unknown field (" + _did_you_mean(top) + ")"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def _page_size(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 1000:
        raise ConfigurationError(f"GATEHOUSE_PLAN_PAGE_SIZE is {text[:20]!r}: set a whole number from 1 to 1000")
    return int(text)


@dataclass(frozen=True)
class StageConfig:
    """Names of the deployed resources, from the stage's environment variables (read at call time)."""

    settings_parameter: str
    api_key_secret: str
    topic_arn: str
    idempotency_table: str
    rules_parameter: str = ""
    work_queue_url: str = ""
    plan_queue_url: str = ""  # the reconciliation's pages (fleet/fanout.py)
    plan_page_size: int = 100  # accounts per page of the reconciliation (GATEHOUSE_PLAN_PAGE_SIZE, 1-1000)
    stage: str = ""  # the deployment stage (GATEHOUSE_STAGE); names the stage's own metrics
    # Cloudcraft API hosts besides api.cloudcraft.co that settings.cloudcraft_base_url may name: the template's
    # CloudcraftAllowedHosts parameter, so whoever can edit the settings cannot send the API key elsewhere.
    cloudcraft_allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def for_stage(
        cls, stage: str, region: str, account_id: str = "", *, cloudcraft_allowed_hosts: tuple[str, ...] = ()
    ) -> StageConfig:
        """The names the deployment template gives a stage's resources (for the operator CLI)."""
        return cls(
            cloudcraft_allowed_hosts=cloudcraft_allowed_hosts,
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
            plan_queue_url=env.get("GATEHOUSE_PLAN_QUEUE_URL", ""),
            plan_page_size=_page_size(env.get("GATEHOUSE_PLAN_PAGE_SIZE", "100")),
            stage=env.get("GATEHOUSE_STAGE", ""),
            cloudcraft_allowed_hosts=parse_allowed_hosts(env.get(ALLOWED_HOSTS_VARIABLE, "")),
        )
