"""The project's error tree: every adapter translates outside failures into these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GatehouseError(Exception):
    """Base of every error Gatehouse raises on purpose."""


class ConfigurationError(GatehouseError):
    """A setting, the stage configuration or a rule document is missing or invalid."""


class EventParseError(GatehouseError):
    """An event does not have the shape Gatehouse expects."""


class AccessRoleUnavailableError(GatehouseError):
    """No access role in a member account could be assumed (yet): the platform should retry later."""


class AwsError(GatehouseError):
    """An AWS call failed; carries the service error code when there is one, and the service's answer (e.g. the
    item a failed DynamoDB condition saw), which is untrusted outside input like any other."""

    def __init__(self, message: str, code: str | None = None, response: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.response: Mapping[str, Any] = response or {}


class AwsNotFoundError(AwsError):
    """What the AWS call asked about does not exist (IAM NoSuchEntity, AccountNotFoundException, ParameterNotFound)."""


class AwsAccessDeniedError(AwsError):
    """AWS refused the call for want of permission (AccessDenied, AccessDeniedException)."""


class RoleNotVerifiableYet(GatehouseError):
    """A role written moments ago that Cloudcraft cannot verify yet (IAM propagation): not a failure. A caller that
    does not wait inside its invocation (the fleet worker) hands the registration back for `retry_after` seconds."""

    def __init__(self, role_arn: str, retry_after: float) -> None:
        super().__init__(
            f"the role {role_arn} was written moments ago; Cloudcraft cannot verify it until IAM has propagated it, "
            f"so its registration comes back in {retry_after:.0f} s"
        )
        self.retry_after = retry_after
