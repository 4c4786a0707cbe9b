"""Real-shaped EventBridge events, built for any account (the shapes AWS sends, quirks included)."""

from __future__ import annotations

import uuid
from typing import Any

MANAGEMENT = "123456789012"


def _cloudtrail_service_event(source: str, event_source: str, name: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS Service Event via CloudTrail",
        "source": source,
        "account": MANAGEMENT,
        "time": "2026-11-20T14:02:11Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"accountId": MANAGEMENT, "invokedBy": "AWS Internal"},
            "eventTime": "2026-11-20T14:02:10Z",
            "eventSource": event_source,
            "eventName": name,
            "awsRegion": "us-east-1",
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsServiceEvent",
            "managementEvent": True,
            "recipientAccountId": MANAGEMENT,
            "serviceEventDetails": details,
        },
    }


def create_account_result(account_id: str | None, *, state: str = "SUCCEEDED", failure: str = "") -> dict[str, Any]:
    """Organizations' CreateAccountResult: the name redacted to ****, timestamps not ISO-8601."""
    status: dict[str, Any] = {
        "id": "car-" + uuid.uuid4().hex,
        "state": state,
        "accountName": "****",
        "requestedTimestamp": "Nov 20, 2026 2:01:34 PM",
        "completedTimestamp": "Nov 20, 2026 2:02:09 PM",
    }
    if account_id:
        status["accountId"] = account_id
    if failure:
        status["failureReason"] = failure
    return _cloudtrail_service_event(
        "aws.organizations", "organizations.amazonaws.com", "CreateAccountResult", {"createAccountStatus": status}
    )


def managed_account(
    account_id: str, name: str, *, update: bool = False, ou_name: str = "Workloads", ou_id: str = ""
) -> dict[str, Any]:
    """Control Tower's CreateManagedAccount (or UpdateManagedAccount)."""
    event_name = "UpdateManagedAccount" if update else "CreateManagedAccount"
    return _cloudtrail_service_event(
        "aws.controltower",
        "controltower.amazonaws.com",
        event_name,
        {
            ("updateManagedAccountStatus" if update else "createManagedAccountStatus"): {
                "organizationalUnit": {"organizationalUnitName": ou_name, "organizationalUnitId": ou_id},
                "account": {"accountName": name, "accountId": account_id},
                "state": "SUCCEEDED",
                "message": "AWS Control Tower successfully created a managed account.",
                "requestedTimestamp": "2026-11-21T09:01:12+0000",
                "completedTimestamp": "2026-11-21T09:15:39+0000",
            }
        },
    )


def proton_connection_change(connection_id: str, status: str = "PENDING") -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS Proton Environment Account Connection Status Change",
        "source": "aws.proton",
        "account": MANAGEMENT,
        "time": "2026-11-22T16:40:03Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:proton:us-east-1:{MANAGEMENT}:environment-account-connection/{connection_id}"],
        "detail": {"id": connection_id, "status": status},
    }


def close_account_result(account_id: str) -> dict[str, Any]:
    return _cloudtrail_service_event(
        "aws.organizations",
        "organizations.amazonaws.com",
        "CloseAccountResult",
        {"closeAccountStatus": {"accountId": account_id, "state": "SUCCEEDED", "id": "car-" + uuid.uuid4().hex}},
    )


def organizations_api_call(name: str, request_parameters: dict[str, Any]) -> dict[str, Any]:
    """An Organizations API call as CloudTrail reports it (RemoveAccountFromOrganization, MoveAccount, ...)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.organizations",
        "account": MANAGEMENT,
        "time": "2026-11-22T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "AssumedRole", "accountId": MANAGEMENT},
            "eventTime": "2026-11-22T10:00:00Z",
            "eventSource": "organizations.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "requestParameters": request_parameters,
            "responseElements": None,
            "eventID": str(uuid.uuid4()),
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": MANAGEMENT,
        },
    }


def move_account(account_id: str, source_parent_id: str, destination_parent_id: str) -> dict[str, Any]:
    return organizations_api_call(
        "MoveAccount",
        {"accountId": account_id, "sourceParentId": source_parent_id, "destinationParentId": destination_parent_id},
    )


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": MANAGEMENT,
        "time": "2026-11-23T03:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:{MANAGEMENT}:rule/gatehouse-reconcile"],
        "detail": {},
    }
