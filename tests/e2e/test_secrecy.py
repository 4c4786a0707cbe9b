"""The Cloudcraft API key appears in no log line, notification, error or output, even at DEBUG."""

from __future__ import annotations

import json
import logging

import pytest

from gatehouse.sandbox import samples
from gatehouse.sandbox.world import Sandbox


def test_api_key_never_leaves_the_secret(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_SANDBOX_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    state = {
        "cloudcraft": {"faults": {"rate_limit_next": 1, "server_error_next": 1, "fail_after_commit_next": 1}},
        "settings": {"permission_mode": "custom"},
    }
    with Sandbox(state) as world:
        key = world.api_key
        world.deliver(samples.create_account_result("222222222222"))
        world.deliver(samples.managed_account("333333333333", "payments-prod"))
        world.cloudcraft.faults.unverifiable_next(50)
        world.deliver(samples.create_account_result("444444444444"))  # fails: the error is reported
        snapshot = world.snapshot()
    out, err = capfd.readouterr()

    assert any(n["attributes"]["outcome"] == "failed" for n in snapshot["notifications"])
    assert len(caplog.records) > 20  # the logs were really captured, at DEBUG
    assert '"level":"DEBUG"' in err or any(r.levelno == logging.DEBUG for r in caplog.records)
    for where, text in {
        "stdout": out,
        "stderr (Lambda logs)": err,
        "log records": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
        "snapshot (notifications, errors, results)": json.dumps(snapshot, default=str),
    }.items():
        assert key not in text, f"the API key leaked into {where}"
