"""Deployment checks' fixtures: the AWS call recorder, the scenario runs, and the packaged template.

The recorder wraps `botocore.client.BaseClient._make_api_call`, the one method every boto3 client call goes
through, so it sees what the real handlers call (Powertools' DynamoDB and SSM calls included) with no hook
in chalicelib. Attribution:
- to a Lambda function: the scenario driving that function opens `recorder.acting_as(name)` around its
  deliveries (Driver.deliver does), and only calls made inside that window are recorded, so the sandbox's
  own seeding is not;
- to a member account: the access key of every sts:AssumeRole response is remembered, and a call signed
  with one of those keys is a member-account call, to be checked against MEMBER_IAM_ACTIONS.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.client import BaseClient

from tests.deploy.support import CHALICE_DIR, PACKAGE_SCRIPT, VENV_BIN, ApiCall, load_template

# Where the IAM action is not "<signing name>:<operation>". None of Gatehouse's calls today; listed so a new
# call of one of these is checked against the right action instead of failing confusingly.
ACTION_OVERRIDES = {
    "lambda:Invoke": "lambda:InvokeFunction",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "monitoring:DescribeAlarms": "cloudwatch:DescribeAlarms",  # CloudWatch signs as "monitoring"
}


def iam_action(client: BaseClient, operation_name: str) -> str:
    """The IAM action a call needs: the service's signing name (its IAM prefix) and the operation name."""
    action = f"{client.meta.service_model.signing_name}:{operation_name}"
    return ACTION_OVERRIDES.get(action, action)


class CallRecorder:
    """Records every AWS API call made while a function is being driven. Use as a context manager."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self._function: str | None = None
        self._member_keys: dict[str, str] = {}  # assumed access key -> member account ID
        self._lock = threading.Lock()
        self._patch: Any = None

    def __enter__(self) -> CallRecorder:
        original = BaseClient._make_api_call  # type: ignore[attr-defined]  # private, but the one choke point
        recorder = self

        def recording(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
            recorder._record(client, operation_name, api_params)  # first: a refused call still needed it
            response = original(client, operation_name, api_params)
            if iam_action(client, operation_name) == "sts:AssumeRole":
                recorder._remember_member_key(api_params, response)
            return response

        self._patch = mock.patch.object(BaseClient, "_make_api_call", recording)
        self._patch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.stop()

    @contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        """Attribute calls made inside this block to `function` (process-wide: a handler may use threads)."""
        with self._lock:
            if self._function is not None:
                raise RuntimeError(f"already driving {self._function}; a scenario drives one function at a time")
            self._function = function
        try:
            yield
        finally:
            with self._lock:
                self._function = None

    def _record(self, client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> None:
        with self._lock:
            function = self._function
        if function is None:
            return
        credentials = client._get_credentials()  # type: ignore[attr-defined]
        key = credentials.access_key if credentials is not None else None
        with self._lock:
            member = self._member_keys.get(key) if key else None
            self.calls.append(ApiCall(function, iam_action(client, operation_name), member, dict(api_params)))

    def _remember_member_key(self, params: dict[str, Any], response: dict[str, Any]) -> None:
        key = response.get("Credentials", {}).get("AccessKeyId")
        match = re.match(r"^arn:aws[\w-]*:iam::(\d{12}):role/", str(params.get("RoleArn", "")))
        if key and match:
            with self._lock:
                self._member_keys[key] = match.group(1)


@pytest.fixture
def call_recorder() -> Iterator[CallRecorder]:
    with CallRecorder() as recorder:
        yield recorder


_SCENARIO_RUNS: dict[str, list[ApiCall]] = {}


@pytest.fixture
def scenario_calls() -> Callable[[str], list[ApiCall]]:
    """`scenario_calls(name)`: the calls function `name` made in its scenario (run once per test process)."""
    from tests.deploy.scenarios import SCENARIOS, Driver

    def run(function: str) -> list[ApiCall]:
        if function not in SCENARIOS:
            pytest.fail(
                f"{function} is in .chalice/config.json but has no scenario: add "
                f'"{function}": drive_{function} to SCENARIOS in tests/deploy/scenarios.py (see its docstring)'
            )
        if function not in _SCENARIO_RUNS:
            with CallRecorder() as recorder:
                SCENARIOS[function](Driver(function, recorder))
            assert recorder.calls, f"the scenario for {function} made no AWS call at all"
            _SCENARIO_RUNS[function] = recorder.calls
        return _SCENARIO_RUNS[function]

    return run


# --- packaging (slow: `chalice package` builds the deployment zip, downloading wheels from PyPI) ----------
PACKAGE_STAGE = "prod"


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`scripts/package.sh prod` run for real, once per session: the directory holding sam.yaml and the zip."""
    out = tmp_path_factory.mktemp("package") / PACKAGE_STAGE
    env = {key: value for key, value in os.environ.items() if key not in ("AWS_PROFILE", "AWS_ENDPOINT_URL")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # Chalice caches built packages in .chalice/deployments: one packaging at a time across xdist workers.
    lock_path = CHALICE_DIR / "deployments" / ".package.lock"  # .chalice/deployments is git-ignored
    lock_path.parent.mkdir(exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(  # noqa: S603 - the project's own script
            [str(PACKAGE_SCRIPT), PACKAGE_STAGE, str(out)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
            env=env,
        )
    if result.returncode != 0:
        pytest.fail(f"scripts/package.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return out


@pytest.fixture(scope="session")
def packaged_template(packaged: Path) -> dict[str, Any]:
    return load_template(packaged / "sam.yaml")
