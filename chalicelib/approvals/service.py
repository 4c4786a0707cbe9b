"""One idempotent decision path for connection requests, whether an event or the scheduled sweep brought them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chalicelib.adapters.idempotency import OnceGuard
from chalicelib.approvals.engine import ConnectionRequest, Decision, decide
from chalicelib.approvals.errors import (
    ConnectionConflict,
    ConnectionNotFound,
    ConnectionStateChanged,
    DirectoryUnavailable,
)
from chalicelib.approvals.notifications import build_notification
from chalicelib.approvals.rules.compile import RuleSet
from chalicelib.approvals.rules.schema import RuleSetProblem
from chalicelib.core.errors import GatehouseError
from chalicelib.core.models import MemberAccount
from chalicelib.core.notifications import Notifier

# The guard contract is the project's (chalicelib.adapters.idempotency), re-exported for this feature.
__all__ = [
    "ApprovalService",
    "Connection",
    "ConnectionGateway",
    "OnceGuard",
    "Outcome",
    "SweepReport",
]

Result = Literal[
    "accepted",  # Gatehouse accepted it (now, or an earlier run did: see Outcome.acted)
    "rejected",
    "held",  # left pending for a person
    "shadow",  # shadow mode: would have accepted or rejected, changed nothing
    "conflict",  # the service refused the change (a connection in use cannot be rejected): reported, not retried
    "state-changed",  # someone decided between our Get and our call
    "not-pending",  # no longer PENDING when fetched: left alone
    "not-found",  # deleted, or never existed
    "in-progress",  # another run is deciding this very connection right now
]


@dataclass(frozen=True)
class Connection:
    """A connection request as the gateway sees it now."""

    request: ConnectionRequest
    status: str

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def pending(self) -> bool:
        return self.status == "PENDING"


class ConnectionGateway(Protocol):
    """The service that holds connection requests (Proton is one); see chalicelib.adapters.proton."""

    kind: str

    def get(self, connection_id: str) -> Connection: ...

    def list_pending(self) -> list[str]: ...

    def accept(self, connection_id: str) -> Connection: ...

    def reject(self, connection_id: str) -> Connection: ...


class Log(Protocol):
    """What the service needs of a logger: logging.Logger and the Powertools Logger both fit."""

    def info(self, msg: object, *args: object, extra: Mapping[str, object] | None = None) -> None: ...

    def warning(self, msg: object, *args: object, extra: Mapping[str, object] | None = None) -> None: ...

    def error(self, msg: object, *args: object, extra: Mapping[str, object] | None = None) -> None: ...


@dataclass(frozen=True)
class Outcome:
    connection_id: str
    trigger: str
    result: Result
    decision: Decision | None = None
    acted: bool = False  # this run made the accept or reject call (False when an earlier run already had)
    notified: bool = False  # this run published the notification (False when already sent, or it failed)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "connection_id": self.connection_id,
            "trigger": self.trigger,
            "result": self.result,
            "acted": self.acted,
            "notified": self.notified,
            "detail": self.detail,
            "decision": self.decision.to_dict() if self.decision is not None else None,
        }


@dataclass
class SweepReport:
    listed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # connection ID -> what went wrong (retried next sweep)

    def count(self, result: Result) -> int:
        return sum(1 for outcome in self.outcomes if outcome.result == result)


def _in_progress_errors() -> type[BaseException]:
    # What a guard raises while a duplicate is still running (Powertools on DynamoDB; fakes raise the same).
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    return IdempotencyAlreadyInProgressError


class ApprovalService:
    """Fetch the full connection, decide, act at most once, explain. Nothing here knows Proton's API."""

    def __init__(  # noqa: PLR0917 - one port each; the composition root passes them in this order
        self,
        gateway: ConnectionGateway,
        load_rules: Callable[[], RuleSet | RuleSetProblem],
        directory: Callable[[str], MemberAccount | None],
        this_account_id: str,
        notifier: Notifier,
        once: OnceGuard,
        logger: Log,
        *,
        partition: str = "aws",
    ) -> None:
        self._gateway = gateway
        self._load_rules = load_rules
        self._directory = directory
        self._this_account_id = this_account_id
        self._notifier = notifier
        self._once = once
        self._log = logger
        self._partition = partition  # the deployment's: a role ARN in another partition is no role of a member
        self._kind = getattr(gateway, "kind", "connection")

    # --- entry points ------------------------------------------------------------------------------------
    def process(self, connection_id: str, trigger: str) -> Outcome:
        """Decide one connection (from an event). Raises on failures worth a retry: the gateway or directory down."""
        return self._process(connection_id, trigger, self._rules(), self._lookup_for_run())

    def sweep(self) -> SweepReport:
        """Decide every pending connection; one connection's failure does not stop the others."""
        rules = self._rules()  # once per run: every connection of a sweep is judged by the same rules
        lookup = self._lookup_for_run()
        report = SweepReport()
        ids = self._gateway.list_pending()
        report.listed = len(ids)
        for connection_id in ids:
            try:
                report.outcomes.append(self._process(connection_id, "sweep", rules, lookup))
            except GatehouseError as exc:
                report.errors[connection_id] = str(exc)
                self._log.error(f"{self._kind} {connection_id}: {exc}", extra={"connection_id": connection_id})
        self._log.info(
            f"{self._kind} sweep: {report.listed} pending, "
            + ", ".join(f"{r} {report.count(r)}" for r in ("accepted", "rejected", "held", "shadow", "conflict"))
            + f", {len(report.errors)} errors",
            extra={"sweep": {"listed": report.listed, "errors": report.errors}},
        )
        return report

    # --- one connection ----------------------------------------------------------------------------------
    def _process(
        self,
        connection_id: str,
        trigger: str,
        rules: RuleSet | RuleSetProblem,
        lookup: Callable[[str], MemberAccount | None],
    ) -> Outcome:
        try:
            # Always the full record: events carry only the ID, and list summaries omit codebuildRoleArn.
            connection = self._gateway.get(connection_id)
        except ConnectionNotFound as exc:
            self._log.info(f"{self._kind} {connection_id}: not found, nothing to decide", extra={"trigger": trigger})
            return Outcome(connection_id, trigger, "not-found", detail=str(exc))
        if not connection.pending:
            self._log.info(
                f"{self._kind} {connection_id} is {connection.status}: left alone", extra={"trigger": trigger}
            )
            return Outcome(connection_id, trigger, "not-pending", detail=connection.status)

        account_id = connection.request.environment_account_id
        try:
            account = lookup(account_id)
        except Exception as exc:
            # Without the Organization's answer membership cannot be judged; retrying beats guessing.
            raise DirectoryUnavailable(f"could not look up account {account_id}: {exc}") from exc

        decision = decide(connection.request, rules, account, self._this_account_id, partition=self._partition)
        acted = False
        result: Result
        if decision.effective:
            result, acted = self._act(decision)
        elif decision.action != "hold":
            result = "shadow"
        else:
            result = "held"

        if result == "in-progress":
            self._log.info(f"{self._kind} {connection_id}: another run is deciding it", extra={"trigger": trigger})
            return Outcome(connection_id, trigger, result, decision)
        outcome = Outcome(connection_id, trigger, result, decision, acted=acted, detail=decision.reason)
        notified = self._notify(outcome)
        outcome = Outcome(connection_id, trigger, result, decision, acted, notified, decision.reason)
        log = self._log.warning if result in ("conflict", "state-changed") or decision.violations else self._log.info
        log(
            f"{self._kind} {connection_id} {result}: {decision.reason}",
            extra={"approval": outcome.to_dict()},
        )
        return outcome

    def _act(self, decision: Decision) -> tuple[Result, bool]:
        connection_id = decision.request.id
        acted = False

        def call() -> str:
            nonlocal acted
            acted = True
            try:
                if decision.action == "accept":
                    self._gateway.accept(connection_id)
                    return "accepted"
                self._gateway.reject(connection_id)
                return "rejected"
            # These are answers, not failures: recording them means they are reported once, never retried.
            except ConnectionConflict:
                return "conflict"
            except ConnectionStateChanged:
                return "state-changed"
            except ConnectionNotFound:
                return "not-found"

        # One key per connection, whatever the action: at most one accept-or-reject call, ever.
        try:
            recorded = self._once.run_once(f"approvals:{self._kind}:{connection_id}:act", call)
        except _in_progress_errors():
            return "in-progress", False
        return _as_result(recorded), acted

    def _notify(self, outcome: Outcome) -> bool:
        decision = outcome.decision
        assert decision is not None
        # Keyed by what the message says, so a connection held sweep after sweep is announced once, and again
        # only when the decision about it changes.
        fingerprint = json.dumps(
            [
                decision.action,
                decision.rule,
                decision.rule_action,
                decision.mode,
                [v.code for v in decision.violations],
                decision.problem.kind if decision.problem else None,
                outcome.result,
            ]
        )
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        sent = False

        def publish() -> str:
            nonlocal sent
            self._notifier.publish(build_notification(decision, outcome.result, outcome.trigger, kind=self._kind))
            sent = True
            return "sent"

        try:
            self._once.run_once(f"approvals:{self._kind}:{decision.request.id}:notify:{digest}", publish)
        except _in_progress_errors():
            return False
        except Exception as exc:
            # The decision stands and is in the log; a retry would find the connection decided and say nothing.
            self._log.error(
                f"{self._kind} {decision.request.id}: notification failed: {exc}",
                extra={"approval": outcome.to_dict()},
            )
            return False
        return sent

    # --- per-run caches ----------------------------------------------------------------------------------
    def _rules(self) -> RuleSet | RuleSetProblem:
        try:
            return self._load_rules()
        except Exception as exc:
            # Fail safe: a loader that breaks is a rule set nobody can vouch for.
            return RuleSetProblem("unreadable", f"the rule set could not be loaded: {exc}")

    def _lookup_for_run(self) -> Callable[[str], MemberAccount | None]:
        cache: dict[str, MemberAccount | None] = {}

        def lookup(account_id: str) -> MemberAccount | None:
            if account_id not in cache:
                cache[account_id] = self._directory(account_id)
            return cache[account_id]

        return lookup


def _as_result(value: object) -> Result:
    known: tuple[Result, ...] = ("accepted", "rejected", "conflict", "state-changed", "not-found")
    for result in known:
        if value == result:
            return result
    raise GatehouseError(f"the once-guard returned {value!r}, which no run of this service records")
