from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from chalicelib.adapters.aws import aws_call
from chalicelib.core.errors import AwsAccessDeniedError, AwsError, AwsNotFoundError, GatehouseError


def client_error(code: str, message: str = "details", operation: str = "GetRole") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        ("NoSuchEntity", AwsNotFoundError),
        ("AccountNotFoundException", AwsNotFoundError),
        ("ParameterNotFound", AwsNotFoundError),
        ("AccessDenied", AwsAccessDeniedError),
        ("AccessDeniedException", AwsAccessDeniedError),
    ],
)
def test_codes_callers_branch_on_raise_their_own_class(code: str, error_class: type[AwsError]) -> None:
    original = client_error(code)
    with pytest.raises(error_class) as caught, aws_call("iam:GetRole cloudcraft in 222222222222"):
        raise original

    assert caught.value.code == code
    assert str(caught.value).startswith(f"iam:GetRole cloudcraft in 222222222222 failed: {code}: ")
    assert "details" in str(caught.value)
    assert caught.value.__cause__ is original


def test_any_other_service_error_is_a_plain_aws_error_with_its_code() -> None:
    with pytest.raises(AwsError) as caught, aws_call("sns:Publish"):
        raise client_error("InvalidParameter", operation="Publish")

    assert type(caught.value) is AwsError
    assert caught.value.code == "InvalidParameter"
    assert isinstance(caught.value, GatehouseError)


def test_a_botocore_failure_without_an_answer_is_named_by_its_class() -> None:
    with pytest.raises(AwsError) as caught, aws_call("dynamodb:GetItem (ownership record)"):
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")

    assert type(caught.value) is AwsError
    assert caught.value.code == "EndpointConnectionError"
    assert str(caught.value).startswith("dynamodb:GetItem (ownership record) failed: EndpointConnectionError: ")
    assert isinstance(caught.value.__cause__, BotoCoreError)


def test_other_exceptions_pass_through_untouched() -> None:
    with pytest.raises(KeyError, match="Account"), aws_call("sts:GetCallerIdentity"):
        raise KeyError("Account")


def test_a_call_that_succeeds_is_left_alone() -> None:
    with aws_call("sts:GetCallerIdentity"):
        answer = {"Account": "111111111111"}["Account"]

    assert answer == "111111111111"


def test_an_adapter_can_pass_its_own_translation() -> None:
    class ServiceDown(GatehouseError):
        pass

    seen: list[tuple[str, str]] = []

    def translate(exc: ClientError | BotoCoreError, doing: str) -> Exception:
        seen.append((type(exc).__name__, doing))
        return ServiceDown(doing)

    doing = "proton:ListEnvironmentAccountConnections"
    with pytest.raises(ServiceDown, match=doing), aws_call(doing, errors=translate):
        raise client_error("InternalServerException", operation="ListEnvironmentAccountConnections")

    assert seen == [("ClientError", doing)]


def test_the_service_answer_travels_with_the_error() -> None:
    answer: Any = {
        "Error": {"Code": "ConditionalCheckFailedException", "Message": "failed"},
        "Item": {"holder": {"S": "x"}},
    }
    with pytest.raises(AwsError) as caught, aws_call("dynamodb:PutItem (lease on 222222222222)"):
        raise ClientError(answer, "PutItem")

    assert caught.value.code == "ConditionalCheckFailedException"
    assert caught.value.response["Item"] == {"holder": {"S": "x"}}

    with pytest.raises(AwsError) as unanswered, aws_call("dynamodb:PutItem"):
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")
    assert unanswered.value.response == {}
