"""Cloudcraft's failures as the project's errors, one class per kind of answer, and reading what an answer says."""

from __future__ import annotations

import html
import math
import re
from email.utils import parsedate_to_datetime

from chalicelib.adapters.cloudcraft import bounded
from chalicelib.core.clock import Clock
from chalicelib.core.errors import GatehouseError

DEFAULT_RETRY_AFTER = 60.0  # the FAQ's advice when a 429 carries no Retry-After
BODY_LIMIT = 500

_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class CloudcraftError(GatehouseError):
    """A Cloudcraft call failed. Carries what was asked and answered, never the request headers."""

    def __init__(
        self, message: str, *, status: int | None = None, body: str = "", method: str = "", path: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:BODY_LIMIT]
        self.method = method
        self.path = path


class CloudcraftBadRequest(CloudcraftError):
    """400: an invalid request, or a role Cloudcraft could not assume (yet)."""


class CloudcraftAuthError(CloudcraftError):
    """401/403: a missing, wrong or read-only key, or a user without the Owner/Administrator role."""


class CloudcraftNotFound(CloudcraftError):
    """404: no such account (or path)."""


class CloudcraftRateLimited(CloudcraftError):
    """429: the request was not processed; `retry_after` says how long to wait."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        body: str = "",
        method: str = "",
        path: str = "",
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        super().__init__(message, status=status, body=body, method=method, path=path)
        self.retry_after = retry_after


class CloudcraftServerError(CloudcraftError):
    """5xx: Cloudcraft or a gateway in front of it failed; the request may or may not have been processed."""


class CloudcraftConnectionError(CloudcraftError):
    """No answer: connection refused or reset, or a timeout. The request may or may not have been processed."""


ERROR_BY_STATUS: dict[int, type[CloudcraftError]] = {
    400: CloudcraftBadRequest,
    401: CloudcraftAuthError,
    403: CloudcraftAuthError,
    404: CloudcraftNotFound,
    429: CloudcraftRateLimited,
}


def error_class_for(status: int) -> type[CloudcraftError]:
    if status >= 500:
        return CloudcraftServerError
    return ERROR_BY_STATUS.get(status, CloudcraftError)


def error_detail(body: str) -> str:
    """The human part of an error body: `{"error": ...}` when there is one, else the text of an HTML page."""
    text = body.strip()
    if not text:
        return ""
    try:
        parsed = bounded.loads(text)
    except bounded.UnreadableAnswer:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("error", "message"):
            value = parsed.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:200]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"]).strip()[:200]
    if text.startswith("<"):
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAG.sub(" ", text)
        text = html.unescape(text)
    return " ".join(text.split())[:200]


def parse_retry_after(value: str | None, clock: Clock) -> float:
    """Seconds to wait: delta-seconds or an HTTP date; DEFAULT_RETRY_AFTER when absent or unparseable."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            return DEFAULT_RETRY_AFTER
        return max(0.0, (when - clock.now()).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return DEFAULT_RETRY_AFTER
    return seconds
