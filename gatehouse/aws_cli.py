"""The operator's AWS session: a named profile and region, and local credential problems told as such (not as the
deployed functions' permissions)."""

from __future__ import annotations

from typing import Any

LOCAL_CREDENTIALS_HELP = (
    "this is about the credentials on this machine, not the deployed functions' permissions: run `aws configure`, "
    "`aws sso login --profile PROFILE`, or pass --profile"
)


def operator_session(region: str | None, profile: str | None) -> Any:
    """A boto3 session for `region` and `profile` whose credentials AWS accepts; UsageError naming the fix."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    from gatehouse.cli import UsageError

    try:
        session = boto3.session.Session(region_name=region, profile_name=profile)
    except ProfileNotFound:
        raise UsageError(
            f"AWS profile {profile!r} is not configured: `aws configure list-profiles` lists them"
        ) from None
    if not session.region_name:
        raise UsageError("no region: pass --region REGION (the deployment's) or set AWS_REGION")
    if session.get_credentials() is None:
        raise UsageError(f"no AWS credentials found: {LOCAL_CREDENTIALS_HELP}")
    try:
        session.client("sts").get_caller_identity()
    except NoCredentialsError:
        raise UsageError(f"no AWS credentials found: {LOCAL_CREDENTIALS_HELP}") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise UsageError(f"AWS refused this machine's credentials ({code}): {LOCAL_CREDENTIALS_HELP}") from None
    except BotoCoreError as exc:
        raise UsageError(f"could not reach AWS STS in {session.region_name} ({exc}): check --region") from None
    return session
