"""EventBridge events about accounts, parsed at the edge into typed models (raw dicts stop here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from chalicelib.core.errors import EventParseError
from chalicelib.core.ids import is_account_id
from chalicelib.core.safejson import JsonLimitError, check_depth

REDACTED = "****"
# CloudTrail events nest a handful of levels; far deeper is not an AWS event, and would exhaust the recursion
# limit of anything that walks it (logging, serializing).
MAX_EVENT_DEPTH = 32

# Event names Gatehouse onboards on, and those it offboards on.
ARRIVAL_EVENTS = ("CreateAccountResult", "CreateManagedAccount", "UpdateManagedAccount", "AccountJoinedOrganization")
DEPARTURE_EVENTS = (
    "CloseAccountResult",
    "CloseAccount",
    "RemoveAccountFromOrganization",
    "AccountDepartedOrganization",
    "MoveAccount",
)

# EventBridge patterns; the deployed rules and the pattern tests use these very objects.
ARRIVAL_PATTERN: dict[str, Any] = {
    "source": ["aws.organizations", "aws.controltower"],
    "detail": {"eventName": list(ARRIVAL_EVENTS)},
}
DEPARTURE_PATTERN: dict[str, Any] = {
    "source": ["aws.organizations"],
    "detail": {"eventName": list(DEPARTURE_EVENTS)},
}

PROTON_DETAIL_TYPE = "AWS Proton Environment Account Connection Status Change"
# The rule the approval handler listens on. Only PENDING matters; the sweep catches what was never announced.
PROTON_CONNECTION_PATTERN: dict[str, Any] = {
    "source": ["aws.proton"],
    "detail-type": [PROTON_DETAIL_TYPE],
    "detail": {"status": ["PENDING"]},
}

Kind = Literal[
    "CreateAccountResult",
    "CreateManagedAccount",
    "UpdateManagedAccount",
    "AccountJoinedOrganization",
]
TIMESTAMP_FORMATS = (
    "%b %d, %Y %I:%M:%S %p",  # Organizations: "Sep 16, 2020 9:20:50 PM"
    "%Y-%m-%dT%H:%M:%S%z",  # Control Tower: "2019-11-15T11:45:18+0000"
    "%Y-%m-%dT%H:%M:%S.%f%z",
)


@dataclass(frozen=True)
class AccountArrival:
    """An account was created in, vended into, updated in or joined the Organization."""

    event_id: str
    kind: Kind
    state: str  # SUCCEEDED | FAILED | IN_PROGRESS, or SUCCEEDED for a join
    account_id: str | None  # absent on a failed creation
    account_name: str | None  # None when redacted ("****") or absent: look it up in Organizations
    ou_id: str | None
    failure_reason: str | None
    event_time: datetime | None
    completed_at: datetime | None

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


@dataclass(frozen=True)
class AccountDeparture:
    """An account left the Organization, was closed, or moved between OUs."""

    event_id: str
    kind: str
    account_id: str
    state: str  # SUCCEEDED | FAILED, or SUCCEEDED for API-call events
    source_parent_id: str | None = None
    destination_parent_id: str | None = None
    event_time: datetime | None = None


def event_id_of(raw: Any) -> str:
    """The event's ID for messages about it, whatever shape it is in."""
    return str(raw.get("id") or "without id") if isinstance(raw, dict) else "without id"


def parse_timestamp(value: Any) -> datetime | None:
    """Tolerates the formats AWS actually sends; anything else becomes None rather than an error."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for fmt in TIMESTAMP_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_event_depth(raw: Any) -> None:
    """Refuse an event nested deeper than any AWS event, before anything walks it (EventParseError)."""
    try:
        check_depth(raw, MAX_EVENT_DEPTH, what="the event")
    except JsonLimitError as exc:
        raise EventParseError(str(exc)) from None


def _envelope(raw: Any) -> tuple[str, dict[str, Any], str]:
    if not isinstance(raw, dict):
        raise EventParseError(f"an event must be a JSON object, got {type(raw).__name__}")
    check_event_depth(raw)
    detail = raw.get("detail")
    if not isinstance(detail, dict):
        raise EventParseError("the event has no 'detail' object: is this an EventBridge event?")
    name = detail.get("eventName")
    if not isinstance(name, str) or not name:
        raise EventParseError("the event has no 'detail.eventName'")
    event_id = str(raw.get("id") or detail.get("eventID") or "unknown")
    return event_id, detail, name


def _account_id(value: Any, where: str) -> str:
    if not is_account_id(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise EventParseError(f"{where} is {shown}, not a 12-digit AWS account ID (ASCII digits 0-9)")
    return str(value)


def _member_account_id(name: str, detail: dict[str, Any], *, service_details: bool) -> str:
    """The ID of the account the event is about, from where AWS documents it, and nowhere else.

    API-call events name it in `requestParameters.accountId`; service events in `serviceEventDetails`, directly
    or in one nested object (`...Status`, `...Details`). Never `userIdentity` or `recipientAccountId`: those are
    the caller and the account the event was logged in, i.e. the management account.
    """
    found: dict[str, str] = {}  # value -> where
    params = _object(detail.get("requestParameters"))
    if "accountId" in params:
        found.setdefault(str(params["accountId"]), "requestParameters.accountId")
    if service_details:
        details = _object(detail.get("serviceEventDetails"))
        if "accountId" in details:
            found.setdefault(str(details["accountId"]), "serviceEventDetails.accountId")
        for key, nested in details.items():
            if isinstance(nested, dict) and "accountId" in nested:
                found.setdefault(str(nested["accountId"]), f"serviceEventDetails.{key}.accountId")
    if not found:
        places = "requestParameters.accountId" + (" or serviceEventDetails" if service_details else "")
        raise EventParseError(
            f"{name} names no member account in {places}; the caller's identity is never used in its place"
        )
    if len(found) > 1:
        listed = ", ".join(f"{where}={value!r}" for value, where in found.items())
        raise EventParseError(f"{name} names more than one account ({listed}); which one is meant is unclear")
    [(value, where)] = found.items()
    return _account_id(value, f"{name} {where}")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or value.strip() == REDACTED:
        return None
    return value.strip()


def parse_arrival(raw: Any) -> AccountArrival:
    """Parse an arrival event; raises EventParseError naming what is wrong."""
    event_id, detail, name = _envelope(raw)
    if name not in ARRIVAL_EVENTS:
        raise EventParseError(f"eventName {name!r} is not an account arrival ({', '.join(ARRIVAL_EVENTS)})")
    details = _object(detail.get("serviceEventDetails"))
    event_time = parse_timestamp(detail.get("eventTime")) or parse_timestamp(raw.get("time"))

    if name == "CreateAccountResult":
        status = details.get("createAccountStatus")
        if not isinstance(status, dict):
            raise EventParseError("CreateAccountResult without serviceEventDetails.createAccountStatus")
        state = str(status.get("state") or "")
        if state not in ("SUCCEEDED", "FAILED", "IN_PROGRESS"):
            raise EventParseError(f"createAccountStatus.state is {status.get('state')!r}")
        account_id = status.get("accountId")
        return AccountArrival(
            event_id=event_id,
            kind="CreateAccountResult",
            state=state,
            account_id=_account_id(account_id, "createAccountStatus.accountId") if state == "SUCCEEDED" else None,
            account_name=_name(status.get("accountName")),
            ou_id=None,
            failure_reason=status.get("failureReason"),
            event_time=event_time,
            completed_at=parse_timestamp(status.get("completedTimestamp")),
        )

    if name in ("CreateManagedAccount", "UpdateManagedAccount"):
        key = "createManagedAccountStatus" if name == "CreateManagedAccount" else "updateManagedAccountStatus"
        status = details.get(key)
        if not isinstance(status, dict):
            raise EventParseError(f"{name} without serviceEventDetails.{key}")
        state = str(status.get("state") or "")
        if state not in ("SUCCEEDED", "FAILED", "IN_PROGRESS"):
            raise EventParseError(f"{key}.state is {status.get('state')!r}")
        account = _object(status.get("account"))
        ou = _object(status.get("organizationalUnit"))
        account_id = account.get("accountId")
        return AccountArrival(
            event_id=event_id,
            kind=name,  # type: ignore[arg-type]
            state=state,
            account_id=(
                _account_id(account_id, f"{key}.account.accountId") if state == "SUCCEEDED" or account_id else None
            ),
            account_name=_name(account.get("accountName")),
            ou_id=ou.get("organizationalUnitId") if isinstance(ou.get("organizationalUnitId"), str) else None,
            failure_reason=status.get("message") if state == "FAILED" else None,
            event_time=event_time,
            completed_at=parse_timestamp(status.get("completedTimestamp")),
        )

    # AccountJoinedOrganization: the detail shape is not documented; look only where such events keep the member.
    return AccountArrival(
        event_id=event_id,
        kind="AccountJoinedOrganization",
        state="SUCCEEDED",
        account_id=_member_account_id(name, detail, service_details=True),
        account_name=None,
        ou_id=None,
        failure_reason=None,
        event_time=event_time,
        completed_at=None,
    )


def parse_departure(raw: Any) -> AccountDeparture:
    """Parse a departure or move event; raises EventParseError naming what is wrong."""
    event_id, detail, name = _envelope(raw)
    if name not in DEPARTURE_EVENTS:
        raise EventParseError(f"eventName {name!r} is not an account departure ({', '.join(DEPARTURE_EVENTS)})")
    details = _object(detail.get("serviceEventDetails"))
    params = _object(detail.get("requestParameters"))
    event_time = parse_timestamp(detail.get("eventTime")) or parse_timestamp(raw.get("time"))
    state = "SUCCEEDED"
    if name == "CloseAccountResult":
        status = details.get("closeAccountStatus")
        if not isinstance(status, dict):
            raise EventParseError("CloseAccountResult without serviceEventDetails.closeAccountStatus")
        state = str(status.get("state") or "")
        account_id = _account_id(status.get("accountId"), "closeAccountStatus.accountId")
    else:
        if detail.get("errorCode"):
            state = "FAILED"  # an API call that AWS refused changed nothing
        # API calls (CloseAccount, RemoveAccountFromOrganization, MoveAccount) name the account in their request;
        # AccountDepartedOrganization is a service event of undocumented shape.
        account_id = _member_account_id(name, detail, service_details=name == "AccountDepartedOrganization")
    return AccountDeparture(
        event_id=event_id,
        kind=name,
        account_id=account_id,
        state=state,
        source_parent_id=params.get("sourceParentId"),
        destination_parent_id=params.get("destinationParentId"),
        event_time=event_time,
    )
