"""The reconciliation's heartbeat metric, which the stage's "no reconciliation for 26 hours" alarm watches.

Driven through the app's `reconcile` handler in the sandbox; the metrics are read from the CloudWatch embedded
metric format (EMF) lines the handler writes, as CloudWatch Logs would turn them into metrics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.handlers import RECONCILIATIONS_COMPLETED
from gatehouse.sandbox.world import Sandbox, generated_accounts


@contextmanager
def metrics_written() -> Iterator[None]:
    """The sandbox turns Powertools metrics off (POWERTOOLS_METRICS_DISABLED); on for this block, as in Lambda."""
    saved = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
        else:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = saved


def run_reconcile(world: Sandbox, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    """The reconcile handler's result and everything it wrote."""
    capsys.readouterr()
    with metrics_written():
        result = world.run_schedule("reconcile")
    written = capsys.readouterr()
    return result, written.out + written.err


def emitted_metrics(output: str) -> list[tuple[str, str, dict[str, str], float]]:
    """(namespace, metric name, dimensions, value) for every metric in the EMF lines of `output`."""
    found = []
    for line in output.splitlines():
        try:
            document: Any = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = {name: str(document[name]) for name in dimension_set}
                for metric in directive["Metrics"]:
                    values = document[metric["Name"]]
                    for value in values if isinstance(values, list) else [values]:
                        found.append((directive["Namespace"], metric["Name"], dimensions, float(value)))
    return found


def heartbeats(output: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (namespace, dimensions, value)
        for namespace, name, dimensions, value in emitted_metrics(output)
        if name == RECONCILIATIONS_COMPLETED
    ]


@pytest.mark.parametrize("mode", ["repair", "report"])
def test_a_completed_reconciliation_emits_one_heartbeat_for_its_stage(
    mode: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEHOUSE_STAGE", "prod")
    with Sandbox({"organization": {"accounts": generated_accounts(3)}, "settings": {"reconcile": mode}}) as world:
        result, output = run_reconcile(world, capsys)

    assert result["outcome"] == "drift"
    # The alarm's metric: namespace Gatehouse, dimensions service and stage, exactly these two.
    assert heartbeats(output) == [("Gatehouse", {"service": "gatehouse", "stage": "prod"}, 1.0)]


def test_an_organization_in_order_still_counts_as_a_completed_reconciliation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEHOUSE_STAGE", "dev")
    with Sandbox({"organization": {"accounts": generated_accounts(2)}}) as world:
        run_reconcile(world, capsys)
        world.run_worker(for_seconds=300)
        again, output = run_reconcile(world, capsys)

    assert again["outcome"] == "in-order"
    assert heartbeats(output) == [("Gatehouse", {"service": "gatehouse", "stage": "dev"}, 1.0)]


def test_a_reconciliation_that_cannot_plan_emits_no_heartbeat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEHOUSE_STAGE", "prod")
    with Sandbox({"organization": {"accounts": generated_accounts(2)}, "settings": {"scope_ous": "nonsense"}}) as world:
        result, output = run_reconcile(world, capsys)

    assert result["outcome"] == "failed"
    assert heartbeats(output) == []
    assert "ReconciliationFailed" in {name for _, name, _, _ in emitted_metrics(output)}


def test_the_reconciliations_other_metrics_carry_the_stage_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEHOUSE_STAGE", "prod")
    with Sandbox({"organization": {"accounts": generated_accounts(2)}}) as world:
        _, output = run_reconcile(world, capsys)

    by_name = {name: dimensions for _, name, dimensions, _ in emitted_metrics(output)}
    assert by_name["ReconcileRegister"] == {"service": "gatehouse", "stage": "prod"}
