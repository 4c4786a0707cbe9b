"""The one logger, metrics and tracer of the app (Powertools; configured by POWERTOOLS_* variables)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "gatehouse"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Gatehouse", service=SERVICE)
tracer = Tracer(service=SERVICE)
