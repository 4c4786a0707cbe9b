"""Typed client of the Cloudcraft AWS-account API: rate limited, retried where safe, never leaking the key."""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
from typing import Any, Literal
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from chalicelib.adapters.cloudcraft import bounded
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
from chalicelib.adapters.cloudcraft.limiter import RateLimiter, RateLimitWait
from chalicelib.adapters.cloudcraft.models import CloudcraftAccount, IamParameters, Team, text_or_none
from chalicelib.core.clock import Clock, SystemClock
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.retry import Backoff, Jitter

log = logging.getLogger("gatehouse.cloudcraft")

DEFAULT_BASE_URL = "https://api.cloudcraft.co"
MAX_RETRY_AFTER = 600.0  # longer than this cannot be waited out inside one Lambda invocation: fail instead
MAX_PACE_WAIT = 30.0  # the longest wait for a send time every caller takes (ten slots at 20 requests a minute)
BACKOFF_BASE = 1.0
BACKOFF_CAP = 20.0
REDACTED = "[redacted]"
POOL_SIZE = 32  # connections a client keeps open to Cloudcraft
MAX_KEY_LENGTH = 1024
_KEY = re.compile(r"[\x21-\x7e]+", re.ASCII)  # printable ASCII without spaces: safe in an HTTP header


def api_key_problem(key: str) -> str | None:
    """What makes `key` unusable as an API key, in words that never repeat it; None when it is usable."""
    if not key:
        return "it is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    if not _KEY.fullmatch(key):
        return "it contains whitespace, control or non-ASCII characters"
    return None


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
        jitter: Jitter = random.uniform,
        max_rate_limit_wait: float = MAX_RETRY_AFTER,
        max_body_bytes: int = bounded.MAX_BODY_BYTES,
    ) -> None:
        """`max_rate_limit_wait`: a 429 asking for a longer wait raises CloudcraftRateLimited at once (0: never
        wait), for callers that hand the wait to their platform, like the SQS worker's visibility timeout.
        `max_body_bytes`: a longer answer is an error, not read to the end."""
        problem = api_key_problem((api_key or "").strip())
        if problem:
            raise ConfigurationError(f"the Cloudcraft API key is not usable: {problem}")
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
        # Attempts per request, shared by 429s and by failures that may have been processed (5xx, no answer).
        self._backoff = Backoff(BACKOFF_BASE, BACKOFF_CAP, max_attempts, jitter)
        self._max_rate_limit_wait = max_rate_limit_wait
        # Pacing waits (one request every 60/R s) are short and always taken; a caller that hands long waits
        # back (max_rate_limit_wait below MAX_PACE_WAIT) does not sit out a penalty or a busy budget either.
        self._max_pace_wait = max(max_rate_limit_wait, MAX_PACE_WAIT)
        self._max_body_bytes = max_body_bytes
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
                if self._backoff.exhausted(attempt):
                    # Out of attempts, one last look still tells success from failure; a failing look
                    # leaves the POST's own error as the answer.
                    with contextlib.suppress(CloudcraftError):
                        landed = self._registered(role_arn)
                        if landed is not None:
                            return landed
                    raise exc from None
                self._wait_before_retry(exc, attempt)
                landed = self._registered(role_arn)
                if landed is not None:
                    return landed
                continue
            if data is None:
                # Registered, but answered without the object: it is in the list now.
                landed = self._registered(role_arn)
                if landed is None:
                    raise self._shape_error("POST", path, "the new account, or a list that holds it")
                return landed
            return self._account(data, "POST", path)

    def update_account(
        self,
        account_id: str,
        *,
        name: str,
        role_arn: str,
        read_access: tuple[str, ...] | None,
        write_access: tuple[str, ...] | None,
    ) -> CloudcraftAccount | None:
        """Replace a registration: PUT takes the full object, so omitted access would be reset, not kept.

        None when Cloudcraft confirms without the object (200 with no body, as its API spec documents, or 204):
        the update was applied; a caller that needs the object lists the accounts."""
        path = f"/aws/account/{quote(account_id, safe='')}"
        body = {
            "name": name,
            "roleArn": role_arn,
            "readAccess": list(read_access) if read_access is not None else None,
            "writeAccess": list(write_access) if write_access is not None else None,
        }
        data = self._call("PUT", path, body)
        return None if data is None else self._account(data, "PUT", path)

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
                if self._backoff.exhausted(attempt):
                    raise
                ambiguous = True
                self._wait_before_retry(exc, attempt)
            except CloudcraftNotFound:
                # A DELETE repeated after a failure that hid its success finds nothing left to delete.
                if missing_ok_after_retry and ambiguous:
                    log.info("cloudcraft %s %s: already gone after an earlier failed attempt", method, path)
                    return None
                raise

    def _after_rate_limit(self, exc: CloudcraftRateLimited, attempt: int) -> None:
        # Everyone sharing the limiter backs off, not only this caller: the server's window is full for all.
        self._limiter.penalize(exc.retry_after)
        if self._backoff.exhausted(attempt) or exc.retry_after > self._max_rate_limit_wait:
            raise exc
        log.warning(
            "cloudcraft %s %s: rate limited (attempt %d), waiting %.1fs",
            exc.method,
            exc.path,
            attempt,
            exc.retry_after,
        )

    def _wait_before_retry(self, exc: CloudcraftError, attempt: int) -> None:
        wait = self._backoff.delay(attempt)
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
        """One rate-limited HTTP exchange: the parsed JSON of a 2xx, or the matching CloudcraftError.

        No exception of the HTTP layer leaves here as it is: some carry the request headers, and so the key
        (a header-validation error quotes the header value). Each becomes a CloudcraftError that names its class
        only, raised outside the handler so that not even its context is kept.
        """
        try:
            slot = self._limiter.reserve(max_wait=self._max_pace_wait)
        except RateLimitWait as exc:  # nothing was sent or claimed: the caller hands the wait to its platform
            raise CloudcraftRateLimited(
                f"Cloudcraft {method} {path}: not sent, the rate budget is taken for {exc.seconds:.0f} s",
                status=None,
                method=method,
                path=path,
                retry_after=exc.seconds,
            ) from None
        with self._count_lock:
            self.request_count += 1
        failure: CloudcraftError | None = None
        response: requests.Response | None = None
        content = b""
        try:
            response = self._send(method, path, body)
            content = self._read(response)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            log.debug("cloudcraft %s %s -> no response (attempt %d): %s", method, path, attempt, type(exc).__name__)
            failure = CloudcraftConnectionError(
                f"Cloudcraft {method} {path}: no response ({type(exc).__name__})", method=method, path=path
            )
        except _TooLarge as exc:
            failure = self._shape_error(method, path, f"an answer of at most {exc.limit} bytes", status=exc.status)
        except Exception as exc:  # the boundary: whatever the HTTP layer raised, only its class name goes on
            # InvalidHeader (a key with CR/LF), UnicodeEncodeError (a non-Latin-1 header), InvalidURL, ...
            log.debug("cloudcraft %s %s -> not sent (attempt %d): %s", method, path, attempt, type(exc).__name__)
            failure = CloudcraftError(
                f"Cloudcraft {method} {path}: the request could not be sent ({type(exc).__name__})",
                method=method,
                path=path,
            )
        finally:
            self._limiter.settle(slot)
        if failure is not None:
            if response is not None:
                response.close()  # a body left half-read would keep its pooled connection busy
            raise failure
        assert response is not None
        status = response.status_code
        log.debug("cloudcraft %s %s -> %d (attempt %d)", method, path, status, attempt)
        text = self._redact(content.decode("utf-8", errors="replace"))
        if 200 <= status < 300:
            if not text.strip():
                return None
            try:
                return bounded.loads(text)
            except bounded.UnreadableAnswer as exc:
                problem = str(exc)
            raise self._shape_error(method, path, f"JSON ({problem})", status=status, body=text)
        raise self._error(response, method, path, text)

    def _read(self, response: requests.Response) -> bytes:
        """The body, read no further than `max_body_bytes` (an endless answer must not exhaust memory).

        A success that long is refused; an error page that long is cut short (only its first words are shown).
        """
        limit = self._max_body_bytes
        success = 200 <= response.status_code < 300
        declared = response.headers.get("Content-Length", "")
        if success and declared.isdigit() and int(declared) > limit:
            response.close()
            raise _TooLarge(limit, response.status_code)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > limit:
                response.close()
                if success:
                    raise _TooLarge(limit, response.status_code)
                break
            chunks.append(chunk)
        return b"".join(chunks)

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
            stream=True,  # the body is read by _read, within its bound
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


class _TooLarge(Exception):
    def __init__(self, limit: int, status: int) -> None:
        super().__init__(limit)
        self.limit = limit
        self.status = status
