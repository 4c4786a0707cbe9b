"""Typed client of the Cloudcraft AWS-account API: rate limited, retried where safe, never leaking the key."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from chalicelib.adapters.cloudcraft.errors import (
    CloudcraftConnectionError,
    CloudcraftError,
    CloudcraftNotFound,
    CloudcraftRateLimited,
    CloudcraftServerError,
    error_class_for,
    error_detail,
    parse_retry_after,
)
from chalicelib.adapters.cloudcraft.limiter import RateLimiter
from chalicelib.adapters.cloudcraft.models import CloudcraftAccount, IamParameters, Team, text_or_none
from chalicelib.core.clock import Clock, SystemClock
from chalicelib.core.errors import ConfigurationError

log = logging.getLogger("gatehouse.cloudcraft")

DEFAULT_BASE_URL = "https://api.cloudcraft.co"
MAX_RETRY_AFTER = 600.0  # longer than this cannot be waited out inside one Lambda invocation: fail instead
BACKOFF_BASE = 1.0
BACKOFF_CAP = 20.0
REDACTED = "[redacted]"
POOL_SIZE = 32  # connections a client keeps open to Cloudcraft


class _Secret:
    """Holds the key so that repr(), vars() dumps and debuggers show a placeholder instead."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__


def _pooled_session() -> requests.Session:
    """A session keeping up to POOL_SIZE connections: concurrent callers (the fleet's 16 threads, overlapping
    invocations in a warm container) reuse theirs instead of opening and dropping one per call past the tenth."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"gatehouse/{version('gatehouse')}"
    except PackageNotFoundError:  # the Lambda bundle carries chalicelib but no distribution metadata
        return "gatehouse/lambda"


def _equal_jitter(delay: float) -> float:
    return random.uniform(delay / 2, delay)  # noqa: S311 - spreading retries, not cryptography


class CloudcraftClient:
    """The Cloudcraft API calls Gatehouse makes, each one rate limited and retried as far as it is safe."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        max_attempts: int = 4,
        jitter: Callable[[float], float] | None = None,
        max_rate_limit_wait: float = MAX_RETRY_AFTER,
    ) -> None:
        """`max_rate_limit_wait`: a 429 asking for a longer wait raises CloudcraftRateLimited at once (0: never
        wait), for callers that hand the wait to their platform, like the SQS worker's visibility timeout."""
        if not api_key or not api_key.strip():
            raise ConfigurationError("the Cloudcraft API key is empty")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigurationError(f"the Cloudcraft base URL must be an https:// URL (got {base_url!r})")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._key = _Secret(api_key.strip())
        self.base_url = base_url.rstrip("/")
        self._own_session = session is None
        self._session = session or _pooled_session()
        self._timeout = timeout
        self._clock: Clock = clock or SystemClock()
        self._limiter = rate_limiter or RateLimiter(clock=self._clock)
        self._max_attempts = max_attempts
        self._max_rate_limit_wait = max_rate_limit_wait
        self._jitter = jitter or _equal_jitter
        self._user_agent = _user_agent()
        self._count_lock = threading.Lock()
        self.request_count = 0

    def __repr__(self) -> str:
        return f"CloudcraftClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> CloudcraftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- API calls ---------------------------------------------------------------------------------------
    def list_accounts(self) -> list[CloudcraftAccount]:
        data = self._call("GET", "/aws/account")
        accounts = data.get("accounts") if isinstance(data, dict) else None
        if not isinstance(accounts, list) or not all(isinstance(item, dict) for item in accounts):
            # Skipping what cannot be read would hide a registration and invite a duplicate: refuse instead.
            raise self._shape_error("GET", "/aws/account", 'an object with an "accounts" list')
        return [CloudcraftAccount.from_api(item) for item in accounts]

    def create_account(
        self,
        *,
        name: str,
        role_arn: str,
        region: str = "us-east-1",
        read_access: tuple[str, ...] | None = None,
        write_access: tuple[str, ...] | None = None,
    ) -> CloudcraftAccount:
        """Register an account (201). After an ambiguous failure, checks whether the POST landed before repeating it."""
        body: dict[str, Any] = {"name": name, "roleArn": role_arn, "region": region}
        if read_access is not None:
            body["readAccess"] = list(read_access)
        if write_access is not None:
            body["writeAccess"] = list(write_access)
        path = "/aws/account"
        attempt = 0
        while True:
            attempt += 1
            try:
                data = self._attempt("POST", path, body, attempt)
            except CloudcraftRateLimited as exc:
                # A 429'd request is never processed, so repeating the POST cannot create a duplicate.
                self._after_rate_limit(exc, attempt)
                continue
            except (CloudcraftServerError, CloudcraftConnectionError) as exc:
                # The POST may have been processed before the failure: look before posting again.
                if attempt >= self._max_attempts:
                    # Out of attempts, one last look still tells success from failure; a failing look
                    # leaves the POST's own error as the answer.
                    with contextlib.suppress(CloudcraftError):
                        landed = self._registered(role_arn)
                        if landed is not None:
                            return landed
                    raise exc from None
                self._backoff(exc, attempt)
                landed = self._registered(role_arn)
                if landed is not None:
                    return landed
                continue
            return self._account(data, "POST", path)

    def update_account(
        self,
        account_id: str,
        *,
        name: str,
        role_arn: str,
        read_access: tuple[str, ...] | None,
        write_access: tuple[str, ...] | None,
    ) -> CloudcraftAccount:
        """Replace a registration: PUT takes the full object, so omitted access would be reset, not kept."""
        path = f"/aws/account/{quote(account_id, safe='')}"
        body = {
            "name": name,
            "roleArn": role_arn,
            "readAccess": list(read_access) if read_access is not None else None,
            "writeAccess": list(write_access) if write_access is not None else None,
        }
        return self._account(self._call("PUT", path, body), "PUT", path)

    def delete_account(self, account_id: str) -> None:
        self._call("DELETE", f"/aws/account/{quote(account_id, safe='')}", missing_ok_after_retry=True)

    def iam_parameters(self) -> IamParameters:
        path = "/aws/account/iamParameters"
        data = self._call("GET", path)
        if not isinstance(data, dict):
            raise self._shape_error("GET", path, "an object")
        account_id, external_id = text_or_none(data.get("accountId")), text_or_none(data.get("externalId"))
        if not account_id or not external_id:
            # A trust policy built from blanks would lock Cloudcraft out of every account: refuse instead.
            raise self._shape_error("GET", path, "accountId and externalId")
        return IamParameters(account_id, external_id, text_or_none(data.get("awsConsoleUrl")) or "")

    def policy(self, kind: Literal["custom", "minimal"]) -> dict[str, Any]:
        """Cloudcraft's IAM policy document for the read-only role (`custom`) or its stricter variant."""
        if kind not in ("custom", "minimal"):
            raise ValueError(f"policy kind must be 'custom' or 'minimal', not {kind!r}")
        path = f"/aws/account/iamParameters/policy/{kind}"
        data = self._call("GET", path)
        if not isinstance(data, dict) or not isinstance(data.get("Statement"), list | dict):
            raise self._shape_error("GET", path, "an IAM policy document with a Statement")
        return data

    def teams(self) -> list[Team]:
        path = "/team"
        data = self._call("GET", path)
        items: Any = data
        if isinstance(data, dict):
            # The docs show an object, the Go SDK's fixture a bare array; take the object's list either way.
            items = data.get("teams")
            if not isinstance(items, list):
                items = next((value for value in data.values() if isinstance(value, list)), None)
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise self._shape_error("GET", path, "a list of teams")
        return [Team.from_api(item) for item in items]

    # --- retries -----------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, *, missing_ok_after_retry: bool = False) -> Any:
        """Send an idempotent request (GET, PUT, DELETE), retrying 429, 5xx and connection failures."""
        attempt = 0
        ambiguous = False
        while True:
            attempt += 1
            try:
                return self._attempt(method, path, body, attempt)
            except CloudcraftRateLimited as exc:
                self._after_rate_limit(exc, attempt)
            except (CloudcraftServerError, CloudcraftConnectionError) as exc:
                if attempt >= self._max_attempts:
                    raise
                ambiguous = True
                self._backoff(exc, attempt)
            except CloudcraftNotFound:
                # A DELETE repeated after a failure that hid its success finds nothing left to delete.
                if missing_ok_after_retry and ambiguous:
                    log.info("cloudcraft %s %s: already gone after an earlier failed attempt", method, path)
                    return None
                raise

    def _after_rate_limit(self, exc: CloudcraftRateLimited, attempt: int) -> None:
        # Everyone sharing the limiter backs off, not only this caller: the server's window is full for all.
        self._limiter.penalize(exc.retry_after)
        if attempt >= self._max_attempts or exc.retry_after > self._max_rate_limit_wait:
            raise exc
        log.warning(
            "cloudcraft %s %s: rate limited (attempt %d), waiting %.1fs",
            exc.method,
            exc.path,
            attempt,
            exc.retry_after,
        )

    def _backoff(self, exc: CloudcraftError, attempt: int) -> None:
        wait = max(0.0, self._jitter(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))))
        log.warning(
            "cloudcraft %s %s: %s (attempt %d), retrying in %.1fs",
            exc.method,
            exc.path,
            exc.status if exc.status is not None else "no response",
            attempt,
            wait,
        )
        self._clock.sleep(wait)

    def _registered(self, role_arn: str) -> CloudcraftAccount | None:
        """The newest registration of `role_arn`, found after a POST whose answer was lost."""
        matches = [account for account in self.list_accounts() if account.role_arn == role_arn]
        if not matches:
            return None
        landed = max(matches, key=lambda account: account.created_at or "")
        log.info("cloudcraft POST /aws/account: %s is registered already (%s); not posting again", role_arn, landed.id)
        return landed

    # --- one request -------------------------------------------------------------------------------------
    def _attempt(self, method: str, path: str, body: Any, attempt: int) -> Any:
        """One rate-limited HTTP exchange: the parsed JSON of a 2xx, or the matching CloudcraftError."""
        slot = self._limiter.reserve()
        with self._count_lock:
            self.request_count += 1
        try:
            response = self._send(method, path, body)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            log.debug("cloudcraft %s %s -> no response (attempt %d): %s", method, path, attempt, type(exc).__name__)
            raise CloudcraftConnectionError(
                f"Cloudcraft {method} {path}: no response ({type(exc).__name__}: {self._redact(_first_line(exc))})",
                method=method,
                path=path,
            ) from None
        finally:
            self._limiter.settle(slot)
        status = response.status_code
        log.debug("cloudcraft %s %s -> %d (attempt %d)", method, path, status, attempt)
        text = self._redact(response.text or "")
        if 200 <= status < 300:
            if not text.strip():
                return None
            try:
                return json.loads(text)
            except ValueError:
                raise self._shape_error(method, path, "JSON", status=status, body=text) from None
        raise self._error(response, method, path, text)

    def _send(self, method: str, path: str, body: Any) -> requests.Response:
        return self._session.request(
            method,
            self.base_url + path,
            json=body,
            headers={
                "Authorization": f"Bearer {self._key.reveal()}",
                "Accept": "application/json",
                "User-Agent": self._user_agent,
            },
            timeout=self._timeout,
            # A redirect would be a misconfigured base URL, and following it could turn a POST into a GET.
            allow_redirects=False,
        )

    def _error(self, response: requests.Response, method: str, path: str, text: str) -> CloudcraftError:
        status = response.status_code
        detail = error_detail(text) or (response.reason or "") or "(empty body)"
        message = self._redact(f"Cloudcraft {method} {path} returned {status}: {detail}")
        cls = error_class_for(status)
        if cls is CloudcraftRateLimited:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock)
            return CloudcraftRateLimited(
                message, status=status, body=text, method=method, path=path, retry_after=retry_after
            )
        return cls(message, status=status, body=text, method=method, path=path)

    def _shape_error(
        self, method: str, path: str, expected: str, *, status: int | None = 200, body: str = ""
    ) -> CloudcraftError:
        return CloudcraftError(
            f"Cloudcraft {method} {path}: unexpected response, expected {expected}",
            status=status,
            body=body,
            method=method,
            path=path,
        )

    def _account(self, data: Any, method: str, path: str) -> CloudcraftAccount:
        if not isinstance(data, dict):
            raise self._shape_error(method, path, "an account object")
        return CloudcraftAccount.from_api(data)

    def _redact(self, text: str) -> str:
        # An error page may echo the request headers (a debugging proxy, a misconfigured gateway): drop the key.
        key = self._key.reveal()
        return text.replace(key, REDACTED) if key in text else text


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else ""
