"""Lint: findings on a rule set that parses but may not mean what its author thinks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chalicelib.approvals.rules.compile import GlobSet, RuleSet
from chalicelib.approvals.rules.schema import (
    CONDITION_FIELDS,
    ROLE_NAME_MAX,
    ROLE_PATTERN_CHARS,
    ROOT_ID,
    TAG_VALUE_MAX,
    WILDCARDS,
    Conditions,
    Rule,
    RuleError,
    Severity,
    has_wildcard,
)


@dataclass(frozen=True)
class LintFinding:
    severity: Severity
    code: str
    message: str
    rule_index: int | None = None
    rule_name: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        located = str(RuleError(self.message, self.rule_index, self.rule_name, self.field))
        return f"{self.severity}: {located} [{self.code}]"


def _literal_prefix(pattern: str) -> str:
    for i, ch in enumerate(pattern):
        if ch in WILDCARDS:
            return pattern[:i]
    return pattern


def _literal_suffix(pattern: str) -> str:
    for i in range(len(pattern) - 1, -1, -1):
        if pattern[i] in WILDCARDS:
            return pattern[i + 1 :]
    return pattern


def glob_covers(general: str, specific: str) -> bool:
    """True only when every string matching `specific` also matches `general` (conservative: may say no)."""
    if general == specific:
        return True
    if not has_wildcard(specific):
        return GlobSet((general,))(specific)
    if general and set(general) == {"*"}:
        return True
    body = general[:-1]
    if general.endswith("*") and not has_wildcard(body):
        return _literal_prefix(specific).startswith(body)
    tail = general[1:]
    if general.startswith("*") and not has_wildcard(tail):
        return _literal_suffix(specific).endswith(tail)
    return False


def _globs_cover(general: Iterable[str], specific: Iterable[str]) -> bool:
    wide = list(general)
    return all(any(glob_covers(g, s) for g in wide) for s in specific)


def _role_covers(general: Iterable[str], specific: Iterable[str]) -> bool:
    wide = [g.lower() for g in general]
    for s in (p.lower() for p in specific):
        if "/" in s:
            last = s.rsplit("/", 1)[1]
            # A path pattern whose last segment is literal pins the role name, so name patterns can cover it.
            candidates = [g for g in wide if "/" in g]
            if any(glob_covers(g, s) for g in candidates):
                continue
            if not has_wildcard(last) and any(glob_covers(g, last) for g in wide if "/" not in g):
                continue
            return False
        if not any(glob_covers(g, s) for g in wide if "/" not in g):
            return False
    return True


def _ous_cover(general: Iterable[str], specific: Iterable[str]) -> bool:
    wide = list(general)
    for s in specific:
        if s in wide:
            continue
        is_path = not s.startswith(("ou-", "r-"))
        if is_path and any(not g.startswith(("ou-", "r-")) and s.startswith(g + "/") for g in wide):
            continue
        return False
    return True


def _tags_cover(general: Mapping[str, tuple[str, ...]], specific: Mapping[str, tuple[str, ...]]) -> bool:
    return all(key in specific and _globs_cover(wide, specific[key]) for key, wide in general.items())


def covers(general: Conditions, specific: Conditions) -> bool:
    """True when every request matching `specific` also matches `general`, judged field by field."""
    for name in CONDITION_FIELDS:
        wide = getattr(general, name)
        if wide is None:
            continue
        narrow = getattr(specific, name)
        if narrow is None:
            return False
        if name == "account_ids":
            ok = set(narrow) <= set(wide)
        elif name == "ous":
            ok = _ous_cover(wide, narrow)
        elif name == "account_tags":
            ok = _tags_cover(wide, narrow)
        elif name.endswith("role_names"):
            ok = _role_covers(wide, narrow)
        else:
            ok = _globs_cover(wide, narrow)
        if not ok:
            return False
    return True


def _never_matching(rule: Rule) -> list[tuple[str, str]]:
    """(field, why) for each condition no real request can satisfy."""
    found: list[tuple[str, str]] = []
    when = rule.when
    for name in ("role_names", "component_role_names", "codebuild_role_names"):
        for pattern in getattr(when, name) or ():
            if not ROLE_PATTERN_CHARS.fullmatch(pattern):
                found.append((name, f"{pattern!r} has characters IAM does not allow in a role name or path"))
            elif not has_wildcard(pattern.rsplit("/", 1)[-1]) and len(pattern.rsplit("/", 1)[-1]) > ROLE_NAME_MAX:
                found.append((name, f"{pattern!r}: IAM role names are at most {ROLE_NAME_MAX} characters"))
    for tag_key, accepted in (when.account_tags or {}).items():
        for pattern in accepted:
            if not has_wildcard(pattern) and len(pattern) > TAG_VALUE_MAX:
                found.append(("account_tags", f"tag {tag_key!r}: values are at most {TAG_VALUE_MAX} characters"))
        if tag_key.lower().startswith("aws:"):
            found.append(("account_tags", f"tag {tag_key!r}: Organizations does not report aws: tags on accounts"))
    return found


def lint(ruleset: RuleSet) -> list[LintFinding]:
    """Rules that can never match or never be reached, and choices that deserve a second look."""
    findings: list[LintFinding] = []
    document = ruleset.document
    if document.mode == "shadow":
        findings.append(
            LintFinding(
                "info", "shadow-mode", "mode is 'shadow': decisions are notified, nothing is accepted or rejected"
            )
        )
    if document.default_action == "accept":
        findings.append(
            LintFinding("warning", "default-accept", "default_action 'accept' accepts every request no rule matches")
        )
    earlier: list[tuple[int, Rule]] = []  # reachable-looking rules so far; a dead rule shadows nothing
    for index, rule in enumerate(document.rules, start=1):
        dead = _never_matching(rule)
        for field_name, why in dead:
            findings.append(
                LintFinding("error", "never-matches", f"can never match: {why}", index, rule.name, f"when.{field_name}")
            )
        if not dead:
            for position, before in earlier:
                if covers(before.when, rule.when):
                    what = "matches every request" if before.when.is_empty() else "matches every request this one does"
                    findings.append(
                        LintFinding(
                            "error",
                            "shadowed",
                            f"never reached: rule #{position} {before.name!r} comes first and {what}"
                            + (" (with the same action: delete one)" if before.action == rule.action else ""),
                            index,
                            rule.name,
                        )
                    )
                    break
        for field_name in CONDITION_FIELDS:
            values = getattr(rule.when, field_name)
            if isinstance(values, tuple) and len(set(values)) != len(values):
                findings.append(
                    LintFinding(
                        "warning", "duplicate-value", "lists a value twice", index, rule.name, f"when.{field_name}"
                    )
                )
        for entry in rule.when.ous or ():
            if ROOT_ID.fullmatch(entry):
                findings.append(
                    LintFinding(
                        "warning",
                        "root-ou",
                        f"{entry!r} is the root: every member account is below it",
                        index,
                        rule.name,
                    )
                )
        if rule.action == "accept":
            when = rule.when
            if when.is_empty():
                findings.append(
                    LintFinding(
                        "warning", "accept-all", "accepts every request (it has no conditions)", index, rule.name
                    )
                )
            elif when.account_ids is None and when.ous is None and when.account_tags is None:
                findings.append(
                    LintFinding(
                        "warning",
                        "accept-any-account",
                        "accepts from any member account (no account_ids, ous or account_tags)",
                        index,
                        rule.name,
                    )
                )
        if not dead:
            earlier.append((index, rule))
    return findings
