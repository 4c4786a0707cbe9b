"""Shared fixtures: no test reaches AWS, and every cache and global is reset between tests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# No test may depend on the machine's speed: no per-example deadline, no "too slow" health check. In CI the
# examples are derived from each test's source (derandomize), so a run is repeatable; locally they are random,
# and a failure prints the example and the @reproduce_failure blob that replays it.
settings.register_profile(
    "gatehouse",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
    print_blob=True,
)
settings.load_profile("gatehouse")

REPO = Path(__file__).resolve().parent.parent

# Sample events in the shapes AWS sends them, kept in the repository so the tests need nothing beside it.
SHARED_EVENTS = REPO / "tests" / "data" / "events"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy credentials so nothing can reach a real account, and a clean composition root."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PROTON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "GatehouseTests")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")

    from aws_lambda_powertools.utilities import parameters

    from chalicelib.container import set_services
    from chalicelib.core.observability import metrics

    parameters.clear_caches()
    metrics.clear_metrics()
    set_services(None)
    yield
    set_services(None)
    metrics.clear_metrics()
    parameters.clear_caches()


def load_event(name: str) -> dict[str, Any]:
    """A sample event from tests/data/events (the shapes AWS sends)."""
    data: dict[str, Any] = json.loads((SHARED_EVENTS / f"{name}.json").read_text())
    return data
