"""The one logger, metrics and tracer of the app (Powertools; configured by POWERTOOLS_* variables)."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "gatehouse"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Gatehouse", service=SERVICE)
tracer = Tracer(service=SERVICE)


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
