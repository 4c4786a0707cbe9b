"""Globs for the approval rules, matched without backtracking.

Semantics (docs/approvals.md, "Conditions"): `*` matches any run of characters, none included and `/`
included; `?` matches exactly one character; every other character, `[` and `]` included, matches
itself. A glob matches the whole value, case-sensitively; callers fold case where a rule says so.
That is `fnmatch.fnmatchcase` without character classes.

How a value is matched: the pattern is cut at its stars into segments (runs of literal characters and
`?`). Without a star, the one segment must match the whole value. Otherwise the first segment must
match at the start of the value and the last at its end, and the segments between are looked for in
order, each at its leftmost place after the one before. Taking the leftmost place never loses a match
(it leaves the most room for what follows), so no segment is ever tried again: one match is at most one
search per segment, each a search for a fixed-length needle costing O(len(value) x len(segment))
character tests, so O(len(value) x len(pattern)) in all, whatever the value. (One more search, for the
longest literal run of the middle segments, turns most values away before the walk.) A backtracking
regex (`.*/.*/.*/deploy.*`) costs O(len(value) ** stars) instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WILDCARDS = frozenset("*?")


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


class Segment:
    """A run of literal characters and `?` between two stars, found as a fixed-length needle.

    Leading and trailing `?` only shift where the literal core must be. A core with a `?` inside is
    searched with a regex made of literal characters and `.` alone: nothing repeats and nothing
    alternates, so the regex engine tries each starting place once and has nothing to backtrack into.
    """

    __slots__ = ("core", "lead", "program", "size", "text", "trail")

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = len(text)
        core = text.lstrip("?")
        self.lead = self.size - len(core)
        self.core = core.rstrip("?")
        self.trail = len(core) - len(self.core)
        self.program = (
            re.compile("".join("." if ch == "?" else re.escape(ch) for ch in self.core), re.S)
            if "?" in self.core
            else None
        )

    def at(self, value: str, pos: int) -> bool:
        """Whether the segment matches `value` at `pos` (the caller knows `pos + size <= len(value)`)."""
        start = pos + self.lead
        if self.program is None:
            return value.startswith(self.core, start)
        return self.program.match(value, start, start + len(self.core)) is not None

    def find(self, value: str, start: int, end: int) -> int:
        """Where the segment first lies wholly inside `value[start:end]`, or -1."""
        low, high = start + self.lead, end - self.trail
        if self.program is None:
            found = value.find(self.core, low, high)
        else:
            hit = self.program.search(value, low, high) if low <= high else None
            found = hit.start() if hit is not None else -1
        return found - self.lead if found >= 0 else -1


class Glob:
    """One compiled glob; call it with a value."""

    __slots__ = ("head", "middle", "min_length", "needle", "pattern", "plain", "starred", "tail")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts = pattern.split("*")
        self.starred = len(parts) > 1
        self.head = Segment(parts[0])
        self.tail = Segment(parts[-1]) if self.starred else Segment("")
        self.middle = tuple(Segment(part) for part in parts[1:-1] if part)
        self.min_length = len(pattern) - pattern.count("*")
        # Without `?` every segment is a plain string: the same walk, on str methods directly.
        self.plain = "?" not in pattern
        # The longest literal run of the middle segments: any match contains it between head and tail, so
        # one search for it turns most values away before the walk (when it is not the walk's only search).
        pieces = [piece for segment in self.middle for piece in segment.text.split("?") if piece]
        needle = max(pieces, key=len, default="")
        only_search = len(self.middle) == 1 and needle == self.middle[0].text
        self.needle = "" if only_search else needle

    def __call__(self, value: str) -> bool:
        size = len(value)
        if not self.starred:
            return value == self.pattern if self.plain else size == self.min_length and self.head.at(value, 0)
        if size < self.min_length:
            return False
        end = size - self.tail.size
        pos = self.head.size
        if self.plain:
            if not (value.startswith(self.head.text) and value.endswith(self.tail.text)):
                return False
            if self.needle and value.find(self.needle, pos, end) < 0:
                return False
            for segment in self.middle:
                found = value.find(segment.text, pos, end)
                if found < 0:
                    return False
                pos = found + segment.size
            return True
        if not (self.head.at(value, 0) and self.tail.at(value, end)):
            return False
        if self.needle and value.find(self.needle, pos, end) < 0:
            return False
        for segment in self.middle:
            found = segment.find(value, pos, end)
            if found < 0:
                return False
            pos = found + segment.size
        return True

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


class GlobSet:
    """Any-of matcher over glob patterns.

    The common shapes are sorted out when compiling, so most tests are one C-level call over all of
    them: exact values in a set, `prefix*` and `*suffix` in one startswith/endswith each, `*part*` as
    substring tests; every other pattern is a `Glob`.
    """

    __slots__ = ("globs", "infixes", "literals", "patterns", "prefixes", "suffixes")

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = False) -> None:
        self.patterns = tuple(patterns)
        literals: set[str] = set()
        prefixes: list[str] = []
        suffixes: list[str] = []
        infixes: list[str] = []
        globs: list[Glob] = []
        for pattern in self.patterns:
            text = pattern.lower() if ignore_case else pattern
            parts = text.split("*")
            head, tail = parts[0], parts[-1]
            inner = [part for part in parts[1:-1] if part]
            if not has_wildcard(text):
                literals.add(text)
            elif "?" in text:
                globs.append(Glob(text))
            elif not inner and not tail:
                prefixes.append(head)  # head*, and * itself
            elif not inner and not head:
                suffixes.append(tail)  # *tail
            elif not head and not tail and len(inner) == 1:
                infixes.append(inner[0])  # *part*
            else:
                globs.append(Glob(text))
        self.literals = frozenset(literals)
        self.prefixes = tuple(prefixes)
        self.suffixes = tuple(suffixes)
        self.infixes = tuple(infixes)
        self.globs = tuple(globs)

    def __call__(self, value: str) -> bool:
        if value in self.literals:
            return True
        if self.prefixes and value.startswith(self.prefixes):
            return True
        if self.suffixes and value.endswith(self.suffixes):
            return True
        for part in self.infixes:
            if part in value:
                return True
        for glob in self.globs:  # noqa: SIM110 - a plain loop: any() over a generator costs more per call
            if glob(value):
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.patterns)
