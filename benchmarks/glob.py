"""Adversarial glob benchmark: the approval rules' globs against requester-chosen values at the longest the
engine reads, with the backtracking regex they replace as the baseline in the same run.

Run: .venv/bin/python benchmarks/glob.py   (or `make bench`). Offline and pure: no sandbox needed.

Limits used (looked up, not assumed): a rule glob is at most 512 characters (the schema's pattern limit,
checked below through the parser); a role ARN is at most 2,048 characters (`ids.MAX_ARN_LENGTH`), so the
role path plus name a glob is matched against is at most 2,017 characters.

1. The reported attack: `*/*/*/*/deploy*` against a role path without "deploy", per match. The old regex
   takes time growing as len(value) ** 4, so it runs on short values only.
2. Per decision: 200 rules of star-heavy role globs (4 to 16 stars, the shape that broke the regex), and
   a request whose role path is as long as the engine allows and matches none of them, so every rule is
   tried. Target: < 1 ms per decision. The old matcher runs the same rules in the same engine on a role
   path cut short so that it finishes.
3. The ceiling: globs of the full 512 characters crafted against the new matcher itself (the most stars;
   one long segment that nearly matches everywhere). Only a rule author can write these; they show the
   O(len(pattern) x len(value)) bound, not an attack a requester can make.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib.approvals.engine import ConnectionRequest, _facts, decide
from chalicelib.approvals.glob import Glob
from chalicelib.approvals.rules.compile import RuleSet, compile_conditions, compile_document, parse_ruleset
from chalicelib.approvals.rules.schema import RuleDocument
from chalicelib.core.ids import MAX_ARN_LENGTH

ACCOUNT = "444444444444"
MANAGEMENT = "111111111111"
ARN_PREFIX = f"arn:aws:iam::{ACCOUNT}:role/"
PATTERN_MAX = 512
ROLE_VALUE_MAX = MAX_ARN_LENGTH - len(ARN_PREFIX)
RULES = 200
TARGET_MS = 1.0


class RegexGlobSet:
    """The matcher this replaces, kept verbatim as the baseline: globs as one alternation of `.*` regexes."""

    __slots__ = ("literals", "patterns", "regex")

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = False) -> None:
        self.patterns = tuple(patterns)
        normalised = [p.lower() if ignore_case else p for p in self.patterns]
        self.literals = frozenset(p for p in normalised if not ("*" in p or "?" in p))
        wild = [p for p in normalised if "*" in p or "?" in p]
        self.regex = re.compile("|".join(f"(?:{_glob_to_regex(p)})" for p in wild), re.S) if wild else None

    def __call__(self, value: str) -> bool:
        return value in self.literals or (self.regex is not None and self.regex.fullmatch(value) is not None)

    def __bool__(self) -> bool:
        return bool(self.patterns)


def _glob_to_regex(pattern: str) -> str:
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)


def check_pattern_limit() -> None:
    """Fail loudly if the schema's glob limit is no longer PATTERN_MAX."""

    def accepted(length: int) -> bool:
        pattern = "*" + "a" * (length - 1)
        document = {"mode": "enforce", "rules": [{"name": "r", "action": "hold", "when": {"role_names": [pattern]}}]}
        return isinstance(parse_ruleset(json.dumps(document)), RuleSet)

    if not accepted(PATTERN_MAX) or accepted(PATTERN_MAX + 1):
        raise SystemExit(f"the schema's glob limit is no longer {PATTERN_MAX} characters: update this benchmark")


def best_of(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """CPU seconds per call: the best of `repeat` runs of `number` calls.

    CPU time of this process, not wall time, so that other work on a shared machine inflates the figures
    as little as possible; the best run is the least disturbed one.
    """
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        runs.append((time.process_time() - start) / number)
    return min(runs)


def role_path(length: int) -> str:
    """A role path plus name, `length` characters, full of slashes and without "deploy"."""
    return ("a/" * length)[: length - 1] + "r"


# --- 1. the reported attack -------------------------------------------------------------------------


def reported_attack(old_lengths: list[int]) -> None:
    pattern = "*/*/*/*/deploy*"
    old = RegexGlobSet([pattern], ignore_case=True)
    new = Glob(pattern)
    print(f"1. The reported attack: {pattern} against a role path without 'deploy' (per match)")
    print(f"   {'value length':>12} | {'old regex':>12} | {'new glob':>10}")
    for length in [*old_lengths, ROLE_VALUE_MAX]:
        value = role_path(length)
        assert not old(value) if length in old_lengths else True
        assert not new(value)
        old_text = (
            f"{best_of(lambda v=value: old(v), number=1, repeat=3) * 1e3:9.2f} ms"  # type: ignore[misc]
            if length in old_lengths
            else "not run".rjust(12)
        )
        new_us = best_of(lambda v=value: new(v), number=2000) * 1e6  # type: ignore[misc]
        print(f"   {length:>12} | {old_text} | {new_us:7.2f} us")
    print("   (the old regex grows as len(value) ** 4: not run at the full length; 8.7 s was reported for 511)")


# --- 2. per decision --------------------------------------------------------------------------------

# Star-heavy role globs, the shape that broke the regex; and for each, a role path that makes it work
# hardest without matching: its longest literal is present (so the glob must walk), but not where a
# match needs it.
SHAPES: tuple[tuple[str, Callable[[int, int], str]], ...] = (
    ("*/*/*/*/deploy-{n}*", lambda n, size: pad(f"/deploy-{n}", size)),
    ("*/*/*/*/*/*/*/*/deploy-{n}*", lambda n, size: pad(f"/deploy-{n}", size)),
    ("*/" * 15 + "*deploy-{n}-*", lambda n, size: pad(f"deploy-{n}-", size)),
    ("*/?/*/??/*/deploy-{n}-???*", lambda n, size: pad(f"/deploy-{n}-a/b/x/cc/", size)),
    ("*/" * 16 + "{n}-deploy", lambda n, size: ("a/" * 14 + "a" * size)[: size - len(f"/{n}-deploy")] + f"/{n}-deploy"),
)


def pad(head: str, size: int) -> str:
    return head + role_path(size - len(head))


def star_heavy_rules(count: int) -> dict[str, object]:
    return {
        "mode": "enforce",
        "default_action": "hold",
        "rules": [
            {
                "name": f"r{n}",
                "action": "reject",
                "when": {"role_names": [SHAPES[n % len(SHAPES)][0].format(n=n)]},
            }
            for n in range(count)
        ],
    }


def request(path_and_name: str) -> ConnectionRequest:
    return ConnectionRequest(
        id="c1",
        environment_account_id=ACCOUNT,
        environment_name="env",
        role_arn=ARN_PREFIX + path_and_name,
        component_role_arn=None,
        codebuild_role_arn=None,
        management_account_id=MANAGEMENT,
        region="us-east-1",
    )


def with_matcher(document: RuleDocument, matcher: type) -> RuleSet:
    """Compile `document` with `matcher` standing in for GlobSet wherever the rules compile their conditions."""
    module = sys.modules[compile_conditions.__module__]
    original = getattr(module, "GlobSet")  # noqa: B009 - swapped for the baseline, put back below
    setattr(module, "GlobSet", matcher)  # noqa: B010
    try:
        return compile_document(document)
    finally:
        setattr(module, "GlobSet", original)  # noqa: B010


def per_decision(rules: RuleSet, path: str, *, number: int) -> float:
    probe = request(path)
    decision = decide(probe, rules, None, MANAGEMENT)
    assert decision.rule is None, f"rule {decision.rule} matched: the request must be tried against every rule"
    return best_of(lambda: decide(probe, rules, None, MANAGEMENT), number=number)


def each_rule_at_its_worst(rules: RuleSet) -> float:
    """Seconds for every rule's tests, each against the role path worst for it.

    No one request is the worst for every rule at once (a path that makes one glob walk to the end matches
    others), so this sum stands for a request that could be.
    """
    total = 0.0
    for rule in rules.rules:
        n = int(rule.name[1:])
        path = SHAPES[n % len(SHAPES)][1](n, ROLE_VALUE_MAX)
        assert len(path) == ROLE_VALUE_MAX
        facts = _facts(request(path), None, "aws")
        assert not rule.matches(facts), f"{rule.name} matches {path[:40]}..."
        total += best_of(lambda r=rule, f=facts: r.matches(f), number=200)  # type: ignore[misc]
    return total


def decisions(old_length: int) -> float:
    text = json.dumps(star_heavy_rules(RULES))
    parsed = parse_ruleset(text)
    assert isinstance(parsed, RuleSet), parsed
    catch_all = parse_ruleset(json.dumps({"mode": "enforce", "rules": [{"name": "none", "action": "hold"}]}))
    assert isinstance(catch_all, RuleSet)
    stars = [glob.count("*") for rule in parsed.document.rules for glob in rule.when.role_names or ()]
    print(
        f"2. Per decision: {RULES} rules of role globs with {min(stars)} to {max(stars)} stars "
        f"({len(text) / 1024:.1f} KiB), none matching the request, so every rule is tried"
    )
    longest = role_path(ROLE_VALUE_MAX)
    new_s = per_decision(parsed, longest, number=50)
    floor_s = best_of(lambda: decide(request(longest), catch_all, None, MANAGEMENT), number=200)
    bound_s = floor_s + each_rule_at_its_worst(parsed)
    old_rules = with_matcher(parsed.document, RegexGlobSet)
    old_s = per_decision(old_rules, role_path(old_length), number=1)
    same_s = per_decision(parsed, role_path(old_length), number=200)
    print(f"   a role path of {ROLE_VALUE_MAX} characters, through decide():  {new_s * 1e3:8.3f} ms")
    print(f"     of which outside the rules (one catch-all rule instead):  {floor_s * 1e3:8.3f} ms")
    print(f"   each rule against the path worst for it, summed, plus that: {bound_s * 1e3:8.3f} ms")
    print(f"   a role path of {old_length} characters, new glob:               {same_s * 1e3:8.3f} ms")
    print(
        f"   a role path of {old_length} characters, old regex (baseline):   {old_s * 1e3:8.3f} ms"
        f"   ({old_s / same_s:,.0f}x; not run at {ROLE_VALUE_MAX} characters: it would not finish)"
    )
    worst = max(new_s, bound_s)
    print(f"   worst of the two: {worst * 1e3:.3f} ms per decision (target < {TARGET_MS:g} ms)")
    return worst


# --- 3. the ceiling ---------------------------------------------------------------------------------


def ceiling() -> None:
    value_len = ROLE_VALUE_MAX
    shapes = {
        "most stars: */ x252 then deploy*": ("*/" * 252 + "deploy*", pad("/deploy", value_len)),
        "most stars, each segment with ?": ("*?/" * 168 + "deploy*", pad("/deploy", value_len)),
        "one long literal segment a..ab": ("*" + "a" * 508 + "ba*", "a" * value_len),
        "one long segment with ? inside": ("*a" + "?" * 500 + "b*", "a" * value_len),
    }
    print(f"3. Ceiling: {PATTERN_MAX}-character globs written against the new matcher, value {value_len} characters")
    for name, (pattern, value) in shapes.items():
        assert len(pattern) <= PATTERN_MAX
        glob = Glob(pattern)
        assert not glob(value)
        seconds = best_of(lambda g=glob, v=value: g(v), number=5)  # type: ignore[misc]
        print(
            f"   {name:<34} {seconds * 1e6:9.1f} us per match, {seconds * RULES * 1e3:7.1f} ms if all {RULES} rules "
            f"had it (segments: {len(glob.middle) + 2})"
        )
    print("   (bounded by len(pattern) x len(value) character tests; the old regex, O(len(value) ** stars) on the")
    print("   first two, is not run; 200 such globs are more than the 64 KiB document cap allows: about 120 fit)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-lengths", type=int, nargs="+", default=[16, 32, 64, 96])
    parser.add_argument("--old-decision-length", type=int, default=32, help="role path for the old matcher")
    parser.add_argument("--no-ceiling", action="store_true", help="skip part 3")
    args = parser.parse_args(argv)

    check_pattern_limit()
    print(f"limits: glob {PATTERN_MAX} characters (schema); role path+name {ROLE_VALUE_MAX} (ARN {MAX_ARN_LENGTH})")
    reported_attack(args.old_lengths)
    worst_s = decisions(args.old_decision_length)
    if not args.no_ceiling:
        ceiling()
    return 0 if worst_s * 1e3 < TARGET_MS else 2


if __name__ == "__main__":
    raise SystemExit(main())
