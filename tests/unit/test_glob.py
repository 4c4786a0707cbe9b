"""Globs of the approval rules: fnmatch semantics without character classes, and no backtracking."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.approvals.engine import ConnectionRequest, decide
from chalicelib.approvals.glob import Glob, GlobSet, Segment
from chalicelib.approvals.rules import RuleSet, parse_ruleset

# Wildcards, the separators rules care about, regex and fnmatch metacharacters (all literal here),
# a newline and a non-ASCII letter.
PATTERN_ALPHABET = "*?/-ab[].\\\né"
VALUE_ALPHABET = "/-ab[].\\\né"

patterns = st.text(PATTERN_ALPHABET, max_size=12)
values = st.text(VALUE_ALPHABET, max_size=16)


def reference(value: str, pattern: str) -> bool:
    """fnmatch.fnmatchcase with `[` made literal (`[[]`): the rules' documented semantics."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


@settings(max_examples=1500, deadline=None)
@given(patterns, values)
def test_glob_agrees_with_fnmatchcase(pattern: str, value: str) -> None:
    expected = reference(value, pattern)
    assert Glob(pattern)(value) is expected
    assert GlobSet([pattern])(value) is expected


@settings(max_examples=1000, deadline=None)
@given(st.text("*?/-ab", max_size=12), st.text("/-ab", max_size=16))
def test_without_brackets_it_is_exactly_fnmatchcase(pattern: str, value: str) -> None:
    assert Glob(pattern)(value) is fnmatch.fnmatchcase(value, pattern)


@settings(max_examples=1000, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=6), values)
def test_globset_is_any_of_its_patterns(many: list[str], value: str) -> None:
    assert GlobSet(many)(value) is any(reference(value, pattern) for pattern in many)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.text("*?/-aAbB", max_size=10), min_size=1, max_size=4), st.text("/-aAbB", max_size=14))
def test_ignore_case_folds_the_patterns_for_a_folded_value(many: list[str], value: str) -> None:
    folded = value.lower()
    expected = any(fnmatch.fnmatchcase(folded, pattern.lower()) for pattern in many)
    assert GlobSet(many, ignore_case=True)(folded) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("", "", True),
        ("", "a", False),
        ("*", "", True),
        ("**", "anything/at/all", True),
        ("?", "", False),
        ("?", "\n", True),  # ? is any one character, a newline too
        ("*", "line\nbreak", True),
        ("a*a", "a", False),  # head and tail may not share a character
        ("a*a", "aa", True),
        ("*a*a*", "a", False),
        ("*a*a*", "xaxa", True),
        ("ab*ba", "aba", False),
        ("*??", "a", False),
        ("*??", "ab", True),
        ("?*?", "ab", True),
        ("a?*?b", "axyb", True),
        ("a?*?b", "axb", False),
        ("*-?-prod", "api-xy-prod", False),
        ("*-?-prod", "api-x-y-prod", True),
        ("*-??-prod", "api-x-y-prod", False),
        ("*-??-prod", "api-xy-prod", True),
        ("*x?z*", "xxyz", True),  # the first x is not the one that matches
        ("*abab*", "aabab", True),
        ("a.b", "aXb", False),  # regex metacharacters are literal
        ("[ab]", "a", False),  # no character classes: brackets are literal
        ("[ab]", "[ab]", True),
        ("[!a]*", "[!a]x", True),
        ("\\*", "\\x", True),  # no escapes: a backslash is literal and the star still a star
        ("Dev-*", "dev-api", False),  # case-sensitive
        ("*/*/*/*/deploy*", "a/b/c/d/deploy-prod", True),
        ("*/*/*/*/deploy*", "a/b/c/deploy-prod", False),
    ],
)
def test_edge_cases(pattern: str, value: str, expected: bool) -> None:
    assert reference(value, pattern) is expected  # the table itself is fnmatch's answer
    assert Glob(pattern)(value) is expected
    assert GlobSet([pattern])(value) is expected


@pytest.mark.parametrize(
    ("pattern", "bucket"),
    [
        ("us-east-1", "literals"),
        ("dev-*", "prefixes"),
        ("*", "prefixes"),
        ("*-prod", "suffixes"),
        ("*admin*", "infixes"),
        ("team-*-prod", "globs"),
        ("dev-?", "globs"),
        ("*/*/deploy*", "globs"),
    ],
)
def test_common_shapes_skip_the_general_matcher(pattern: str, bucket: str) -> None:
    matcher = GlobSet([pattern])
    buckets = ("literals", "prefixes", "suffixes", "infixes", "globs")
    assert [name for name in buckets if getattr(matcher, name)] == [bucket]
    assert matcher(pattern.replace("*", "x").replace("?", "y"))


def test_ignore_case_and_empty_set() -> None:
    assert GlobSet(["ProtonEnv*"], ignore_case=True)("protonenvrole")
    assert not GlobSet(["ProtonEnv*"])("protonenvrole")
    assert not GlobSet([])
    assert not GlobSet([])("anything")


# --- no backtracking, counted in steps --------------------------------------------------------------


class CountingStr(str):
    """A value that records every search the matcher makes on it, and what each may cost at most."""

    calls: list[tuple[str, str, int]]

    def __new__(cls, text: str) -> CountingStr:
        made = super().__new__(cls, text)
        made.calls = []
        return made

    def _bound(self, start: Any, end: Any) -> int:
        low = 0 if start is None else max(start, 0)
        high = len(self) if end is None else min(end, len(self))
        return max(high - low, 0)

    def find(self, sub: str, start: Any = None, end: Any = None) -> int:
        # A search for a fixed needle in value[start:end]: at most (end - start) x len(needle) tests.
        self.calls.append(("find", sub, self._bound(start, end) * max(len(sub), 1)))
        return str.find(self, sub, start, end)

    def startswith(self, prefix: Any, start: Any = None, end: Any = None) -> bool:
        self.calls.append(("startswith", str(prefix), len(prefix) if isinstance(prefix, str) else 1))
        return str.startswith(self, prefix, start, end)

    def endswith(self, suffix: Any, start: Any = None, end: Any = None) -> bool:
        self.calls.append(("endswith", str(suffix), len(suffix) if isinstance(suffix, str) else 1))
        return str.endswith(self, suffix, start, end)


def test_the_reported_attack_is_one_search_per_segment() -> None:
    # `*/*/*/*/deploy*` against a long role path that does not match: a backtracking regex tries every way
    # of placing the four stars (O(n^4)); the glob searches each segment once, left to right.
    pattern = "*/*/*/*/deploy*"
    value = CountingStr("/deploy" + "a/" * 1000)  # "/deploy" is there, but not after four slashes
    assert Glob(pattern)(value) is False
    searches = [sub for kind, sub, _ in value.calls if kind == "find"]
    assert searches == ["/deploy", "/", "/", "/", "/deploy"]  # the longest literal, then each segment once
    assert len(value.calls) == 7  # plus the head and tail checks
    assert sum(cost for _, _, cost in value.calls) <= 2 * len(pattern) * len(value)


def test_a_value_without_the_longest_literal_is_turned_away_at_once() -> None:
    value = CountingStr("a/" * 1000)
    assert Glob("*/*/*/*/deploy*")(value) is False
    assert [sub for kind, sub, _ in value.calls if kind == "find"] == ["/deploy"]


@settings(max_examples=600, deadline=None)
@given(st.text("*/-ab", max_size=40), st.text("/-ab", max_size=60))
def test_plain_globs_search_each_segment_at_most_once(pattern: str, value: str) -> None:
    counted = CountingStr(value)
    glob = Glob(pattern)
    assert glob(counted) is fnmatch.fnmatchcase(value, pattern)
    assert len(counted.calls) <= len(glob.middle) + 3  # head, tail, the longest literal, each segment once
    # Each call is a fixed-needle search: the whole match is O(len(pattern) x len(value)) tests.
    assert sum(cost for _, _, cost in counted.calls) <= 2 * (len(pattern) + 1) * (len(value) + 1)


@contextmanager
def counting_segments() -> Iterator[list[tuple[str, int]]]:
    """Record each Segment search with its bound: (end - start) x size for find, size for at."""
    calls: list[tuple[str, int]] = []
    original_find, original_at = Segment.find, Segment.at

    def find(self: Segment, value: str, start: int, end: int) -> int:
        calls.append(("find", max(end - start, 0) * max(self.size, 1)))
        return original_find(self, value, start, end)

    def at(self: Segment, value: str, pos: int) -> bool:
        calls.append(("at", self.size))
        return original_at(self, value, pos)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Segment, "find", find)
        patch.setattr(Segment, "at", at)
        yield calls


@settings(max_examples=600, deadline=None)
@given(st.text("*?/-ab", max_size=40).filter(lambda p: "?" in p), st.text("/-ab", max_size=60))
def test_globs_with_question_marks_search_each_segment_at_most_once(pattern: str, value: str) -> None:
    glob = Glob(pattern)
    with counting_segments() as calls:
        assert glob(value) is fnmatch.fnmatchcase(value, pattern)
    assert len(calls) <= len(glob.middle) + 2
    assert sum(cost for _, cost in calls) <= (len(pattern) + 1) * (len(value) + 1)


def test_question_mark_attack_is_one_search_per_segment() -> None:
    pattern = "*/?/*/??/*/deploy-???-*"
    value = "/deploy-" + "a/b/x/cc/" + "a/b/" * 500  # "/?/" and "/??/" are there, "/deploy-???-" is not
    glob = Glob(pattern)
    with counting_segments() as calls:
        assert glob(value) is False
    assert [kind for kind, _ in calls] == ["at", "at", "find", "find", "find"]


REGEX_SPECIAL = set("()[]{}*+?|^$")


@settings(max_examples=500, deadline=None)
@given(st.text(PATTERN_ALPHABET + "()+{}|^$", max_size=30))
def test_segment_programs_are_fixed_length_needles(pattern: str) -> None:
    # A `?` inside a segment is searched by a regex of literal characters and `.` only: nothing repeats,
    # nothing alternates, so the regex engine tries each place once and has nothing to backtrack into.
    glob = Glob(pattern)
    for segment in (glob.head, glob.tail, *glob.middle):
        assert "*" not in segment.text
        if segment.program is None:
            assert "?" not in segment.core
            continue
        tokens = re.findall(r"\\.|.", segment.program.pattern, re.S)
        assert len(tokens) == len(segment.core)
        for token, ch in zip(tokens, segment.core, strict=True):
            if ch == "?":
                assert token == "."
            else:
                assert token not in REGEX_SPECIAL
                assert token != "."
                assert re.fullmatch(token, ch, re.S)


def test_rules_match_long_role_paths_through_the_engine() -> None:
    rules = parse_ruleset(
        '{"mode": "enforce", "rules": ['
        '{"name": "deployers", "action": "reject", "when": {"role_names": ["*/*/*/*/Deploy*"]}},'
        '{"name": "rest", "action": "accept"}]}'
    )
    assert isinstance(rules, RuleSet)
    path = "p/" * 1000  # an ARN of 2,000-odd characters: the most the engine reads
    account = "444444444444"

    def decided(role: str) -> str | None:
        request = ConnectionRequest(
            id="c1",
            environment_account_id=account,
            environment_name="dev",
            role_arn=f"arn:aws:iam::{account}:role/{path}{role}",
            component_role_arn=None,
            codebuild_role_arn=None,
            management_account_id="111111111111",
            region="us-east-1",
        )
        return decide(request, rules, None, "111111111111").rule

    assert decided("DEPLOYER") == "deployers"  # role names ignore case
    assert decided("Builder") == "rest"
