"""Small helpers every AWS adapter shares: error codes and botocore client settings."""

from __future__ import annotations

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.errors import AwsError

# Standard retry mode handles AWS throttling with backoff; adapters only handle what it cannot.
# The pool holds a connection per thread of the fleet's parallel reads (16), with room to spare; the default (10)
# opens and drops extra connections on every call past the tenth.
CLIENT_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20, max_pool_connections=32
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def translate(exc: ClientError | BotoCoreError, doing: str) -> AwsError:
    """One place that turns botocore failures into the project's error, naming what was being done."""
    code = error_code(exc) or type(exc).__name__
    return AwsError(f"{doing} failed: {code}: {exc}", code=code)
