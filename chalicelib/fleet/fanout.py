"""The daily reconciliation, fanned out in pages so that no invocation grows with the Organization.

    reconcile (schedule)        survey once: the accounts (no tags), Cloudcraft's list and identity, the ledger
      │                         → a snapshot per page of PAGE_SIZE accounts (run#<id>#page#<n>, DynamoDB)
      │                         → part 0: orphans of accounts not in the Organization (queued when repairing)
      ▼ one message per page    {"run_id", "page"} on the plan queue
    reconcile_page (SQS, xN)    reads its snapshot, plans its accounts (tags and roles, concurrently), queues
      │                         their repairs, logs their report lines, records its tally (once per page)
      ▼ the last part counted   adds the tallies up and publishes the run's one summary (once per run)

Why SQS pages and not Step Functions' Distributed Map: the planner's unit of work is already a short Lambda
invocation with no state to pass between pages; SQS gives retries, a dead-letter queue and an alarm with the same
resources the fleet worker uses, needs no state machine (which Chalice does not package) and runs in the sandbox
on moto as deployed. A page that keeps failing lands in the plan DLQ (alarmed); its run then never completes and
the reconciliation heartbeat alarm fires as well.

The snapshot holds what the page cannot cheaply read itself (the Organization's OU paths, Cloudcraft's list,
which the rate limit makes the scarcest read of all). A page reads no Cloudcraft API and holds no API key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.cloudcraft.models import CloudcraftAccount
from chalicelib.adapters.ledger import Ledger
from chalicelib.adapters.runs import DynamoRuns
from chalicelib.adapters.workqueue import RUN_ID, WorkQueue, work_messages
from chalicelib.core.errors import GatehouseError
from chalicelib.core.ids import is_account_id
from chalicelib.core.models import MemberAccount
from chalicelib.core.safejson import JsonLimitError, loads_bounded
from chalicelib.core.settings import Settings
from chalicelib.fleet.report import REPORT_MESSAGE, RunTally, report_entries
from chalicelib.fleet.service import Survey, plan_members, record_principal
from chalicelib.planning.guard import OrganizationIds
from chalicelib.planning.plan import CloudcraftIdentity, FleetPlan, MemberView, plan_orphans

log = logging.getLogger("gatehouse.fanout")

PAGE_SIZE = 100  # accounts per page: about 60 KB of snapshot, a few seconds of reads at 16 threads
MAX_PAGE_SIZE = 1000
MAX_SNAPSHOT_BYTES = 400 * 1024  # DynamoDB's item limit
MAX_MESSAGE_BYTES = 256
PAGE_FIELDS = frozenset({"run_id", "page"})
OU_ID = re.compile(r"(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[0-9a-z]{8,32})", re.ASCII)


class PageError(GatehouseError):
    """A plan-queue message or page snapshot that is not one Gatehouse wrote: reported, nothing planned."""


@dataclass(frozen=True)
class PageItem:
    run_id: str
    page: int

    def to_message(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "page": self.page}


def parse_page_item(body: str | bytes) -> PageItem:
    try:
        raw = loads_bounded(body, max_bytes=MAX_MESSAGE_BYTES, max_depth=2, what="the message")
    except JsonLimitError as exc:
        raise PageError(str(exc)) from None
    if not isinstance(raw, dict) or set(raw) != PAGE_FIELDS:
        raise PageError('a plan-queue message is exactly {"run_id": <run ID>, "page": <1 or more>}')
    run_id, page = raw["run_id"], raw["page"]
    if not isinstance(run_id, str) or RUN_ID.fullmatch(run_id) is None:
        raise PageError("run_id is not a run ID (1-64 of A-Z a-z 0-9 _ -)")
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise PageError("page is not a page number (an integer, 1 or more)")
    return PageItem(run_id, page)


# --- snapshots --------------------------------------------------------------------------------------------
def _member_dict(member: MemberAccount) -> dict[str, Any]:
    return {
        "account_id": member.account_id,
        "name": member.name,
        "status": member.status,
        "ou_ids": list(member.ou_ids),
        "ou_path": member.ou_path,
        "is_management": member.is_management,
    }


def _registration_dict(reg: Any) -> dict[str, Any]:
    """A registration in Cloudcraft's own shape, read back with the client's parser."""
    return {
        "id": reg.id,
        "name": reg.name,
        "roleArn": reg.role_arn,
        "readAccess": list(reg.read_access) if reg.read_access is not None else None,
        "writeAccess": list(reg.write_access) if reg.write_access is not None else None,
        "createdAt": reg.created_at,
    }


def page_snapshots(survey: Survey, page_size: int) -> list[dict[str, Any]]:
    """One snapshot per page of accounts: the accounts, their registrations and ownership records."""
    members = survey.members
    by_account: dict[str, list[Any]] = {}
    for reg in survey.registrations:
        by_account.setdefault(reg.aws_account_id or "", []).append(reg)
    pages = []
    for start in range(0, max(1, len(members)), page_size):  # one page at least: a page completes the run
        chunk = members[start : start + page_size]
        pages.append(
            {
                "members": [_member_dict(m) for m in chunk],
                "registrations": [_registration_dict(r) for m in chunk for r in by_account.get(m.account_id, [])],
                "owned": {m.account_id: survey.owned[m.account_id] for m in chunk if m.account_id in survey.owned},
            }
        )
    return pages


def run_header(survey: Survey, *, repair: bool) -> dict[str, Any]:
    identity = survey.identity
    return {
        "identity": {
            "account_id": identity.account_id,
            "external_id": identity.external_id,
            "policy": identity.policy,
            "recorded_account_id": identity.recorded_account_id,
        },
        "management": survey.management,
        "refusal": survey.refusal,
        "repair": repair,
    }


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PageError(f"{what} is not a string")
    return value


def parse_page(text: str, header: dict[str, Any]) -> tuple[list[MemberAccount], Survey]:
    """A page snapshot and its run's header, checked field by field (nothing planned from a malformed one)."""
    try:
        raw = loads_bounded(text, max_bytes=MAX_SNAPSHOT_BYTES, max_depth=6, what="the page snapshot")
        members = [
            MemberAccount(
                account_id=_text(m["account_id"], "account_id"),
                name=_text(m["name"], "name"),
                status=_text(m["status"], "status"),
                ou_ids=tuple(_text(ou, "an OU ID") for ou in m["ou_ids"]),
                ou_path=_text(m["ou_path"], "ou_path"),
                is_management=m["is_management"] is True and m["account_id"] == header["management"],
            )
            for m in raw["members"]
        ]
        registrations = [CloudcraftAccount.from_api(r) for r in raw["registrations"] if isinstance(r, dict)]
        owned = {_text(k, "an account ID"): _text(v, "a registration ID") for k, v in raw["owned"].items()}
        ident = header["identity"]
        identity = CloudcraftIdentity(
            _text(ident["account_id"], "identity.account_id"),
            _text(ident["external_id"], "identity.external_id"),
            ident["policy"] if isinstance(ident["policy"], dict) else None,
            ident["recorded_account_id"] if isinstance(ident["recorded_account_id"], str) else None,
        )
        management, refusal = _text(header["management"], "management"), _text(header["refusal"], "refusal")
    except (JsonLimitError, KeyError, TypeError, AttributeError) as exc:
        raise PageError(f"the page snapshot is malformed ({type(exc).__name__}: {exc})") from None
    bad = [m.account_id for m in members if not is_account_id(m.account_id) or not all(map(OU_ID.fullmatch, m.ou_ids))]
    if bad or (management and not is_account_id(management)):
        raise PageError(f"the page snapshot names {len(bad)} account(s) with a malformed account or OU ID")
    return members, Survey(members, registrations, identity, owned, management, refusal)


# --- the run -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartedRun:
    run_id: str
    accounts: int
    pages: int
    queued: int  # orphans' deregistrations, queued by the coordinator


def start_run(
    survey: Survey,
    settings: Settings,
    *,
    run_id: str,
    runs: DynamoRuns,
    plan_queue: WorkQueue,
    work_queue: WorkQueue | None,
    now: int,
    page_size: int = PAGE_SIZE,
) -> StartedRun:
    """Write the run's snapshot, record part 0 (the registrations of accounts that are not in the Organization;
    the pages find those out of scope), then queue the pages: part 0 is in before any page can finish, so the
    last page to report always finds the run complete."""
    repair = settings.reconcile == "repair"
    pages = page_snapshots(survey, page_size)
    runs.start(run_id, header=run_header(survey, repair=repair), pages=pages, now=now)
    in_organization = {m.account_id for m in survey.members}
    gone = [r for r in survey.registrations if (r.aws_account_id or "") not in in_organization]
    part = FleetPlan(offboarding=settings.offboarding, orphans=plan_orphans([], settings, gone, survey.owned))
    queued = 0
    if repair and work_queue is not None and part.deregistrations:
        queued = work_queue.send(work_messages(part, run_id))
    _log_report(part)
    runs.report(run_id, 0, RunTally.of(part, queued=queued).to_dict(), now=now)
    plan_queue.send([PageItem(run_id, n).to_message() for n in range(1, len(pages) + 1)])
    return StartedRun(run_id, sum(len(p["members"]) for p in pages), len(pages), queued)


def plan_page(
    item: PageItem,
    settings: Settings,
    *,
    runs: DynamoRuns,
    tags: Callable[[str], dict[str, str]],
    read: Callable[[str], MemberView],
    ledger: Ledger,
    work_queue: WorkQueue | None,
    now: int,
) -> RunTally:
    """Plan one page of a run, queue its repairs, log its report lines and record its tally (counted once)."""
    header = runs.header(item.run_id)
    text = runs.page(item.run_id, item.page)
    if header is None or text is None:
        raise PageError(f"run {item.run_id} has no page {item.page} (expired, or not written by Gatehouse)")
    members, survey = parse_page(text, header)
    plan = plan_members(
        members,
        settings,
        survey,
        tags=tags,
        read=read,
        organization=OrganizationIds(survey.management, frozenset(m.account_id for m in members)),
    )
    queued = 0
    if header.get("repair") is True and plan.changes and work_queue is not None:
        record_principal(plan, survey.identity, ledger)
        queued = work_queue.send(work_messages(plan, item.run_id))
    _log_report(plan)
    tally = RunTally.of(plan, queued=queued)
    if not runs.report(item.run_id, item.page, tally.to_dict(), now=now):
        log.info("page %s of run %s was counted before (a second delivery)", item.page, item.run_id)
    return tally


def add_up(runs: DynamoRuns, run_id: str) -> RunTally | None:
    """The run's tally once every part has reported; None while some have not."""
    progress = runs.progress(run_id)
    if not progress.complete:
        return None
    total = RunTally()
    for part in runs.parts(run_id, progress.parts):
        total.merge(RunTally.from_dict(part))
    return total


def _log_report(plan: FleetPlan) -> None:
    from chalicelib.core.observability import logger

    for entry in report_entries(plan):  # the full report, however long: the summary names only some
        logger.info(REPORT_MESSAGE, **entry)
