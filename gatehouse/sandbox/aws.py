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

ACCOUNT_IN_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$")
StartResponse = Callable[..., Any]


class AssumeRoleGate:
    """WSGI middleware in front of moto's STS: AssumeRole succeeds only into a role that exists and trusts
    the caller's account, and an account can be told to refuse its first N calls, like a fresh account does.
    """

    def __init__(self, app: Any, management_account_id: str) -> None:
        self._app = app
        self._management = management_account_id
        self._refusals: dict[str, int] = {}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []  # (role ARN, "allowed" | "refused: why")

    def refuse(self, account_id: str, times: int) -> None:
        with self._lock:
            self._refusals[account_id] = times

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
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

    def _refusal(self, role_arn: str, external_id: str | None) -> str | None:
        from moto.iam.models import iam_backends

        match = ACCOUNT_IN_ARN.match(role_arn)
        if not match:
            return "not a role ARN"
        account_id, role_name = match.groups()
        with self._lock:
            if self._refusals.get(account_id, 0) > 0:
                self._refusals[account_id] -= 1
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

    def __init__(self, management_account_id: str) -> None:
        self.gate = AssumeRoleGate(DomainDispatcherApplication(create_backend_app), management_account_id)
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
