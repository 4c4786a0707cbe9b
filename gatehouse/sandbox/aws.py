"""An in-process moto server on loopback, with the AssumeRole checks moto leaves out."""

from __future__ import annotations

import importlib
import io
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from chalicelib.core.clock import Clock
from chalicelib.core.ids import parse_role_arn

StartResponse = Callable[..., Any]


CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/[^/,]+/([a-z0-9-]+)/aws4_request")


class AssumeRoleGate:
    """WSGI middleware in front of moto's STS: AssumeRole succeeds only into a role that exists and trusts
    the caller's account, and an account can be told to refuse its first N calls, or to refuse until a time on
    the sandbox clock, like a fresh account does. It also takes whole services (or some of their operations) down:
    `outage("dynamodb")` answers every DynamoDB call with 503 ServiceUnavailable until `restore("dynamodb")`.
    """

    def __init__(self, app: Any, management_account_id: str, clock: Clock | None = None) -> None:
        self._app = app
        self._management = management_account_id
        self._clock = clock
        self._refusals: dict[str, int] = {}
        self._refuse_until: dict[str, float] = {}  # account -> sandbox time (clock.monotonic) it refuses until
        self._outages: dict[str, frozenset[str] | None] = {}  # service -> operations down (None: all)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []  # (role ARN, "allowed" | "refused: why")
        self.refused_by_outage: list[tuple[str, str]] = []  # (service, operation) answered 503

    def refuse(self, account_id: str, times: int) -> None:
        with self._lock:
            self._refusals[account_id] = times

    def refuse_for(self, account_id: str, seconds: float) -> None:
        """The account refuses every AssumeRole for the next `seconds` of sandbox time."""
        if self._clock is None:
            raise ValueError("refuse_for needs the sandbox clock: build the gate with clock=")
        with self._lock:
            self._refuse_until[account_id] = self._clock.monotonic() + seconds

    def outage(self, service: str, *operations: str) -> None:
        """`service` (its signing name: dynamodb, sns, sqs, ...) answers 503 to `operations`, or to every call."""
        with self._lock:
            self._outages[service] = frozenset(operations) if operations else None

    def restore(self, service: str) -> None:
        with self._lock:
            self._outages.pop(service, None)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        down = self._down(environ)
        if down is not None:
            return _service_unavailable(start_response, *down)
        if environ.get("REQUEST_METHOD") == "POST" and "/sts/" in environ.get("HTTP_AUTHORIZATION", ""):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            form = parse_qs(body.decode())
            if form.get("Action") == ["AssumeRole"]:
                role_arn = form.get("RoleArn", [""])[0]
                why = self._refusal(role_arn, form.get("ExternalId", [None])[0])
                with self._lock:
                    self.calls.append((role_arn, f"refused: {why}" if why else "allowed"))
                if why:
                    return _access_denied(start_response, role_arn, why)
        result: Iterable[bytes] = self._app(environ, start_response)
        return result

    def _down(self, environ: dict[str, Any]) -> tuple[str, str, bool] | None:
        """(service, operation, JSON protocol?) when the request's service is down, else None."""
        with self._lock:
            if not self._outages:
                return None
            outages = dict(self._outages)
        match = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match is None or match.group(1) not in outages:
            return None
        service = match.group(1)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            operation, json_protocol = target.rpartition(".")[2], True
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            operation, json_protocol = parse_qs(body.decode()).get("Action", [""])[0], False
        operations = outages[service]
        if operations is not None and operation not in operations:
            return None
        with self._lock:
            self.refused_by_outage.append((service, operation))
        return service, operation, json_protocol

    def _refusal(self, role_arn: str, external_id: str | None) -> str | None:
        from moto.iam.models import iam_backends

        parsed = parse_role_arn(role_arn)
        if parsed is None:
            return "not a role ARN"
        account_id, role_name = parsed.account_id, parsed.name
        with self._lock:
            if self._refusals.get(account_id, 0) > 0:
                self._refusals[account_id] -= 1
                return "the account is still being set up"
            until = self._refuse_until.get(account_id)
        if until is not None and self._clock is not None and self._clock.monotonic() < until:
            return "the account is still being set up"
        roles = {role.name: role for role in iam_backends[account_id]["global"].roles.values()}
        role = roles.get(role_name)
        if role is None:
            return "no such role"
        trust = json.loads(role.assume_role_policy_document)
        for statement in _as_list(trust.get("Statement")):
            principal = statement.get("Principal") or {}
            aws = _as_list(principal.get("AWS")) if isinstance(principal, dict) else []
            trusted = {str(p) for p in aws}
            if statement.get("Effect") == "Allow" and (
                trusted & {self._management, f"arn:aws:iam::{self._management}:root"}
            ):
                wanted = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("sts:ExternalId")
                if wanted is None or wanted == external_id:
                    return None
        return "the role's trust policy does not allow the caller"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _service_unavailable(
    start_response: StartResponse, service: str, operation: str, json_protocol: bool
) -> list[bytes]:
    message = f"{service} is unavailable (sandbox outage) for {operation or 'this call'}"
    if json_protocol:
        body = json.dumps({"__type": "ServiceUnavailable", "message": message}).encode()
        content_type = "application/x-amz-json-1.0"
    else:
        body = (
            "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"
            f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    start_response("503 Service Unavailable", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _access_denied(start_response: StartResponse, role_arn: str, why: str) -> list[bytes]:
    message = f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn} ({why})"
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>AccessDenied</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
    start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


class MotoSandboxServer:
    """moto's server app behind the AssumeRole gate, served by a thread on 127.0.0.1."""

    def __init__(self, management_account_id: str, clock: Clock | None = None) -> None:
        self.gate = AssumeRoleGate(DomainDispatcherApplication(create_backend_app), management_account_id, clock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self._server = make_server("127.0.0.1", 0, self.gate, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# The moto modules whose times mean something in the sandbox: SQS visibility timeouts and delays, IAM creation
# dates (Cloudcraft's role propagation check), STS credential expiry (Gatehouse's credential cache).
TIMED_MODULES = ("moto.sqs.models", "moto.iam.models", "moto.sts.models")


class MotoOnClock:
    """Runs moto's SQS, IAM and STS on the sandbox clock, by swapping their time functions while it runs.

    Not covered: SQS long polling (`WaitTimeSeconds` > 0 on an empty queue would wait for virtual time that never
    passes); the sandbox never long-polls.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._saved: list[tuple[Any, str, Any]] = []

    def start(self) -> None:
        from moto.core import utils

        def utcnow() -> datetime:
            return self._clock.now().replace(tzinfo=None)  # moto keeps naive UTC datetimes

        def unix_time(dt: datetime | None = None) -> float:
            return utils.unix_time(dt or utcnow())

        def unix_time_millis(dt: datetime | None = None) -> float:
            return unix_time(dt) * 1000.0

        replacements = {"utcnow": utcnow, "unix_time": unix_time, "unix_time_millis": unix_time_millis}
        for name in TIMED_MODULES:
            module = importlib.import_module(name)
            for attribute, replacement in replacements.items():
                if hasattr(module, attribute):
                    self._saved.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, replacement)

    def stop(self) -> None:
        for module, attribute, original in reversed(self._saved):
            setattr(module, attribute, original)
        self._saved.clear()


class BotocoreRetriesOnClock:
    """botocore's retry waits (standard mode: up to 5 attempts with exponential backoff) in sandbox time.

    Without it, an outage (`AssumeRoleGate.outage`) would make every call sleep seconds of real time between its
    retries; with it those waits move the sandbox clock, like every other wait in the sandbox.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._saved: Any = None

    def start(self) -> None:
        import time

        import botocore.endpoint

        clock = self._clock

        class _Time:
            def __getattr__(self, name: str) -> Any:
                return getattr(time, name)

            @staticmethod
            def sleep(seconds: float) -> None:
                clock.sleep(seconds)

        self._saved = getattr(botocore.endpoint, "time")  # noqa: B009 - botocore's retry sleep, swapped on purpose
        setattr(botocore.endpoint, "time", _Time())  # noqa: B010

    def stop(self) -> None:
        import botocore.endpoint

        if self._saved is not None:
            setattr(botocore.endpoint, "time", self._saved)  # noqa: B010
            self._saved = None
