"""What a cold start imports: no X-Ray SDK while tracing is off, no approvals outside their functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chalicelib.core.observability import NoTracer, tracing_enabled

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import app, chalicelib.handlers, chalicelib.onboarding.arrival, chalicelib.fleet.worker
from chalicelib.core.observability import tracer
print(json.dumps({
    "xray": sorted(m for m in sys.modules if m.startswith("aws_xray_sdk")),
    "approvals": sorted(m for m in sys.modules if m.startswith("chalicelib.approvals")),
    "tracer": type(tracer).__name__,
}))
"""


def imported(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_LAMBDA", "AWS_SAM"))}
    result = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={**clean, "AWS_DEFAULT_REGION": "us-east-1", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,  # a hang guard
    )
    loaded: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_with_tracing_off_the_handlers_import_neither_the_xray_sdk_nor_the_approvals() -> None:
    loaded = imported(AWS_LAMBDA_FUNCTION_NAME="gatehouse-prod-on_account_arrival", POWERTOOLS_TRACE_DISABLED="true")

    assert loaded == {"xray": [], "approvals": [], "tracer": "NoTracer"}


def test_in_lambda_with_tracing_on_the_tracer_is_powertools() -> None:
    loaded = imported(AWS_LAMBDA_FUNCTION_NAME="gatehouse-prod-on_account_arrival")

    assert loaded["tracer"] == "Tracer"
    assert loaded["xray"] != []
    assert loaded["approvals"] == []  # still only where connections are decided


def test_tracing_follows_powertools_rules() -> None:
    assert tracing_enabled({"AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert not tracing_enabled({"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "TRUE"})
    assert not tracing_enabled({})  # outside Lambda (tests, the CLI, the sandbox)
    assert not tracing_enabled({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_SAM_LOCAL": "true"})


def test_the_no_tracer_leaves_the_handler_as_it_is() -> None:
    def handler(event: dict[str, object], context: object) -> str:
        return "done"

    assert NoTracer().capture_lambda_handler(handler) is handler
