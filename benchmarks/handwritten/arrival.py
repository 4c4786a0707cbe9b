"""The baseline of benchmarks/coldstart.py: the account-arrival Lambda a platform engineer would write by hand with
boto3 and requests, doing the same work as Gatehouse's first completed arrival and nothing more: look the account
up, assume its access role, create the read-only role trusting Cloudcraft (with its permissions boundary), register
it with Cloudcraft, tell ops. No validation, idempotency, rate budget, retries or structured logs.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import requests

ROLE = "cloudcraft"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    account_id = event["detail"]["serviceEventDetails"]["createAccountStatus"]["accountId"]
    settings = json.loads(
        boto3.client("ssm").get_parameter(Name=os.environ["GATEHOUSE_SETTINGS_PARAMETER"])["Parameter"]["Value"]
    )
    key = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["GATEHOUSE_API_KEY_SECRET"])
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key['SecretString']}"
    base = settings["cloudcraft_base_url"].rstrip("/")
    account = boto3.client("organizations").describe_account(AccountId=account_id)["Account"]
    creds = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="arrival"
    )["Credentials"]
    iam = boto3.client(
        "iam",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    parameters = api.get(f"{base}/aws/account/iamParameters", timeout=30).json()
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{parameters['accountId']}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": parameters["externalId"]}},
            }
        ],
    }
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust), PermissionsBoundary=READ_ONLY)
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=READ_ONLY)
    role_arn = f"arn:aws:iam::{account_id}:role/{ROLE}"
    existing = api.get(f"{base}/aws/account", timeout=30).json()["accounts"]
    if not any(a.get("roleArn") == role_arn for a in existing):
        api.post(
            f"{base}/aws/account",
            json={"name": f"{account['Name']} ({account_id})", "roleArn": role_arn, "region": "us-east-1"},
            timeout=30,
        ).raise_for_status()
    boto3.client("sns").publish(
        TopicArn=os.environ["GATEHOUSE_TOPIC_ARN"], Subject="Account onboarded", Message=f"{account_id} onboarded"
    )
    return {"outcome": "onboarded", "account_id": account_id}
