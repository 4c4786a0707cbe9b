"""AWS Proton on loopback: the environment account connection calls Gatehouse makes, on the real wire protocol."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from chalicelib.core.clock import Clock, VirtualClock
from chalicelib.core.ids import is_account_id
from gatehouse.sandbox.loopback import LoopbackServer

TARGET_PREFIX = "AwsProton20200720."
CONTENT_TYPE = "application/x-amz-json-1.0"
CONNECTION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ENVIRONMENT_NAME = re.compile(r"^[0-9A-Za-z]+[0-9A-Za-z_\-]*$")
NEXT_TOKEN = re.compile(r"^[A-Za-z0-9+=/]+$")
STATUSES = ("PENDING", "CONNECTED", "REJECTED")
REQUESTED_BY = ("MANAGEMENT_ACCOUNT", "ENVIRONMENT_ACCOUNT")
DEFAULT_MAX_RESULTS = 100

# The HTTP status AWS sends with each error; botocore reads the code from `__type`, the status decides retries.
ERROR_STATUS = {
    "ValidationException": HTTPStatus.BAD_REQUEST,
    "SerializationException": HTTPStatus.BAD_REQUEST,
    "UnknownOperationException": HTTPStatus.BAD_REQUEST,
    "AccessDeniedException": HTTPStatus.FORBIDDEN,
    "MissingAuthenticationTokenException": HTTPStatus.FORBIDDEN,
    "ResourceNotFoundException": HTTPStatus.NOT_FOUND,
    "ConflictException": HTTPStatus.CONFLICT,
    "ThrottlingException": HTTPStatus.TOO_MANY_REQUESTS,
    "InternalServerException": HTTPStatus.INTERNAL_SERVER_ERROR,
}


def connection_problem(connection: dict[str, Any]) -> str | None:
    """What is wrong with a connection of the sandbox STATE (`proton.connections[i]`), or None."""
    connection_id = str(connection.get("id") or "")
    if connection_id and not CONNECTION_ID.fullmatch(connection_id):
        return (
            f"connection id {connection_id!r} is not a Proton connection ID (lower-case UUID): Proton itself would "
            "refuse every call naming it; use one like 3f2b4c6d-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
        )
    if not is_account_id(str(connection.get("environmentAccountId", ""))):
        return f"connection {connection_id or '(no id)'}: environmentAccountId must be 12 digits"
    if str(connection.get("status", "PENDING")) not in STATUSES:
        return f"connection {connection_id or '(no id)'}: status must be one of {', '.join(STATUSES)}"
    return None


class ProtonError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _validation(message: str) -> ProtonError:
    return ProtonError("ValidationException", message)


class ProtonEmulator:
    """Get, List, Accept and Reject of environment account connections, with Proton's state rules.

    `in_use` holds the IDs of connections an environment uses: rejecting one is a ConflictException.
    `fail_next(operation, code)` makes the next calls of an operation fail, for retry and error-path tests.
    Timestamps come from `clock` (the sandbox's; by default a virtual clock of its own, starting now).
    """

    def __init__(self, region: str = "us-east-1", *, clock: Clock | None = None) -> None:
        self.region = region
        self.in_use: set[str] = set()
        self._now = (clock or VirtualClock()).now
        self._lock = threading.Lock()
        self._connections: dict[str, dict[str, Any]] = {}
        self._calls: list[str] = []
        self._faults: dict[str, list[str]] = {}
        emulator = self

        class Handler(_Handler):
            owner = emulator

        self._http = LoopbackServer(Handler, "proton-emulator")

    # --- lifecycle ---------------------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        return self._http.url or ""

    def start(self) -> str:
        if self._http.running:
            return self.endpoint_url
        return self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> ProtonEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- state -------------------------------------------------------------------------------------------
    def seed(self, connections: list[dict[str, Any]]) -> None:
        """Add connections in the sandbox STATE shape; `arn`, `requestedAt` and `lastModifiedAt` are filled in."""
        for raw in connections:
            connection = dict(raw)
            connection_id = str(connection.get("id") or uuid.uuid4())
            problem = connection_problem({**connection, "id": connection_id})
            if problem:
                raise ValueError(problem)
            account = str(connection.get("environmentAccountId", ""))
            status = str(connection.get("status", "PENDING"))
            now = self._now().timestamp()
            connection.update(
                id=connection_id,
                status=status,
                environmentAccountId=account,
                environmentName=str(connection.get("environmentName") or "env"),
                roleArn=str(connection.get("roleArn") or f"arn:aws:iam::{account}:role/ProtonEnvironmentRole"),
                managementAccountId=str(connection.get("managementAccountId") or "111111111111"),
                arn=f"arn:aws:proton:{self.region}:{account}:environment-account-connection/{connection_id}",
                requestedAt=_timestamp(connection.get("requestedAt"), now),
                lastModifiedAt=_timestamp(connection.get("lastModifiedAt"), now),
            )
            for optional in ("componentRoleArn", "codebuildRoleArn"):
                if not connection.get(optional):
                    connection.pop(optional, None)
            with self._lock:
                self._connections[connection_id] = connection

    def connections(self) -> list[dict[str, Any]]:
        with self._lock:
            items = [dict(c) for c in self._connections.values()]
        for item in items:
            for key in ("requestedAt", "lastModifiedAt"):
                item[key] = datetime.fromtimestamp(item[key], UTC).isoformat()
        return sorted(items, key=lambda c: (c["requestedAt"], c["id"]))

    def calls(self) -> list[str]:
        with self._lock:
            return list(self._calls)

    def fail_next(self, operation: str, code: str, times: int = 1) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {code}; known: {', '.join(sorted(ERROR_STATUS))}")
        with self._lock:
            self._faults.setdefault(operation, []).extend([code] * times)

    # --- operations --------------------------------------------------------------------------------------
    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._calls.append(operation)
            faults = self._faults.get(operation)
            if faults:
                code = faults.pop(0)
                raise ProtonError(code, f"injected {code}")
            handler = {
                "GetEnvironmentAccountConnection": self._get,
                "ListEnvironmentAccountConnections": self._list,
                "AcceptEnvironmentAccountConnection": self._accept,
                "RejectEnvironmentAccountConnection": self._reject,
            }.get(operation)
            if handler is None:
                raise ProtonError("UnknownOperationException", f"operation {operation} is not emulated")
            return handler(body)

    def _find(self, body: dict[str, Any]) -> dict[str, Any]:
        connection_id = body.get("id")
        if connection_id is None:
            raise _validation(
                "1 validation error detected: Value null at 'id' failed to satisfy constraint: Member must not be null"
            )
        if not isinstance(connection_id, str) or not CONNECTION_ID.fullmatch(connection_id):
            raise _validation(
                f"1 validation error detected: Value '{connection_id}' at 'id' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {CONNECTION_ID.pattern}"
            )
        connection = self._connections.get(connection_id)
        if connection is None:
            raise ProtonError("ResourceNotFoundException", f"Environment account connection {connection_id} not found")
        return connection

    def _get(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"environmentAccountConnection": dict(self._find(body))}

    def _accept(self, body: dict[str, Any]) -> dict[str, Any]:
        connection = self._find(body)
        if connection["status"] != "PENDING":
            raise _validation(
                f"Environment account connection {connection['id']} is {connection['status']}: only a PENDING "
                "connection can be accepted"
            )
        connection["status"] = "CONNECTED"
        connection["lastModifiedAt"] = self._now().timestamp()
        return {"environmentAccountConnection": dict(connection)}

    def _reject(self, body: dict[str, Any]) -> dict[str, Any]:
        connection = self._find(body)
        if connection["id"] in self.in_use:
            raise ProtonError(
                "ConflictException",
                f"Environment account connection {connection['id']} is in use by an environment and cannot be rejected",
            )
        if connection["status"] == "REJECTED":
            raise _validation(f"Environment account connection {connection['id']} is already REJECTED")
        connection["status"] = "REJECTED"
        connection["lastModifiedAt"] = self._now().timestamp()
        return {"environmentAccountConnection": dict(connection)}

    def _list(self, body: dict[str, Any]) -> dict[str, Any]:
        requested_by = body.get("requestedBy")
        if requested_by not in REQUESTED_BY:
            raise _validation(
                f"1 validation error detected: Value '{requested_by}' at 'requestedBy' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(REQUESTED_BY)}]"
            )
        statuses = body.get("statuses")
        if statuses is not None and (
            not isinstance(statuses, list) or any(status not in STATUSES for status in statuses)
        ):
            raise _validation(f"statuses must be a list of {', '.join(STATUSES)}")
        name = body.get("environmentName")
        if name is not None and (
            not isinstance(name, str) or not 1 <= len(name) <= 100 or not ENVIRONMENT_NAME.fullmatch(name)
        ):
            raise _validation(f"Value '{name}' at 'environmentName' failed to satisfy constraint")
        max_results = body.get("maxResults", DEFAULT_MAX_RESULTS)
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise _validation(
                f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to satisfy constraint: "
                "Member must have value between 1 and 100"
            )
        offset = _decode_token(body.get("nextToken"))

        matching = sorted(
            (
                c
                for c in self._connections.values()
                # The emulator serves the management account's view: ENVIRONMENT_ACCOUNT lists would need a caller.
                if requested_by == "MANAGEMENT_ACCOUNT"
                and (statuses is None or not statuses or c["status"] in statuses)
                and (name is None or c["environmentName"] == name)
            ),
            key=lambda c: (c["requestedAt"], c["id"]),
        )
        page = matching[offset : offset + max_results]
        result: dict[str, Any] = {
            # The summary shape has no codebuildRoleArn: callers must Get a connection to see it.
            "environmentAccountConnections": [{k: v for k, v in c.items() if k != "codebuildRoleArn"} for c in page]
        }
        if offset + max_results < len(matching):
            result["nextToken"] = _encode_token(offset + max_results)
        return result


def _timestamp(value: Any, default: float) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return default


def _encode_token(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: Any) -> int:
    if token is None:
        return 0
    try:
        if not isinstance(token, str) or not NEXT_TOKEN.fullmatch(token):
            raise ValueError(token)
        kind, _, number = base64.b64decode(token, validate=True).decode().partition(":")
        if kind != "offset":
            raise ValueError(token)
        return int(number)
    except (ValueError, binascii.Error):
        raise _validation(f"Invalid nextToken '{token}'") from None


class _Handler(BaseHTTPRequestHandler):
    owner: ProtonEmulator
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        try:
            if not self.headers.get("Authorization"):
                raise ProtonError("MissingAuthenticationTokenException", "Missing Authentication Token")
            if not target.startswith(TARGET_PREFIX):
                raise ProtonError("UnknownOperationException", f"unknown X-Amz-Target {target!r}")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise ProtonError("SerializationException", "the request body is not JSON") from None
            if not isinstance(body, dict):
                raise ProtonError("SerializationException", "the request body must be a JSON object")
            result = self.owner.handle(target.removeprefix(TARGET_PREFIX), body)
            self._reply(HTTPStatus.OK, result)
        except ProtonError as exc:
            self._reply(
                ERROR_STATUS.get(exc.code, HTTPStatus.BAD_REQUEST), {"__type": exc.code, "message": exc.message}
            )
        except Exception:  # an emulator bug: answer it, so the connection stays usable and the client sees it
            self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"__type": "InternalServerException", "message": "emulator error"}
            )

    def do_GET(self) -> None:
        self._reply(HTTPStatus.NOT_FOUND, {"__type": "UnknownOperationException", "message": "POST only"})

    def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the sandbox prints results on stdout
