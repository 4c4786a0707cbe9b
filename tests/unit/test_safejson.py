"""Bounded JSON: size and nesting refused with the project's error naming the limit, never a RecursionError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.core.errors import GatehouseError
from chalicelib.core.safejson import JsonLimitError, check_depth, loads_bounded

DEEP = 10_000


def nested_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    current = root
    for _ in range(depth - 1):
        current["a"] = {}
        current = current["a"]
    return root


def test_a_document_within_the_limits_parses() -> None:
    assert loads_bounded('{"a": [1, {"b": "x"}]}', max_bytes=100, max_depth=3) == {"a": [1, {"b": "x"}]}


@pytest.mark.parametrize("text", ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "[" * DEEP])
def test_ten_thousand_levels_are_refused_by_name_before_parsing(text: str) -> None:
    with pytest.raises(JsonLimitError) as raised:
        loads_bounded(text, max_bytes=1_000_000, max_depth=32, what="the rule file")

    assert isinstance(raised.value, GatehouseError)
    assert raised.value.problem == "too-deep"
    assert raised.value.limit == 32
    assert str(raised.value) == "the rule file is nested more than 32 levels deep, the limit"


def test_depth_is_counted_outside_strings_only() -> None:
    text = json.dumps({"a": "[[[[[[[[{{{{{{{{", "b": '\\"[[[['})
    assert loads_bounded(text, max_bytes=1000, max_depth=1) == json.loads(text)


def test_the_limit_itself_is_allowed() -> None:
    assert loads_bounded("[[[]]]", max_bytes=10, max_depth=3) == [[[]]]
    with pytest.raises(JsonLimitError):
        loads_bounded("[[[[]]]]", max_bytes=10, max_depth=3)


def test_oversize_is_refused_before_anything_is_read() -> None:
    with pytest.raises(JsonLimitError, match=r"the message is 2,048 bytes; the limit is 1,024 bytes") as raised:
        loads_bounded(" " * 2048, max_bytes=1024, max_depth=2, what="the message")
    assert raised.value.problem == "oversize"


@pytest.mark.parametrize(("text", "fragment"), [("{not json", "not valid JSON"), (b"\xff\xfe", "not UTF-8")])
def test_invalid_text_is_a_named_error(text: str | bytes, fragment: str) -> None:
    with pytest.raises(JsonLimitError, match=fragment) as raised:
        loads_bounded(text, max_bytes=100, max_depth=4)
    assert raised.value.problem == "invalid"


def test_the_object_pairs_hook_still_runs() -> None:
    seen: list[list[tuple[str, Any]]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen.append(pairs)
        return dict(pairs)

    loads_bounded('{"a": 1, "a": 2}', max_bytes=100, max_depth=2, object_pairs_hook=hook)
    assert seen == [[("a", 1), ("a", 2)]]


def nested_list(depth: int) -> list[Any]:
    root: list[Any] = []
    current = root
    for _ in range(depth - 1):
        current.append([])
        current = current[0]
    return root


@pytest.mark.parametrize("value", [nested_dict(DEEP), nested_list(DEEP), {"detail": [1, "x", nested_list(DEEP)]}])
def test_check_depth_refuses_a_parsed_value_of_any_depth(value: Any) -> None:
    with pytest.raises(JsonLimitError, match="nested more than 32 levels deep") as raised:
        check_depth(value, 32, what="the event")
    assert raised.value.problem == "too-deep"


def test_check_depth_accepts_what_is_within_the_limit() -> None:
    check_depth({"detail": {"a": [1, 2, {"b": None}]}, "x": "y"}, 4)
    check_depth("a string", 0)
    with pytest.raises(JsonLimitError):
        check_depth({"detail": {"a": [1, 2, {"b": {}}]}}, 4)


def test_a_policy_document_iam_returns_as_text_is_read_within_limits() -> None:
    from urllib.parse import quote

    from chalicelib.adapters.member import _as_document

    assert _as_document(quote('{"Version": "2012-10-17"}')) == {"Version": "2012-10-17"}
    assert _as_document(quote("[" * DEEP + "]" * DEEP)) == {}  # unreadable: drift, repaired like any other


def test_the_sandbox_cli_reports_a_deep_file_as_a_usage_error(tmp_path: Any) -> None:
    from gatehouse.cli import UsageError, load_json_file

    path = tmp_path / "event.json"
    path.write_text("[" * DEEP + "]" * DEEP)
    with pytest.raises(UsageError, match="nested more than 32 levels deep"):
        load_json_file(path, "event file")
