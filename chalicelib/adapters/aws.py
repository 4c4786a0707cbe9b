"""Small helpers every AWS adapter shares: botocore client settings and the one translation of its errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.errors import AwsAccessDeniedError, AwsError, AwsNotFoundError

# Standard retry mode handles AWS throttling with backoff; adapters only handle what it cannot.
# The pool holds a connection per thread of the fleet's parallel reads (16), with room to spare; the default (10)
# opens and drops extra connections on every call past the tenth.
CLIENT_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20, max_pool_connections=32
)
# Organizations allows few requests a second per account and throttles the rest: its client slows itself down
# once throttled (botocore's adaptive mode, a client-side token bucket) and tries longer before giving up.
ORGANIZATIONS_CONFIG = CLIENT_CONFIG.merge(Config(retries={"max_attempts": 10, "mode": "adaptive"}))

# Codes callers branch on, raised as their own AwsError subclasses (the code stays on `.code` as well).
NOT_FOUND_CODES = frozenset({"NoSuchEntity", "AccountNotFoundException", "ParameterNotFound"})
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})

Translator = Callable[[ClientError | BotoCoreError, str], Exception]


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def translate(exc: ClientError | BotoCoreError, doing: str) -> AwsError:
    """A botocore failure as the project's error, naming what was being done and the error code."""
    code = error_code(exc) or type(exc).__name__
    error_class = (
        AwsNotFoundError
        if code in NOT_FOUND_CODES
        else AwsAccessDeniedError
        if code in ACCESS_DENIED_CODES
        else AwsError
    )
    response = exc.response if isinstance(exc, ClientError) else None
    return error_class(f"{doing} failed: {code}: {exc}", code=code, response=response)


@contextmanager
def aws_call(doing: str, *, errors: Translator = translate) -> Iterator[None]:
    """Wrap AWS calls: a botocore failure leaves as `errors(exc, doing)`, by default an AwsError.

    `doing` says what was being done, e.g. "sts:GetCallerIdentity"; an adapter whose callers need a
    service's own error tree (Proton's) passes its translator as `errors`.
    """
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise errors(exc, doing) from exc
