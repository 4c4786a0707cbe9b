"""The one logger, metrics and tracer of the app (Powertools; configured by POWERTOOLS_* variables)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

SERVICE = "gatehouse"
TRUE = frozenset({"1", "true", "yes", "on"})

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Gatehouse", service=SERVICE)


def tracing_enabled(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """X-Ray tracing runs in Lambda unless POWERTOOLS_TRACE_DISABLED says otherwise (Powertools' own rule)."""
    if env.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in TRUE:
        return False
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME")) and not env.get("AWS_SAM_LOCAL")


F = TypeVar("F", bound=Callable[..., Any])


class TracerLike(Protocol):
    def capture_lambda_handler(self, handler: F) -> F: ...


class NoTracer:
    """The tracer's decorator when tracing is off: building Powertools' Tracer imports the X-Ray SDK (about a
    third of a handler's imports) even when it then records nothing."""

    def capture_lambda_handler(self, handler: F) -> F:
        return handler


def _tracer() -> TracerLike:
    if not tracing_enabled():
        return NoTracer()
    from aws_lambda_powertools import Tracer

    return cast(TracerLike, Tracer(service=SERVICE))


tracer = _tracer()


class _DropSecretPayloads(logging.Filter):
    """botocore logs whole request and response bodies at DEBUG, Secrets Manager's included: someone turning
    DEBUG on to troubleshoot must not get the Cloudcraft API key in their logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        return "SecretString" not in text and "secretsmanager." not in text


for _name in ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.auth"):
    logging.getLogger(_name).addFilter(_DropSecretPayloads())
