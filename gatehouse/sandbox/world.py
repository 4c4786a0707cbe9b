"""A whole Gatehouse world on loopback: moto, the Cloudcraft (and Proton) emulators, and the real handlers.

Events are routed as EventBridge would route them: matched against the patterns the Chalice app
declares, then handed to the same handler functions Lambda calls. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import requests

from chalicelib.core.clock import VirtualClock
from chalicelib.core.ids import is_account_id, parse_role_arn

if TYPE_CHECKING:
    from chalicelib.container import Services

MANAGEMENT_ACCOUNT_ID = "123456789012"  # moto's default account plays the management account
REGION = "us-east-1"
STAGE = "sandbox"
TOPIC_NAME = f"gatehouse-{STAGE}-ops"
TABLE_NAME = f"gatehouse-{STAGE}-idempotency"
QUEUE_NAME = f"gatehouse-{STAGE}-work"
PLAN_QUEUE_NAME = f"gatehouse-{STAGE}-plan"
SETTINGS_PARAMETER = f"/gatehouse/{STAGE}/settings"
RULES_PARAMETER = f"/gatehouse/{STAGE}/proton-rules"
SECRET_NAME = f"gatehouse/{STAGE}/cloudcraft-api-key"

DEFAULT_ACCOUNTS: list[dict[str, Any]] = [
    {"id": "222222222222", "name": "data-platform", "ou": "Workloads/Dev", "tags": {"team": "data"}},
    {"id": "333333333333", "name": "payments-prod", "ou": "Workloads/Prod", "access_role": "AWSControlTowerExecution"},
    {"id": "444444444444", "name": "payments-dev", "ou": "Workloads/Dev", "tags": {"team": "payments"}},
    {"id": "555555555555", "name": "alice-playground", "ou": "Sandbox", "tags": {"gatehouse:opt-out": "true"}},
]


def generated_accounts(count: int) -> list[dict[str, Any]]:
    """`count` accounts spread over a few OUs, for trying plan/apply at Organization scale."""
    ous = ("Workloads/Prod", "Workloads/Dev", "Workloads/Dev/Data", "Sandbox", "")
    return [{"id": f"{100000000000 + i}", "name": f"account-{i:04d}", "ou": ous[i % len(ous)]} for i in range(count)]


SANDBOX_OPTIONS = ("eventbridge_retries", "start", "seed", "plan_page_size")
LAMBDA_RETRY_WAIT = 300.0  # real seconds a retry waits for the invocations it follows: a hang guard only


class SandboxError(Exception):
    """The sandbox itself could not be set up as asked (a bad STATE document, say)."""


@dataclass
class FakeLambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str = "gatehouse-sandbox"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{MANAGEMENT_ACCOUNT_ID}:function:gatehouse-sandbox"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/gatehouse-sandbox"
    log_stream_name: str = "sandbox"
    timeout_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


@dataclass
class Delivery:
    """What became of one delivery of one event."""

    source: str
    handler: str | None
    result: Any = None
    error: str | None = None
    attempts: int = 0


class Sandbox:
    """Use as a context manager; `deliver()` events, then `snapshot()` the resulting state.

    Sandbox time is virtual (`self.clock`, a VirtualClock shared by the handlers, the emulators and moto's SQS,
    IAM and STS): waits (Retry-After, rate-limit windows, backoff, Lambda's retry delays) move it at once, real
    time never does, and backoff jitter comes from a seeded generator; so a run takes the same sandbox time and
    gives the same results however busy the machine is.
    """

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state = state or {}
        sandbox_cfg = _sandbox_options(self.state.get("sandbox"))
        self.clock = VirtualClock(sandbox_cfg["start"])
        self.rng = random.Random(sandbox_cfg["seed"])  # noqa: S311 - backoff jitter, reproducible on purpose
        self.eventbridge_retries = sandbox_cfg["eventbridge_retries"]
        self.plan_page_size = sandbox_cfg["plan_page_size"]
        self.api_key = "cc-sandbox-" + secrets.token_hex(16)
        self.deliveries: list[Delivery] = []
        self.errors: list[dict[str, str]] = []
        self._saved_env: dict[str, str | None] = {}
        self._stack: list[Any] = []
        self._invocations = threading.Condition()
        self._running: set[int] = set()  # handler invocations under way (ids from _next_invocation)
        self._next_invocation = 0
        self._worker_container: Services | None = None  # the fleet worker's own (see drain_queue)
        self._planner_container: Services | None = None  # reconcile_page's own (see run_schedule)

    # --- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        from chalicelib.container import set_services

        set_services(None)
        for stoppable in reversed(self._stack):
            stoppable.stop()
        self._stack.clear()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _start(self) -> None:
        from gatehouse.sandbox.aws import BotocoreRetriesOnClock, MotoOnClock, MotoSandboxServer
        from gatehouse.sandbox.cloudcraft_emulator import CloudcraftEmulator

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        import chalicelib.core.observability  # noqa: F401 - its log filters keep the API key out of botocore's DEBUG

        self.moto = MotoSandboxServer(MANAGEMENT_ACCOUNT_ID, self.clock)
        self.aws_endpoint = self.moto.start()
        self._stack.append(self.moto)
        requests.post(f"{self.aws_endpoint}/moto-api/reset", timeout=60).raise_for_status()
        moto_time = MotoOnClock(self.clock)
        moto_time.start()
        self._stack.append(moto_time)
        retry_time = BotocoreRetriesOnClock(self.clock)
        retry_time.start()
        self._stack.append(retry_time)

        cc_state = self.state.get("cloudcraft") or {}
        limit = cc_state.get("rate_limit") or {}
        self.propagation_seconds = float(cc_state.get("role_propagation_seconds", 0))
        self.cloudcraft = CloudcraftEmulator(
            self.api_key,
            clock=self.clock,
            external_id=cc_state.get("external_id"),
            rate_limit=(int(limit.get("requests", 20)), float(limit.get("per_seconds", 60.0))),
            rate_model=str(limit.get("model", "window")),
            role_verifier=self._verify_role,
        )
        self.cloudcraft_url = self.cloudcraft.start()
        self._stack.append(self.cloudcraft)
        self.proton = self._start_proton()

        self._set_env(
            AWS_ENDPOINT_URL=self.aws_endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy credentials
            AWS_SESSION_TOKEN="testing",  # noqa: S106
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            GATEHOUSE_SETTINGS_PARAMETER=SETTINGS_PARAMETER,
            GATEHOUSE_RULES_PARAMETER=RULES_PARAMETER,
            GATEHOUSE_API_KEY_SECRET=SECRET_NAME,
            GATEHOUSE_TOPIC_ARN=f"arn:aws:sns:{REGION}:{MANAGEMENT_ACCOUNT_ID}:{TOPIC_NAME}",
            GATEHOUSE_IDEMPOTENCY_TABLE=TABLE_NAME,
            GATEHOUSE_WORK_QUEUE_URL="",
            GATEHOUSE_PLAN_QUEUE_URL="",
            GATEHOUSE_PLAN_PAGE_SIZE=str(self.plan_page_size),
            POWERTOOLS_METRICS_DISABLED="true",
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_SERVICE_NAME="gatehouse",
        )
        if self.proton is not None:
            self._set_env(AWS_ENDPOINT_URL_PROTON=self.proton_url)
        self._seed()

        from chalicelib.container import Services, set_services
        from chalicelib.core.settings import StageConfig

        set_services(Services(StageConfig.from_environment(), clock=self.clock, rng=self.rng))
        self._route_logs()

    def _route_logs(self) -> None:
        """Handlers log JSON to stdout as in Lambda; here stdout carries results, so logs go to stderr."""
        from chalicelib.core.observability import logger

        handler = logger.registered_handler
        if isinstance(handler, logging.StreamHandler):
            self._stack.append(_RestoreStream(handler))
            handler.setStream(sys.stderr)
        logger.setLevel(os.environ.get("GATEHOUSE_SANDBOX_LOG_LEVEL", "CRITICAL"))

    def _start_proton(self) -> Any:
        try:
            from gatehouse.sandbox.proton_emulator import ProtonEmulator
        except ImportError:  # the approvals feature is optional in a partial checkout
            return None
        emulator = ProtonEmulator(region=REGION, clock=self.clock)
        self.proton_url = emulator.start()
        self._stack.append(emulator)
        return emulator

    def _set_env(self, **values: str) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(service, region_name=REGION)  # type: ignore[call-overload]

    # --- seeding -----------------------------------------------------------------------------------------
    def _seed(self) -> None:
        org_state = self.state.get("organization") or {}
        accounts = org_state.get("accounts", DEFAULT_ACCOUNTS)
        if not isinstance(accounts, list):
            raise SandboxError("organization.accounts must be a list of {id, name, ou, tags, access_role}")
        self.accounts = [self._normalise_account(raw, index) for index, raw in enumerate(accounts)]
        self._seed_organization(self.accounts)

        settings = dict(self.state.get("settings") or {})
        settings.setdefault("cloudcraft_base_url", self.cloudcraft_url)
        ssm = self.client("ssm")
        ssm.put_parameter(Name=SETTINGS_PARAMETER, Type="String", Value=json.dumps(settings))
        if "proton_rules" in self.state:
            ssm.put_parameter(Name=RULES_PARAMETER, Type="String", Value=json.dumps(self.state["proton_rules"]))
        self.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=self.api_key)
        self.client("sns").create_topic(Name=TOPIC_NAME)
        self.queue_url = self.client("sqs").create_queue(
            # In sandbox time, like everything in moto's SQS: longer than any batch takes, as in the deployment
            # (6 x the worker's timeout); Retry-After deferrals set their own.
            QueueName=QUEUE_NAME,
            Attributes={"VisibilityTimeout": str(int(QUEUE_VISIBILITY_TIMEOUT))},
        )["QueueUrl"]
        os.environ["GATEHOUSE_WORK_QUEUE_URL"] = self.queue_url
        self.plan_queue_url = self.client("sqs").create_queue(
            QueueName=PLAN_QUEUE_NAME, Attributes={"VisibilityTimeout": str(int(QUEUE_VISIBILITY_TIMEOUT))}
        )["QueueUrl"]
        os.environ["GATEHOUSE_PLAN_QUEUE_URL"] = self.plan_queue_url
        self.client("dynamodb").create_table(
            TableName=TABLE_NAME,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for registration in (self.state.get("cloudcraft") or {}).get("accounts", []):
            seeded = self.cloudcraft.seed_account(
                registration["name"],
                registration["roleArn"],
                read_access=registration.get("readAccess"),
                write_access=registration.get("writeAccess"),
            )
            if registration.get("owned"):  # as if Gatehouse had registered it earlier
                account_id = registration["roleArn"].split(":")[4]
                self.client("dynamodb").put_item(
                    TableName=TABLE_NAME,
                    Item={
                        "id": {"S": f"registration#{account_id}"},
                        "registration_id": {"S": seeded["id"]},
                        "aws_account_id": {"S": account_id},
                    },
                )
        for account in self.accounts:
            if account["role"] is not None:
                self._seed_role(account["id"], account["role"])
        faults = (self.state.get("cloudcraft") or {}).get("faults") or {}
        self.apply_faults(faults)
        try:
            self.cloudcraft.answers.apply((self.state.get("cloudcraft") or {}).get("answers") or {})
        except (ValueError, TypeError) as exc:
            raise SandboxError(f"cloudcraft.answers: {exc}") from None
        if self.proton is not None and self.state.get("proton"):
            connections = [
                {"managementAccountId": MANAGEMENT_ACCOUNT_ID, "status": "PENDING", **connection}
                for connection in self.state["proton"].get("connections", [])
            ]
            self.proton.seed(connections)

    def apply_faults(self, faults: dict[str, Any]) -> None:
        """Switch on emulator faults: rate_limit_next, rate_limit_retry_after, server_error_next, ..."""
        known = {"rate_limit_next", "rate_limit_retry_after", "server_error_next", "fail_after_commit_next"}
        unknown = set(faults) - known - {"unverifiable_next"}
        if unknown:
            raise SandboxError(f"unknown cloudcraft.faults {sorted(unknown)}; known: {sorted(known)}")
        if faults.get("rate_limit_next"):
            self.cloudcraft.faults.rate_limit_next(int(faults["rate_limit_next"]), faults.get("rate_limit_retry_after"))
        if faults.get("server_error_next"):
            self.cloudcraft.faults.server_error_next(int(faults["server_error_next"]))
        if faults.get("fail_after_commit_next"):
            self.cloudcraft.faults.fail_after_commit_next(int(faults["fail_after_commit_next"]))
        if faults.get("unverifiable_next"):
            self.cloudcraft.faults.unverifiable_next(int(faults["unverifiable_next"]))

    @staticmethod
    def _normalise_account(raw: Any, index: int) -> dict[str, Any]:
        if not isinstance(raw, dict) or not is_account_id(str(raw.get("id", ""))):
            raise SandboxError(f"organization.accounts[{index}] needs an 'id' of 12 digits")
        return {
            "id": str(raw["id"]),
            "name": str(raw.get("name") or f"account-{raw['id']}"),
            "ou": str(raw.get("ou") or "").strip("/"),
            "tags": {str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
            "access_role": raw.get("access_role", "OrganizationAccountAccessRole"),
            "status": str(raw.get("status") or "ACTIVE"),
            "refuse_assume_role": int(raw.get("refuse_assume_role", 0)),
            "refuse_assume_role_minutes": float(raw.get("refuse_assume_role_minutes", 0)),
            "role": raw.get("role"),
        }

    def _seed_organization(self, accounts: list[dict[str, Any]]) -> None:
        import moto.organizations.utils as org_utils
        from moto.iam.models import iam_backends
        from moto.organizations.models import organizations_backends

        org = self.client("organizations")
        org.create_organization(FeatureSet="ALL")
        root_id = org.list_roots()["Roots"][0]["Id"]
        self.ou_ids: dict[str, str] = {"": root_id}
        backend = organizations_backends[MANAGEMENT_ACCOUNT_ID]["aws"]
        original = org_utils.make_random_account_id
        try:
            for account in accounts:
                parent = self._ensure_ou(org, account["ou"])
                org_utils.make_random_account_id = _fixed(account["id"])
                created = org.create_account(
                    Email=f"{account['id']}@example.com",
                    AccountName=account["name"],
                    RoleName=account["access_role"] or "OrganizationAccountAccessRole",
                    Tags=[{"Key": k, "Value": v} for k, v in account["tags"].items()],
                )
                account_id = created["CreateAccountStatus"]["AccountId"]
                assert account_id == account["id"]
                if parent != root_id:
                    org.move_account(AccountId=account_id, SourceParentId=root_id, DestinationParentId=parent)
                _install_aws_managed_policies(account_id)
                if not account["access_role"]:
                    iam = iam_backends[account_id]["global"]
                    for role in list(iam.roles.values()):
                        iam.delete_role(role.name)
                if account["status"] != "ACTIVE":
                    backend.get_account_by_id(account_id).status = account["status"]
                if account["refuse_assume_role"]:
                    self.moto.gate.refuse(account_id, account["refuse_assume_role"])
                if account["refuse_assume_role_minutes"]:
                    self.moto.gate.refuse_for(account_id, account["refuse_assume_role_minutes"] * 60)
        finally:
            org_utils.make_random_account_id = original

    def _seed_role(self, account_id: str, role: dict[str, Any]) -> None:
        """A Cloudcraft role that already exists in an account, as described (drift included)."""
        from moto.iam.models import iam_backends

        trusted = role.get("trusted_account", self.cloudcraft.iam_parameters["accountId"])
        external_id = role.get("external_id", self.cloudcraft.iam_parameters["externalId"])
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{trusted}:root"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
                }
            ],
        }
        iam = iam_backends[account_id]["global"]
        name = role.get("name", "cloudcraft")
        created = iam.create_role(
            role_name=name,
            assume_role_policy_document=json.dumps(trust),
            path="/",
            # As Gatehouse leaves a role it manages; `"permissions_boundary": null` seeds one made before it did.
            permissions_boundary=role.get("permissions_boundary", "arn:aws:iam::aws:policy/ReadOnlyAccess"),
            description="",
            tags=[{"Key": k, "Value": v} for k, v in role.get("tags", {"gatehouse:managed": "true"}).items()],
            max_session_duration=str(role.get("max_session", 3600)),
        )
        # It existed before the sandbox started: long propagated.
        created.create_date = (self.clock.start - SEEDED_ROLE_AGE).replace(tzinfo=None)
        for arn in role.get("managed_policies", ["arn:aws:iam::aws:policy/ReadOnlyAccess"]):
            iam.attach_role_policy(arn, name)
        for policy_name, document in (role.get("inline_policies") or {}).items():
            iam.put_role_policy(name, policy_name, json.dumps(document))

    def _ensure_ou(self, org: Any, path: str) -> str:
        if path in self.ou_ids:
            return self.ou_ids[path]
        parent_path, _, name = path.rpartition("/")
        parent = self._ensure_ou(org, parent_path)
        unit = org.create_organizational_unit(ParentId=parent, Name=name)["OrganizationalUnit"]
        self.ou_ids[path] = unit["Id"]
        return str(unit["Id"])

    def _verify_role(self, role_arn: str, external_id: str) -> bool:
        """Cloudcraft's check: the role exists, trusts its account with the external ID, and has propagated."""
        from moto.iam.models import iam_backends

        parsed = parse_role_arn(role_arn)
        if parsed is None:
            return False
        account_id, role_name = parsed.account_id, parsed.name
        roles = {role.name: role for role in iam_backends[account_id]["global"].roles.values()}
        role = roles.get(role_name)
        if role is None:
            return False
        trust = json.loads(role.assume_role_policy_document)
        wanted = f"arn:aws:iam::{self.cloudcraft.iam_parameters['accountId']}:root"
        statements = trust.get("Statement") or []
        trusted = any(
            (s.get("Principal") or {}).get("AWS") == wanted
            and ((s.get("Condition") or {}).get("StringEquals") or {}).get("sts:ExternalId") == external_id
            for s in statements
            if isinstance(s, dict)
        )
        if not trusted:
            return False
        created = role.create_date  # sandbox time: moto's IAM runs on the sandbox clock (naive UTC)
        age = self.clock.now() - (created.replace(tzinfo=UTC) if created.tzinfo is None else created)
        return age.total_seconds() >= self.propagation_seconds

    # --- delivery ----------------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, dict[str, Any]]]:
        """(handler name, pattern) for every EventBridge rule the Chalice app declares."""
        import app as chalice_app

        return [
            (source.handler_string.rpartition(".")[2], source.event_pattern)
            for source in chalice_app.app.event_sources
            if hasattr(source, "event_pattern")
        ]

    def deliver(self, event: Any, source: str = "event") -> Delivery:
        """Route one event as EventBridge would; retry a failed invocation like its retry policy would."""
        from moto.events.models import EventPattern

        import app as chalice_app

        matching = [
            name
            for name, pattern in self.routes()
            if isinstance(event, dict) and EventPattern.load(json.dumps(pattern)).matches_event(event)  # type: ignore[arg-type]
        ]
        delivery = Delivery(source, matching[0] if matching else None)
        self.deliveries.append(delivery)
        if not matching:
            delivery.error = "no Gatehouse rule matches this event (check source, detail-type and detail.eventName)"
            self.errors.append({"source": source, "message": delivery.error})
            return delivery
        handler = getattr(chalice_app, matching[0])
        for attempt in range(1, self.eventbridge_retries + 2):
            delivery.attempts = attempt
            try:
                with _stdout_to_stderr(), self._invocation() as others:
                    delivery.result = handler(event, FakeLambdaContext())
                delivery.error = None
            except Exception as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
                if attempt <= self.eventbridge_retries:
                    self._wait_for(others)
                    self.clock.sleep(60 * attempt)  # Lambda retries a failed async invocation after ~1, then ~2 min
                continue
            break
        if delivery.error:
            self.errors.append({"source": source, "message": delivery.error})
        elif isinstance(delivery.result, dict) and (
            delivery.result.get("outcome") in ("failed", "rejected", "creation-failed")
            or delivery.result.get("result") == "rejected"
        ):
            outcome = delivery.result.get("outcome") or delivery.result.get("result")
            reason = delivery.result.get("reason") or delivery.result.get("detail")
            self.errors.append({"source": source, "message": f"{outcome}: {reason}"})
        return delivery

    @contextmanager
    def _invocation(self) -> Iterator[set[int]]:
        """Marks a handler invocation as under way; yields the others under way when it ends (filled in then)."""
        others: set[int] = set()
        with self._invocations:
            me = self._next_invocation
            self._next_invocation += 1
            self._running.add(me)
        try:
            yield others
        finally:
            with self._invocations:
                self._running.discard(me)
                others.update(self._running)
                self._invocations.notify_all()

    def _wait_for(self, invocations: set[int]) -> None:
        """A retry comes a minute or more after the failure, when the invocations under way then (concurrent
        deliveries) have long finished: wait for them in real time, so the retry sees what they did."""
        with self._invocations:
            self._invocations.wait_for(lambda: not invocations & self._running, timeout=LAMBDA_RETRY_WAIT)

    def new_container(self) -> None:
        """Start the next invocation cold, as in a new Lambda container: no cached settings, secret, clients or
        credentials. (Otherwise every handler shares one warm container, which Lambda never does across
        functions.)"""
        from aws_lambda_powertools.utilities import parameters

        from chalicelib.container import Services, set_services
        from chalicelib.core.settings import StageConfig

        parameters.clear_caches()  # type: ignore[no-untyped-call]
        set_services(Services(StageConfig.from_environment(), clock=self.clock, rng=self.rng))
        self._worker_container = None
        self._planner_container = None

    def invoke(self, handler_name: str, event: dict[str, Any]) -> Any:
        """Call one of the app's handlers directly, as a schedule or an event source mapping would."""
        import app as chalice_app

        with _stdout_to_stderr():
            return getattr(chalice_app, handler_name)(event, FakeLambdaContext())

    def run_schedule(self, handler_name: str = "reconcile", *, plan_pages: bool = True) -> Any:
        """Run a scheduled handler (reconcile, proton_sweep) as its EventBridge schedule would; for reconcile,
        then its pages (see plan_pages) unless `plan_pages` is False."""
        import app as chalice_app
        from gatehouse.sandbox.samples import scheduled_event

        scheduled = {s.name for s in chalice_app.app.event_sources if hasattr(s, "schedule_expression")}
        if handler_name not in scheduled:
            raise SandboxError(f"no schedule named {handler_name!r}; the app has {sorted(scheduled)}")
        delivery = Delivery(f"schedule:{handler_name}", handler_name, attempts=1)
        self.deliveries.append(delivery)
        try:
            delivery.result = self.invoke(handler_name, scheduled_event())
            if handler_name == "reconcile" and plan_pages:
                delivery.result = self.plan_pages(delivery.result)
        except Exception as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
            self.errors.append({"source": delivery.source, "message": delivery.error})
        return delivery.result

    def plan_pages(self, started: dict[str, Any]) -> dict[str, Any]:
        """The reconciliation's pages, planned by reconcile_page in a container of its own (SQS event source
        mapping, batch size 1). Returns the run's result as the invocation that completed it returned it
        (outcome, summary, queued), with the run ID and page count; the coordinator's own when the run did not
        complete (it failed to start, or a page failed)."""
        from chalicelib.container import Services, get_services, set_services
        from chalicelib.core.settings import StageConfig

        completed = None
        if self._planner_container is None:
            self._planner_container = Services(StageConfig.from_environment(), clock=self.clock, rng=self.rng)
        events_container = get_services()
        set_services(self._planner_container)
        try:
            for response in self._consume(self.plan_queue_url, "reconcile_page", batch_size=1):
                for page in response.get("pages", []):
                    completed = page.get("completed") or completed
        finally:
            set_services(events_container)
        if not completed:
            return started
        return {**completed, "run_id": started.get("run_id"), "pages": started.get("pages")}

    def drain_queue(self, *, batch_size: int = 5, max_batches: int = 100) -> list[dict[str, Any]]:
        """Feed the work queue to the fleet worker like Lambda's SQS event source mapping: receive a batch,
        invoke, delete the messages the worker did not report as failed. Returns the worker's responses."""
        from chalicelib.container import Services, get_services, set_services
        from chalicelib.core.settings import StageConfig

        # The worker runs in a container of its own, as a Lambda function does: what it sets up for itself
        # (handing rate limits back to the queue instead of waiting) must not reach the event handlers.
        if self._worker_container is None:
            self._worker_container = Services(StageConfig.from_environment(), clock=self.clock, rng=self.rng)
        events_container = get_services()
        set_services(self._worker_container)
        try:
            return self._drain(batch_size, max_batches)
        finally:
            set_services(events_container)

    def _drain(self, batch_size: int, max_batches: int) -> list[dict[str, Any]]:
        return list(self._consume(self.queue_url, "fleet_worker", batch_size=batch_size, max_batches=max_batches))

    def _consume(
        self, queue_url: str, handler_name: str, *, batch_size: int, max_batches: int = 100_000
    ) -> Iterator[dict[str, Any]]:
        """What Lambda's SQS event source mapping does: receive a batch, invoke the function, delete the messages it
        did not report as failed. A batch whose invocation raised comes back whole after its visibility timeout."""
        sqs = self.client("sqs")
        for _ in range(max_batches):
            received = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=batch_size, AttributeNames=["All"]
            ).get("Messages", [])
            if not received:
                return
            event = {"Records": [_sqs_record(message, queue_url) for message in received]}
            try:
                response = self.invoke(handler_name, event)
            except Exception as exc:
                self.errors.append({"source": handler_name, "message": f"{type(exc).__name__}: {exc}"})
                response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in received]}
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            for message in received:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            yield response

    def run_worker(self, *, for_seconds: float, step: float = 60.0, batch_size: int = 5) -> list[dict[str, Any]]:
        """The fleet worker over a stretch of sandbox time: drain the queue, and while messages wait (delayed, or
        back after a failure's visibility timeout), move the clock on by `step` and drain again, until the queue is
        empty or `for_seconds` of sandbox time have passed. Returns the worker's responses."""
        deadline = self.clock.monotonic() + for_seconds
        responses = self.drain_queue(batch_size=batch_size)
        while self.queue_depth() and self.clock.monotonic() + step <= deadline:
            self.clock.advance(step)
            responses += self.drain_queue(batch_size=batch_size)
        return responses

    def queue_depth(self) -> int:
        """Messages in the work queue: visible, in flight, and delayed."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        attributes = self.client("sqs").get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        return sum(int(attributes["Attributes"].get(name, 0)) for name in names)

    # --- inspection --------------------------------------------------------------------------------------
    def notifications(self) -> list[dict[str, Any]]:
        from moto.sns.models import sns_backends

        topic = sns_backends[MANAGEMENT_ACCOUNT_ID][REGION].topics.get(os.environ["GATEHOUSE_TOPIC_ARN"])
        result = []
        for _id, message, subject, attributes, _group in topic.sent_notifications if topic else []:
            try:
                structure = json.loads(message)
                text, body = structure.get("default", message), json.loads(structure.get("sqs", "{}"))
            except ValueError:
                text, body = message, {}
            result.append(
                {
                    "subject": subject,
                    "attributes": {k: v.get("Value", v.get("StringValue")) for k, v in (attributes or {}).items()},
                    "message": text,
                    "body": body,
                }
            )
        return result

    def roles(self) -> list[dict[str, Any]]:
        """The Cloudcraft roles in member accounts (the role name from settings, or any Gatehouse-tagged role)."""
        from moto.iam.models import iam_backends

        role_name = (self.state.get("settings") or {}).get("cloudcraft_role_name", "cloudcraft")
        found = []
        for account in self.accounts:
            for role in iam_backends[account["id"]]["global"].roles.values():
                tags = {tag["Key"]: tag["Value"] for tag in role.tags}
                if role.name != role_name and tags.get("gatehouse:managed") != "true":
                    continue
                trust = json.loads(role.assume_role_policy_document)
                statement = (trust.get("Statement") or [{}])[0]
                found.append(
                    {
                        "account_id": account["id"],
                        "role_name": role.name,
                        "trusted_principal": (statement.get("Principal") or {}).get("AWS"),
                        "external_id": ((statement.get("Condition") or {}).get("StringEquals") or {}).get(
                            "sts:ExternalId"
                        ),
                        "managed_policies": sorted(role.managed_policies),
                        "inline_policies": sorted(role.policies),
                        "max_session_seconds": int(role.max_session_duration or 3600),
                        "permissions_boundary": role.permissions_boundary_arn,
                        "tags": tags,
                    }
                )
        return found

    def snapshot(self) -> dict[str, Any]:
        accounts = [
            {
                "id": account["id"],
                "name": account["name"],
                "roleArn": account["roleArn"],
                "readAccess": account.get("readAccess"),
                "writeAccess": account.get("writeAccess"),
                "externalId": account.get("externalId"),
            }
            for account in self.cloudcraft.accounts()
        ]
        snapshot: dict[str, Any] = {
            "cloudcraft": {"accounts": accounts, "requests": self.cloudcraft.requests_log()},
            "roles": self.roles(),
            "notifications": self.notifications(),
            "deliveries": [
                {"source": d.source, "handler": d.handler, "attempts": d.attempts, "result": d.result, "error": d.error}
                for d in self.deliveries
            ],
            "errors": self.errors,
            # Sandbox time: where the clock started, and how far waits (never real time) have moved it since.
            "clock": {"start": self.clock.start.isoformat(), "elapsed_seconds": self.clock.monotonic()},
        }
        if self.proton is not None:
            snapshot["proton"] = {
                "connections": [{"id": c["id"], "status": c["status"]} for c in self.proton.connections()]
            }
            snapshot["decisions"] = self.decisions()
        return snapshot

    def decisions(self) -> list[dict[str, Any]]:
        """Every connection decision the approval handlers reported, in order."""
        outcomes: list[dict[str, Any]] = []
        for delivery in self.deliveries:
            result = delivery.result if isinstance(delivery.result, dict) else {}
            outcomes += [result] if "connection_id" in result else result.get("outcomes", [])
        return [
            {
                "id": outcome["connection_id"],
                "decision": (outcome.get("decision") or {}).get("action"),
                "rule": (outcome.get("decision") or {}).get("rule"),
                "mode": (outcome.get("decision") or {}).get("mode"),
                "result": outcome.get("result"),
                "reason": (outcome.get("decision") or {}).get("reason") or outcome.get("detail"),
            }
            for outcome in outcomes
        ]


QUEUE_VISIBILITY_TIMEOUT = 300.0  # seconds of sandbox time
SEEDED_ROLE_AGE = timedelta(days=1)  # how long before the sandbox's start a seeded role was created


def _sandbox_options(raw: Any) -> dict[str, Any]:
    """The STATE document's `sandbox` part: eventbridge_retries, start (ISO 8601) and seed, checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SandboxError("sandbox must be an object: {eventbridge_retries, start, seed}")
    if "time_scale" in raw:
        raise SandboxError(
            "sandbox.time_scale is gone: sandbox time is virtual (waits pass at once, real time never counts); "
            "remove it, or pin the clock with sandbox.start"
        )
    unknown = set(raw) - set(SANDBOX_OPTIONS)
    if unknown:
        raise SandboxError(f"unknown sandbox options {sorted(unknown)}; known: {list(SANDBOX_OPTIONS)}")
    retries = raw.get("eventbridge_retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 185:
        raise SandboxError("sandbox.eventbridge_retries must be a whole number from 0 to 185 (EventBridge's maximum)")
    start = raw.get("start")
    if start is not None:
        try:
            start = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        except ValueError:
            start = None
        if start is None or start.tzinfo is None:
            raise SandboxError(
                f"sandbox.start must be an ISO 8601 time with a zone, like 2026-11-23T09:00:00Z (got {raw['start']!r})"
            )
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SandboxError(f"sandbox.seed must be a whole number (got {seed!r})")
    page_size = raw.get("plan_page_size", 100)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 1000:
        raise SandboxError("sandbox.plan_page_size must be a whole number from 1 to 1000 (accounts per page)")
    return {"eventbridge_retries": retries, "start": start, "seed": seed, "plan_page_size": page_size}


def _sqs_record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    """One SQS message in the shape Lambda hands to a function."""
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{account}:{name}",
        "awsRegion": REGION,
    }


def _fixed(value: str) -> Any:
    """A stand-in for moto's random account-ID generator, so seeded accounts get the IDs asked for."""

    def make() -> str:
        return value

    return make


# moto can load all ~1,300 AWS managed policies into every account, which costs seconds per account;
# the sandbox installs only those Gatehouse and its tests attach.
SANDBOX_MANAGED_POLICIES = ("ReadOnlyAccess", "AdministratorAccess")


def _install_aws_managed_policies(account_id: str) -> None:
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, iam_backends

    global _MANAGED_POLICY_DATA  # noqa: PLW0603 - parsed once per process: the data is large
    if _MANAGED_POLICY_DATA is None:
        data = json.loads(aws_managed_policies_data)
        _MANAGED_POLICY_DATA = {name: data[name] for name in SANDBOX_MANAGED_POLICIES}
    iam = iam_backends[account_id]["global"]
    for name, document in _MANAGED_POLICY_DATA.items():
        policy = AWSManagedPolicy.from_data(name, account_id, "us-east-1", document)
        iam.managed_policies.setdefault(policy.arn, policy)


_MANAGED_POLICY_DATA: dict[str, Any] | None = None


class _RestoreStream:
    def __init__(self, handler: Any) -> None:
        self._handler, self._stream = handler, handler.stream

    def stop(self) -> None:
        self._handler.setStream(self._stream)


_redirect_lock = threading.Lock()
_redirect_depth = 0
_saved_stdout: Any = None


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Handlers log to stdout as in Lambda; in the sandbox stdout carries the JSON result, so move logs aside.
    Counted, so concurrent deliveries (threads) restore the real stdout only when the last one ends."""
    global _redirect_depth, _saved_stdout  # noqa: PLW0603 - sys.stdout itself is process-global
    with _redirect_lock:
        if _redirect_depth == 0:
            _saved_stdout, sys.stdout = sys.stdout, sys.stderr
        _redirect_depth += 1
    try:
        yield
    finally:
        with _redirect_lock:
            _redirect_depth -= 1
            if _redirect_depth == 0:
                sys.stdout = _saved_stdout
