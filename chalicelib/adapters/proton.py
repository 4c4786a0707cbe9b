"""The AWS Proton adapter: environment account connections in and out, botocore errors translated at the boundary."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.aws import aws_call
from chalicelib.approvals.engine import ConnectionRequest
from chalicelib.approvals.errors import (
    ConnectionConflict,
    ConnectionNotFound,
    ConnectionStateChanged,
    GatewayAccessDenied,
    GatewayError,
    GatewayUnavailable,
)
from chalicelib.approvals.service import Connection
from chalicelib.core.errors import EventParseError
from chalicelib.core.ids import parse_arn
from chalicelib.events import PROTON_CONNECTION_PATTERN, PROTON_DETAIL_TYPE, check_event_depth

if TYPE_CHECKING:
    from mypy_boto3_proton import ProtonClient

EVENT_KIND = "proton-connection"
CONNECTION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

DETAIL_TYPE = PROTON_DETAIL_TYPE
EVENT_PATTERN = PROTON_CONNECTION_PATTERN

_BY_CODE: dict[str, type[GatewayError]] = {
    "ResourceNotFoundException": ConnectionNotFound,
    "ConflictException": ConnectionConflict,
    "AccessDeniedException": GatewayAccessDenied,
    "ThrottlingException": GatewayUnavailable,
    "InternalServerException": GatewayUnavailable,
    "ServiceUnavailableException": GatewayUnavailable,
}


def is_connection_id(value: str) -> bool:
    return CONNECTION_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class ConnectionStatusChange:
    """What a status-change event says; the connection itself is always read again before deciding."""

    event_id: str
    connection_id: str
    status: str
    previous_status: str | None

    @property
    def pending(self) -> bool:
        return self.status == "PENDING"


def parse_status_change(raw: Any) -> ConnectionStatusChange:
    """Parse the EventBridge event at the edge; raises EventParseError naming what is wrong."""
    if not isinstance(raw, dict):
        raise EventParseError(f"an event must be a JSON object, got {type(raw).__name__}")
    check_event_depth(raw)
    if raw.get("source") != "aws.proton" or raw.get("detail-type") != DETAIL_TYPE:
        raise EventParseError(f"not a Proton connection status change: {raw.get('source')} / {raw.get('detail-type')}")
    detail = raw.get("detail")
    if not isinstance(detail, dict):
        raise EventParseError("the event has no 'detail' object")
    connection_id = detail.get("id")
    status = detail.get("status")
    if not isinstance(connection_id, str) or not connection_id:
        raise EventParseError("the event has no 'detail.id'")
    if not isinstance(status, str) or not status:
        raise EventParseError("the event has no 'detail.status'")
    previous = detail.get("previousStatus")
    return ConnectionStatusChange(
        event_id=str(raw.get("id") or "unknown"),
        connection_id=connection_id,
        status=status,
        previous_status=previous if isinstance(previous, str) else None,
    )


class ProtonGateway:
    """Speaks the domain (get, list_pending, accept, reject) over a boto3 `proton` client in the management account.

    The client should carry the project's retry configuration: throttling and server errors reach this class
    only once the SDK has given up, and then become GatewayUnavailable (the platform retries later).
    """

    kind = EVENT_KIND

    def __init__(self, client: ProtonClient, *, page_size: int = 100) -> None:
        self._client = client
        self._page_size = max(1, min(page_size, 100))

    def get(self, connection_id: str) -> Connection:
        if not is_connection_id(connection_id):
            # Proton would answer ValidationException; no connection can have this ID, so say so without a call.
            raise ConnectionNotFound(
                f"{connection_id!r} is not a Proton connection ID", "ValidationException", connection_id
            )
        with _proton_call("GetEnvironmentAccountConnection", connection_id):
            response = self._client.get_environment_account_connection(id=connection_id)
        return self._connection(dict(response["environmentAccountConnection"]))

    def list_pending(self) -> list[str]:
        """IDs of the PENDING connections requested of this management account, oldest first.

        The list's summaries have no codebuildRoleArn, so they are never decided on: callers `get` each one.
        """
        ids: list[str] = []
        seen: set[str] = set()
        with _proton_call("ListEnvironmentAccountConnections", None):
            paginator = self._client.get_paginator("list_environment_account_connections")
            pages = paginator.paginate(
                requestedBy="MANAGEMENT_ACCOUNT",
                statuses=["PENDING"],
                PaginationConfig={"PageSize": self._page_size},
            )
            for page in pages:
                for summary in page.get("environmentAccountConnections", []):
                    if summary["id"] not in seen:
                        seen.add(summary["id"])
                        ids.append(summary["id"])
        return ids

    def accept(self, connection_id: str) -> Connection:
        with _proton_call("AcceptEnvironmentAccountConnection", connection_id):
            response = self._client.accept_environment_account_connection(id=connection_id)
        return self._connection(dict(response["environmentAccountConnection"]))

    def reject(self, connection_id: str) -> Connection:
        with _proton_call("RejectEnvironmentAccountConnection", connection_id):
            response = self._client.reject_environment_account_connection(id=connection_id)
        return self._connection(dict(response["environmentAccountConnection"]))

    def _connection(self, raw: dict[str, Any]) -> Connection:
        # arn:aws:proton:<region>:<environment account>:environment-account-connection/<id>
        arn = parse_arn(raw.get("arn"))
        region = arn.region if arn is not None and arn.service == "proton" and arn.region else None
        region = region or self._client.meta.region_name
        request = ConnectionRequest(
            id=str(raw["id"]),
            environment_account_id=str(raw.get("environmentAccountId", "")),
            environment_name=str(raw.get("environmentName", "")),
            role_arn=str(raw.get("roleArn", "")),
            component_role_arn=raw.get("componentRoleArn") or None,
            codebuild_role_arn=raw.get("codebuildRoleArn") or None,
            management_account_id=str(raw.get("managementAccountId", "")),
            region=region,
        )
        return Connection(request=request, status=str(raw.get("status", "")))


def _proton_call(operation: str, connection_id: str | None) -> AbstractContextManager[None]:
    about = f" {connection_id}" if connection_id else ""
    return aws_call(
        f"proton:{operation}{about}",
        errors=partial(_gateway_error, operation=operation, connection_id=connection_id),
    )


def _gateway_error(
    exc: ClientError | BotoCoreError, doing: str, *, operation: str, connection_id: str | None
) -> GatewayError:
    """The one place Proton's failures become the project's errors."""
    if isinstance(exc, BotoCoreError):
        return GatewayUnavailable(f"{doing}: {exc}", type(exc).__name__, connection_id)
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "")) or "Unknown"
    message = f"{doing}: {code}: {error.get('Message', '')}"
    if code == "ValidationException" and operation in (
        "AcceptEnvironmentAccountConnection",
        "RejectEnvironmentAccountConnection",
    ):
        # The ID was valid for the Get just before, so the state moved on: someone else decided first.
        return ConnectionStateChanged(message, code, connection_id)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    error_class = _BY_CODE.get(code) or (GatewayUnavailable if status >= 500 else GatewayError)
    return error_class(message, code, connection_id)
