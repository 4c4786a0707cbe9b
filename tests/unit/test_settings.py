"""The settings document: safe defaults, and errors that name the field and the fix."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import ConfigurationError
from chalicelib.core.settings import StageConfig, parse_settings, parse_settings_text


def test_empty_document_is_the_safe_default() -> None:
    settings = parse_settings({})
    assert settings.scope_ous == ()  # whole Organization
    assert settings.access_role_names == ("OrganizationAccountAccessRole", "AWSControlTowerExecution")
    assert settings.cloudcraft_role_name == "cloudcraft"
    assert settings.permission_mode == "read-only-access"
    assert settings.cloudcraft_base_url == "https://api.cloudcraft.co"
    assert settings.registration_name("222222222222", "data", "Workloads") == "data (222222222222)"


def test_teams_become_cloudcraft_access_strings() -> None:
    settings = parse_settings({"read_access_teams": ["a", "b"], "write_access_teams": ["a"]})
    assert settings.read_access == ("team/a", "team/b")
    assert settings.write_access == ("team/a",)


@pytest.mark.parametrize(
    ("document", "field", "hint"),
    [
        ({"scope_ous": ["ou-1"]}, "scope_ous", "ou-xxxx-yyyyyyyy"),
        ({"exclude_accounts": ["1234"]}, "exclude_accounts.0", "pattern"),
        ({"name_template": "{account} x"}, "name_template", "{account_id}"),
        ({"cloudcraft_base_url": "http://api.example.com"}, "cloudcraft_base_url", "https"),
        ({"permission_mode": "admin"}, "permission_mode", "read-only-access"),
        ({"scope_ou": []}, "scope_ou", "unknown field"),
        ({"access_role_names": []}, "access_role_names", "at least 1"),
        ({"read_access_teams": ["team/abc"]}, "read_access_teams", "without 'team/'"),
        ({"cloudcraft_role_name": "OrganizationAccountAccessRole"}, "(document)", "must differ"),
    ],
)
def test_invalid_documents_name_the_field(document: dict[str, object], field: str, hint: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_settings(document, source="settings parameter /x")
    message = str(caught.value)
    assert message.startswith("settings parameter /x is invalid")
    assert f"{field}:" in message
    assert hint in message


def test_non_object_document() -> None:
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        parse_settings(["a"])


def test_loopback_http_is_allowed_for_the_sandbox() -> None:
    assert (
        parse_settings({"cloudcraft_base_url": "http://127.0.0.1:8080/"}).cloudcraft_base_url == "http://127.0.0.1:8080"
    )


def test_ou_paths_are_normalised() -> None:
    assert parse_settings({"scope_ous": ["/Workloads/Prod/"]}).scope_ous == ("Workloads/Prod",)


def test_stage_config_names_missing_variables() -> None:
    with pytest.raises(ConfigurationError, match="GATEHOUSE_TOPIC_ARN"):
        StageConfig.from_environment(
            {
                "GATEHOUSE_SETTINGS_PARAMETER": "/s",
                "GATEHOUSE_API_KEY_SECRET": "k",
                "GATEHOUSE_IDEMPOTENCY_TABLE": "t",
            }
        )


# --- identifiers and bounded parsing ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["organizationaccountaccessrole", "AWSCONTROLTOWEREXECUTION"])
def test_the_cloudcraft_role_must_differ_from_the_access_roles_ignoring_case(name: str) -> None:
    # IAM role names are unique regardless of case: this would make Gatehouse rewrite its own way in.
    with pytest.raises(ConfigurationError, match="IAM role names ignore case"):
        parse_settings({"cloudcraft_role_name": name})


@pytest.mark.parametrize(
    "account",
    ["١١١١٢٢٢٢٣٣٣٣", "111122223333\n", "\uff11" * 12],
)
def test_excluded_accounts_are_twelve_ascii_digits(account: str) -> None:
    with pytest.raises(ConfigurationError, match=r"exclude_accounts\.0"):
        parse_settings({"exclude_accounts": [account]})


def test_role_names_are_ascii() -> None:
    with pytest.raises(ConfigurationError, match="cloudcraft_role_name"):
        parse_settings({"cloudcraft_role_name": "clöudcraft"})


def test_the_stored_document_is_parsed_from_its_text() -> None:
    settings = parse_settings_text('{"scope_ous": ["Workloads"], "exclude_accounts": ["111122223333"]}')
    assert settings.scope_ous == ("Workloads",)
    assert parse_settings_text("") == parse_settings({})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"scope_ous":' + "[" * 10_000 + "]" * 10_000 + "}", "nested more than 16 levels deep"),
        ("{" + '"a": 1, ' * 20_000 + '"b": 2}', "the limit is 65,536 bytes"),
        ('{"scope_ous": [}', "not valid JSON"),
    ],
)
def test_a_deep_huge_or_broken_document_is_a_configuration_error(text: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as raised:
        parse_settings_text(text, source="settings parameter /gatehouse/prod/settings")
    assert "settings parameter /gatehouse/prod/settings" in str(raised.value)


def test_a_deep_document_already_parsed_is_refused_too() -> None:
    document: dict[str, object] = {}
    current = document
    for _ in range(10_000):
        current["x"] = {}
        current = current["x"]  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match="nested more than 16 levels deep"):
        parse_settings({"scope_ous": document})


# --- where the API key may go, and which Cloudcraft account to trust ------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.example", "not Cloudcraft's API host"),
        ("https://api.cloudcraft.co.evil.example", "not Cloudcraft's API host"),  # a suffix trick
        ("https://evil.example/api.cloudcraft.co", "not Cloudcraft's API host"),
        ("https://xapi.cloudcraft.co", "not Cloudcraft's API host"),
        ("https://api.cloudcraft.co@evil.example", "no user info"),
        ("https://api.cloudcraft.co\\@evil.example", "backslashes"),
        ("https://api.cloudcraft.co:8443", "'api.cloudcraft.co:8443' is not"),  # a port must be allowed too
        ("https://api.cloudcraft.co?x=1", "no user info, query"),
        ("https://api.cloudcraft.co#x", "fragment"),
        ("http://api.cloudcraft.co", "https://"),
        ("ftp://api.cloudcraft.co", "https://"),
        (" https://api.cloudcraft.co", "spaces"),
    ],
)
def test_the_key_goes_to_cloudcraft_only_unless_the_deployment_allows_another_host(url: str, why: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_settings({"cloudcraft_base_url": url})
    assert "cloudcraft_base_url:" in str(caught.value)
    assert why in str(caught.value)


def test_hosts_the_deployment_allows_compare_exactly_ignoring_case() -> None:
    allowed = ("api.gov.cloudcraft.example", "proxy.corp.example:8443")

    def base_url(url: str) -> str:
        return parse_settings({"cloudcraft_base_url": url}, allowed_hosts=allowed).cloudcraft_base_url

    assert base_url("https://API.Gov.Cloudcraft.example/") == "https://API.Gov.Cloudcraft.example"
    assert base_url("https://proxy.corp.example:8443/cloudcraft") == "https://proxy.corp.example:8443/cloudcraft"
    assert base_url("https://api.cloudcraft.co") == "https://api.cloudcraft.co"
    for refused in (
        "https://proxy.corp.example",
        "https://x.api.gov.cloudcraft.example",
        "https://gov.cloudcraft.example",
    ):
        with pytest.raises(ConfigurationError, match="not Cloudcraft's API host"):
            parse_settings({"cloudcraft_base_url": refused}, allowed_hosts=allowed)


def test_allowed_hosts_come_from_the_environment_and_are_checked() -> None:
    base = {
        "GATEHOUSE_SETTINGS_PARAMETER": "/s",
        "GATEHOUSE_API_KEY_SECRET": "k",
        "GATEHOUSE_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:t",
        "GATEHOUSE_IDEMPOTENCY_TABLE": "t",
    }
    assert StageConfig.from_environment(base).cloudcraft_allowed_hosts == ()
    hosts = {**base, "GATEHOUSE_CLOUDCRAFT_ALLOWED_HOSTS": " Api.Gov.Example , proxy.example:8443,"}
    assert StageConfig.from_environment(hosts).cloudcraft_allowed_hosts == ("api.gov.example", "proxy.example:8443")
    for bad in ("https://api.gov.example", "user@host", "host/path", "-host"):
        with pytest.raises(ConfigurationError, match="GATEHOUSE_CLOUDCRAFT_ALLOWED_HOSTS"):
            StageConfig.from_environment({**base, "GATEHOUSE_CLOUDCRAFT_ALLOWED_HOSTS": bad})


def test_cloudcraft_account_can_be_pinned_to_twelve_ascii_digits() -> None:
    assert parse_settings({}).cloudcraft_aws_account_id is None
    assert parse_settings({"cloudcraft_aws_account_id": "968898580625"}).cloudcraft_aws_account_id == "968898580625"
    for bad in ("*", "96889858062", "arn:aws:iam::968898580625:root", "\u0669" * 12, 968898580625):
        with pytest.raises(ConfigurationError, match="cloudcraft_aws_account_id"):
            parse_settings({"cloudcraft_aws_account_id": bad})
