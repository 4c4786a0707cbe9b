"""The registration name template: three placeholders and literal text, refused at parse time otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.core.errors import ConfigurationError
from chalicelib.core.naming import NAME_MAX, clean_name, render_name, template_errors
from chalicelib.core.settings import parse_settings

ALLOWED = "allowed placeholders: {account_id}, {account_name}, {ou_path}"


def refused(template: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        parse_settings({"name_template": template}, source="settings parameter /x")
    message = str(caught.value)
    assert message.startswith("settings parameter /x is invalid: name_template: ")
    assert ALLOWED in message
    return message


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("{account_name:>9999999999}", "'{account_name:>9999999999}'"),  # a format spec that exhausts memory
        ("{account_name:{account_id}}", "'{account_name:{account_id}'"),  # a nested spec: MemoryError later
        ("{account_id.__class__}", "'{account_id.__class__}'"),  # object internals
        ("{account_name[0]}", "'{account_name[0]}'"),
        ("{account_name!r}", "'{account_name!r}'"),
        ("{0}", "'{0}'"),
        ("{}", "'{}'"),
        ("{ account_id }", "'{ account_id }'"),
        ("{Account_Id}", "'{Account_Id}'"),
        ("{account}", "'{account}'"),
    ],
)
def test_format_tricks_are_refused_naming_the_placeholder(template: str, named: str) -> None:
    message = refused(template)
    assert f"placeholder {named} is not allowed" in message


def test_unbalanced_braces_are_refused() -> None:
    assert "'{ou_path' is never closed" in refused("x-{ou_path")
    assert "a single '}'" in refused("x } y")


def test_every_problem_is_reported_once() -> None:
    problems = template_errors("{a} {b} {a} }")
    assert problems[:3] == [
        "placeholder '{a}' is not allowed",
        "placeholder '{b}' is not allowed",
        "a single '}' (write '}}' for a literal brace)",
    ]
    assert len(problems) == 4  # and the list of what is allowed


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{account_name} ({account_id})", "data (222222222222)"),
        ("{ou_path}/{account_name}", "Workloads/Prod/data"),
        ("{{{account_id}}}", "{222222222222}"),
        ("}}{{", "}{"),
        ("fixed", "fixed"),
        ("{account_id}{account_id}", "222222222222222222222222"),
    ],
)
def test_rendering(template: str, expected: str) -> None:
    settings_ = parse_settings({"name_template": template})
    assert settings_.registration_name("222222222222", "data", "Workloads/Prod") == expected


def test_default_template() -> None:
    assert parse_settings({}).registration_name("222222222222", "data", "") == "data (222222222222)"


def test_control_and_format_characters_are_removed() -> None:
    name = parse_settings({}).registration_name("222222222222", "da\x00ta\n\u202e\u200b\x1b[31m", "")
    assert name == "data[31m (222222222222)"


def test_the_name_is_capped() -> None:
    settings_ = parse_settings({"name_template": "{account_name} ({account_id})"})
    name = settings_.registration_name("222222222222", "x" * 500, "")
    assert name == "x" * NAME_MAX


def test_an_empty_name_falls_back_to_the_account_id() -> None:
    settings_ = parse_settings({"name_template": "{account_name}"})
    assert settings_.registration_name("222222222222", " \x07 ", "") == "222222222222"


def test_rendering_never_raises_even_for_a_template_that_skipped_validation() -> None:
    # Bad pieces stay literal; the format machinery is never involved.
    assert render_name("{account_name:>99999999} {account_id.__class__}", {"account_id": "1"}) == (
        "{account_name:>99999999} {account_id.__class__}"
    )


TEMPLATE_PIECES = st.sampled_from(
    ["{account_id}", "{account_name}", "{ou_path}", "{{", "}}", "{", "}", ":", "!", ".", "[0]", "x", " ", "\x07"]
)
VALUES = st.text(max_size=300)


@settings(max_examples=500, deadline=None)
@given(st.lists(TEMPLATE_PIECES, min_size=1, max_size=14).map("".join), VALUES, VALUES, VALUES)
def test_a_template_that_validates_renders_a_bounded_clean_name(
    template: str, account_id: str, account_name: str, ou_path: str
) -> None:
    assert len(template) <= 200  # within the field's length limit: refused only by the template language
    if template_errors(template):
        with pytest.raises(ConfigurationError, match="name_template"):
            parse_settings({"name_template": template})
        return
    settings_ = parse_settings({"name_template": template})
    name = settings_.registration_name(account_id, account_name, ou_path)
    assert len(name) <= NAME_MAX
    assert name == clean_name(name)  # already clean: nothing left to remove or trim


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), VALUES)
def test_any_string_renders_without_error(template: str, account_name: str) -> None:
    name = render_name(template, {"account_id": "222222222222", "account_name": account_name, "ou_path": ""})
    assert len(name) <= NAME_MAX
