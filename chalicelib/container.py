"""Composition root: builds every adapter lazily, once per container, from the stage configuration."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3

from chalicelib.adapters.aws import CLIENT_CONFIG, ORGANIZATIONS_CONFIG, aws_call
from chalicelib.adapters.budget import DynamoBudget
from chalicelib.adapters.cloudcraft.client import MAX_RETRY_AFTER, CloudcraftClient, api_key_problem
from chalicelib.adapters.cloudcraft.limiter import RateLimiter
from chalicelib.adapters.idempotency import DynamoOnceGuard
from chalicelib.adapters.lease import AccountLeases, DynamoLease
from chalicelib.adapters.ledger import DynamoLedger
from chalicelib.adapters.member import MemberAccess, MemberSession
from chalicelib.adapters.organization import OrganizationDirectory
from chalicelib.adapters.runs import DynamoRuns
from chalicelib.adapters.sns import SnsNotifier
from chalicelib.adapters.workqueue import WorkQueue
from chalicelib.core.clock import Clock, SystemClock
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.ids import partition_for_region
from chalicelib.core.settings import Settings, StageConfig, parse_settings_text
from chalicelib.fleet.service import Fleet
from chalicelib.onboarding.arrival import Onboarding
from chalicelib.onboarding.departure import Offboarding
from chalicelib.planning.executor import Executor
from chalicelib.planning.plan import CloudcraftIdentity

if TYPE_CHECKING:  # approvals are imported only by the functions that decide connections
    from chalicelib.approvals.service import ApprovalService

SETTINGS_MAX_AGE = 60  # seconds a warm container trusts its copy of the settings
SECRET_MAX_AGE = 300
IDENTITY_MAX_AGE = 900  # iamParameters: long enough to save calls, short enough to see a key rotation


# What a Cloudcraft client was built from: base URL, requests per minute, key digest, hand-back-429s.
ClientKey = tuple[str, int, str, bool]


class Services:
    """Everything a handler needs, built on first use. The sandbox and tests build their own instance."""

    def __init__(
        self,
        config: StageConfig,
        *,
        clock: Clock | None = None,
        session: boto3.session.Session | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`rng` draws every backoff's jitter: the sandbox seeds it, so its runs wait the same times."""
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()  # noqa: S311 - spreading retries, not cryptography
        self._session = session
        self._lock = threading.Lock()
        # The SQS worker's container sets this: a 429 then raises at once, and the worker defers the message.
        self.hand_back_rate_limits = False
        # The worker's recent read of Cloudcraft's list, shared by its batches for two minutes: (monotonic, list).
        self.recent_registrations: tuple[float, list[Any]] | None = None
        self._cloudcraft: tuple[ClientKey, CloudcraftClient] | None = None
        self._identity: tuple[float, tuple[ClientKey, str], CloudcraftIdentity] | None = None

    # --- AWS clients -------------------------------------------------------------------------------------
    @cached_property
    def session(self) -> boto3.session.Session:
        return self._session or boto3.session.Session()

    def client(self, service: str) -> Any:
        return self.session.client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]

    @cached_property
    def directory(self) -> OrganizationDirectory:
        return OrganizationDirectory(self.session.client("organizations", config=ORGANIZATIONS_CONFIG))

    @cached_property
    def member_access(self) -> MemberAccess:
        return MemberAccess(self.client("sts"), self.clock, session=self.session, jitter=self.rng.uniform)

    @cached_property
    def notifier(self) -> SnsNotifier:
        return SnsNotifier(self.client("sns"), self.config.topic_arn)

    @cached_property
    def once(self) -> DynamoOnceGuard:
        return DynamoOnceGuard(self.config.idempotency_table, self.client("dynamodb"))

    @cached_property
    def ledger(self) -> DynamoLedger:
        return DynamoLedger(self.client("dynamodb"), self.config.idempotency_table)

    @cached_property
    def leases(self) -> AccountLeases:
        """One writer per account, across functions and the operator's CLI (records in the same table)."""
        return AccountLeases(DynamoLease(self.client("dynamodb"), self.config.idempotency_table), self.clock)

    @cached_property
    def partition(self) -> str:
        """The deployment's partition (`aws`, `aws-cn`, ...): ARNs from elsewhere name nothing of ours."""
        return partition_for_region(self.session.region_name)

    @cached_property
    def this_account_id(self) -> str:
        with aws_call("sts:GetCallerIdentity"):
            return str(self.client("sts").get_caller_identity()["Account"])

    @cached_property
    def _ssm(self) -> Any:
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        return SSMProvider(boto3_client=self.client("ssm"))

    @cached_property
    def _secrets(self) -> Any:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        return SecretsProvider(boto3_client=self.client("secretsmanager"))

    # --- configuration -----------------------------------------------------------------------------------
    def settings(self) -> Settings:
        """The validated settings document; ConfigurationError names the parameter, the field and the fix."""
        name = self.config.settings_parameter
        text = self._read_parameter(name, what="settings")
        return parse_settings_text(
            text, source=f"settings parameter {name}", allowed_hosts=self.config.cloudcraft_allowed_hosts
        )

    def _read_parameter(self, name: str, *, what: str) -> str | None:
        """The parameter's text, parsed by the caller within its limits (never by Powertools' unbounded json)."""
        from aws_lambda_powertools.utilities.parameters import GetParameterError

        try:
            value = self._ssm.get(name, max_age=SETTINGS_MAX_AGE)
            return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))
        except GetParameterError as exc:
            raise ConfigurationError(
                f"{what} parameter {name} could not be read ({_short(exc)}): create it, or check the function's "
                "ssm:GetParameter permission"
            ) from None

    def api_key(self) -> str:
        """The Cloudcraft API key: the secret's string, or its `api_key` field when the secret is JSON."""
        from aws_lambda_powertools.utilities.parameters import GetParameterError

        name = self.config.api_key_secret
        try:
            value = self._secrets.get(name, max_age=SECRET_MAX_AGE)
        except GetParameterError as exc:
            raise ConfigurationError(
                f"Cloudcraft API key secret {name} could not be read ({_short(exc)}): store it with "
                f"aws secretsmanager put-secret-value --secret-id {name} --secret-string <key>"
            ) from None
        text = value.decode() if isinstance(value, bytes) else str(value or "")
        if text.lstrip().startswith("{"):
            from chalicelib.core.safejson import JsonLimitError, loads_bounded

            try:  # Secrets Manager holds at most 64 KiB; the key's object is flat
                document = loads_bounded(text, max_bytes=65_536, max_depth=4, what="the API key secret")
                text = str(document.get("api_key") or "") if isinstance(document, dict) else ""
            except JsonLimitError:
                text = ""
        if not text.strip():
            raise ConfigurationError(f"Cloudcraft API key secret {name} is empty or has no 'api_key' field")
        key = text.strip()
        problem = api_key_problem(key)
        if problem:
            # Never echo the value: even a malformed key is (part of) a secret.
            raise ConfigurationError(
                f"Cloudcraft API key secret {name} does not hold a usable key ({problem}): store the key alone "
                f"with aws secretsmanager put-secret-value --secret-id {name} --secret-string <key>"
            )
        return key

    # --- Cloudcraft --------------------------------------------------------------------------------------
    def cloudcraft(self, settings: Settings) -> CloudcraftClient:
        """One client per container (its rate limiter must see every call), rebuilt if its inputs change."""
        key = self.api_key()
        fingerprint = (
            settings.cloudcraft_base_url,
            settings.cloudcraft_requests_per_minute,
            _digest(key),
            self.hand_back_rate_limits,
        )
        with self._lock:
            if self._cloudcraft is None or self._cloudcraft[0] != fingerprint:
                # One budget for every function of the stage (they share the key), and the CLI run against it.
                shared = DynamoBudget(self.client("dynamodb"), self.config.idempotency_table)
                limiter = RateLimiter(settings.cloudcraft_requests_per_minute, 60.0, clock=self.clock, shared=shared)
                client = CloudcraftClient(
                    key,
                    settings.cloudcraft_base_url,
                    rate_limiter=limiter,
                    clock=self.clock,
                    max_rate_limit_wait=0.0 if self.hand_back_rate_limits else MAX_RETRY_AFTER,
                    jitter=self.rng.uniform,
                )
                self._cloudcraft = (fingerprint, client)
            return self._cloudcraft[1]

    def cloudcraft_identity(self, settings: Settings) -> CloudcraftIdentity:
        """Cloudcraft's account and external ID (and policy in custom/minimal mode), cached for a while."""
        client = self.cloudcraft(settings)
        with self._lock:
            cached = self._identity
        # Keyed on the client too: another API key (another user) has another external ID.
        assert self._cloudcraft is not None
        key = (self._cloudcraft[0], settings.permission_mode)
        if cached and cached[1] == key and self.clock.monotonic() - cached[0] < IDENTITY_MAX_AGE:
            return cached[2]
        parameters = client.iam_parameters()
        policy = None
        if settings.permission_mode in ("custom", "minimal"):
            policy = client.policy("custom" if settings.permission_mode == "custom" else "minimal")
        identity = CloudcraftIdentity(
            parameters.account_id, parameters.external_id, policy, recorded_account_id=self.ledger.principal()
        )
        with self._lock:
            self._identity = (self.clock.monotonic(), key, identity)
        return identity

    def member_session(self, settings: Settings, *, attempts: int | None = None) -> Callable[[str], MemberSession]:
        def session(account_id: str) -> MemberSession:
            return self.member_access.session(
                account_id,
                settings.access_role_names,
                attempts or settings.assume_role_attempts,
                managed_role_name=settings.cloudcraft_role_name,
            )

        return session

    def onboarding(self, settings: Settings) -> Onboarding:
        return Onboarding(
            settings=settings,
            directory=self.directory,
            member_session=self.member_session(settings),
            cloudcraft=self.cloudcraft(settings),
            identity=lambda: self.cloudcraft_identity(settings),
            ledger=self.ledger,
            clock=self.clock,
            jitter=self.rng.uniform,
            leases=self.leases,
        )

    def executor(self, settings: Settings) -> Executor:
        return Executor(
            self.cloudcraft(settings),
            self.ledger,
            settings,
            self.clock,
            self.rng.uniform,
            hand_back_waits=self.hand_back_rate_limits,
        )

    def offboarding(self, settings: Settings) -> Offboarding:
        return Offboarding(
            settings=settings,
            directory=self.directory,
            member_session=self.member_session(settings),
            cloudcraft=self.cloudcraft(settings),
            ledger=self.ledger,
            executor=self.executor(settings),
            leases=self.leases,
        )

    def fleet(self, settings: Settings) -> Fleet:
        """Plans read every account once: one AssumeRole attempt each, no backoff (an error is reported)."""
        return Fleet(
            settings=settings,
            directory=self.directory,
            member_session=self.member_session(settings, attempts=1),
            cloudcraft=self.cloudcraft(settings),
            identity=lambda: self.cloudcraft_identity(settings),
            ledger=self.ledger,
            executor=self.executor(settings),
            leases=self.leases,
        )

    @cached_property
    def approvals(self) -> ApprovalService:
        """Proton connection approvals. Rules are read once per run (a sweep judges every connection alike)."""
        from chalicelib.adapters.proton import ProtonGateway
        from chalicelib.approvals.rules.compile import load_rules_from_ssm
        from chalicelib.approvals.service import ApprovalService
        from chalicelib.core.observability import logger

        if not self.config.rules_parameter:
            raise ConfigurationError("GATEHOUSE_RULES_PARAMETER is not set: set it in .chalice/config.json")
        ssm = self.client("ssm")
        return ApprovalService(
            ProtonGateway(self.client("proton")),
            lambda: load_rules_from_ssm(ssm, self.config.rules_parameter),
            self.directory.describe,
            self.this_account_id,
            self.notifier,
            self.once,
            logger,
            partition=self.partition,
        )

    @cached_property
    def runs(self) -> DynamoRuns:
        """The reconciliation's runs, pages and tallies (records in the idempotency table)."""
        return DynamoRuns(self.client("dynamodb"), self.config.idempotency_table)

    @cached_property
    def plan_queue(self) -> WorkQueue:
        if not self.config.plan_queue_url:
            raise ConfigurationError("GATEHOUSE_PLAN_QUEUE_URL is not set: the plan queue is part of the deployment")
        return WorkQueue(self.client("sqs"), self.config.plan_queue_url)

    @cached_property
    def work_queue(self) -> WorkQueue:
        if not self.config.work_queue_url:
            raise ConfigurationError("GATEHOUSE_WORK_QUEUE_URL is not set: the work queue is part of the deployment")
        return WorkQueue(self.client("sqs"), self.config.work_queue_url)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


_services: Services | None = None
_services_lock = threading.Lock()


def get_services() -> Services:
    """The container's Services, built from the environment on first use (never at import)."""
    global _services  # noqa: PLW0603 - one composition root per Lambda container
    with _services_lock:
        if _services is None:
            _services = Services(StageConfig.from_environment())
        return _services


def set_services(services: Services | None) -> None:
    """Install a prepared instance (sandbox, tests) or drop the current one."""
    global _services  # noqa: PLW0603
    with _services_lock:
        _services = services
