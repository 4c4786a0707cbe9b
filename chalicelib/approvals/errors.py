"""Errors of the approvals feature: the gateway translates every outside failure into one of these."""

from __future__ import annotations

from chalicelib.core.errors import AwsError, GatehouseError


class ApprovalError(GatehouseError):
    """Base of the approvals feature's errors."""


class GatewayError(ApprovalError, AwsError):
    """A call to the connection service (Proton) failed; `code` is the service's error code, if any."""

    def __init__(self, message: str, code: str | None = None, connection_id: str | None = None) -> None:
        AwsError.__init__(self, message, code)
        self.connection_id = connection_id


class ConnectionNotFound(GatewayError):
    """The connection does not exist (any more): deleted by its environment account, or never existed."""


class ConnectionConflict(GatewayError):
    """The service refused the change because of the connection's use, e.g. rejecting one an environment uses."""


class ConnectionStateChanged(GatewayError):
    """The connection is no longer in a state that allows the change (someone else decided first)."""


class GatewayAccessDenied(GatewayError):
    """Gatehouse's role may not make this call: a deployment problem, not something a retry fixes."""


class GatewayUnavailable(GatewayError):
    """Throttled, a server error or no connection, after the SDK's own retries: worth retrying later."""


class DirectoryUnavailable(ApprovalError):
    """The Organization could not be asked about an account, so membership cannot be judged: retry later."""
