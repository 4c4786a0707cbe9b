"""Which Cloudcraft registrations Gatehouse created or adopted: it deletes only those (DynamoDB records)."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.adapters.aws import aws_call

PREFIX = "registration#"
PRINCIPAL_KEY = "principal#cloudcraft"


class Ledger(Protocol):
    def record(self, aws_account_id: str, registration_id: str) -> None: ...
    def lookup(self, aws_account_id: str) -> str | None: ...
    def forget(self, aws_account_id: str) -> None: ...
    def owned(self) -> dict[str, str]:
        """AWS account ID → Cloudcraft registration ID, for every registration Gatehouse owns."""

    def principal(self) -> str | None:
        """The AWS account the roles Gatehouse wrote trust (Cloudcraft's), or None before the first role."""

    def record_principal(self, account_id: str) -> None: ...


class DynamoLedger:
    """Records live in the idempotency table under their own key prefix, with no expiry."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def record(self, aws_account_id: str, registration_id: str) -> None:
        with aws_call("dynamodb:PutItem (ownership record)"):
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": PREFIX + aws_account_id},
                    "registration_id": {"S": registration_id},
                    "aws_account_id": {"S": aws_account_id},
                },
            )

    def lookup(self, aws_account_id: str) -> str | None:
        with aws_call("dynamodb:GetItem (ownership record)"):
            item = self._ddb.get_item(TableName=self._table, Key={"id": {"S": PREFIX + aws_account_id}}).get("Item")
        return item["registration_id"]["S"] if item else None

    def forget(self, aws_account_id: str) -> None:
        with aws_call("dynamodb:DeleteItem (ownership record)"):
            self._ddb.delete_item(TableName=self._table, Key={"id": {"S": PREFIX + aws_account_id}})

    def principal(self) -> str | None:
        with aws_call("dynamodb:GetItem (trust principal record)"):
            item = self._ddb.get_item(TableName=self._table, Key={"id": {"S": PRINCIPAL_KEY}}).get("Item")
        return item["aws_account_id"]["S"] if item else None

    def record_principal(self, account_id: str) -> None:
        with aws_call("dynamodb:PutItem (trust principal record)"):
            self._ddb.put_item(
                TableName=self._table, Item={"id": {"S": PRINCIPAL_KEY}, "aws_account_id": {"S": account_id}}
            )

    def owned(self) -> dict[str, str]:
        found: dict[str, str] = {}
        with aws_call("dynamodb:Scan (ownership records)"):
            for page in self._ddb.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression="begins_with(#id, :prefix)",
                ExpressionAttributeNames={"#id": "id"},
                ExpressionAttributeValues={":prefix": {"S": PREFIX}},
                ProjectionExpression="aws_account_id, registration_id",
            ):
                for item in page.get("Items", []):
                    found[item["aws_account_id"]["S"]] = item["registration_id"]["S"]
        return found
