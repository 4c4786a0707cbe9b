"""The approval rule document: its schema, and parsing text into it with errors that name rule and field."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chalicelib.approvals.glob import has_wildcard
from chalicelib.core.ids import ACCOUNT_ID_PATTERN, is_region
from chalicelib.core.models import OU_ID
from chalicelib.core.safejson import JsonLimitError, loads_bounded

Action = Literal["accept", "reject", "hold"]
Mode = Literal["enforce", "shadow"]
ProblemKind = Literal["missing", "unreadable", "empty", "oversized", "invalid"]
Severity = Literal["error", "warning", "info"]

# Limits of a rule document. SSM itself caps a parameter at 4 KB (standard) or 8 KB (advanced), so a
# deployed document is smaller still; these caps bound what any source (a file for the CLI, a future
# store) may hand the engine, and with it the worst-case cost of one decision.
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DOCUMENT_DEPTH = 32  # a valid document nests six levels; far deeper only exhausts the parser's recursion
MAX_RULES = 500
MAX_VALUES_PER_CONDITION = 200

RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
ROOT_ID = re.compile(r"^r-[0-9a-z]{4,32}$")
# What IAM allows in a role name and in a role path, plus the two wildcards.
ROLE_PATTERN_CHARS = re.compile(r"^[\w+=,.@/*?-]+$", re.ASCII)
ROLE_NAME_MAX = 64
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
WILDCARDS = frozenset("*?")

Pattern = Annotated[str, Field(min_length=1, max_length=512)]


def _no_empty_list(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is not None and not value:
        raise ValueError("an empty list matches nothing: leave the field out to match any value")
    if value is not None and len(value) > MAX_VALUES_PER_CONDITION:
        raise ValueError(f"at most {MAX_VALUES_PER_CONDITION} values per condition")
    return value


class Conditions(BaseModel):
    """Every condition given must hold (AND); within one condition, any listed value may match (OR)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_ids: tuple[Annotated[str, Field(pattern=ACCOUNT_ID_PATTERN)], ...] | None = None
    # OU IDs (ou-xxxx-yyyyyyyy, or the root r-xxxx) matched anywhere in the account's chain, or name
    # paths below the root ("Workloads/Prod") matched as a prefix of the account's OU path.
    ous: tuple[Pattern, ...] | None = None
    # Tag key -> accepted values (globs); the key must be present with a matching value.
    account_tags: dict[Annotated[str, Field(min_length=1, max_length=TAG_KEY_MAX)], tuple[str, ...]] | None = None
    environment_names: tuple[Pattern, ...] | None = None
    role_names: tuple[Pattern, ...] | None = None
    component_role_names: tuple[Pattern, ...] | None = None
    codebuild_role_names: tuple[Pattern, ...] | None = None
    regions: tuple[Pattern, ...] | None = None

    @field_validator(
        "account_ids",
        "ous",
        "environment_names",
        "role_names",
        "component_role_names",
        "codebuild_role_names",
        "regions",
    )
    @classmethod
    def _non_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return _no_empty_list(value)

    @field_validator("ous")
    @classmethod
    def _check_ous(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        cleaned: list[str] = []
        for entry in value:
            if entry.startswith("ou-") and not OU_ID.fullmatch(entry):
                raise ValueError(f"{entry!r} looks like an OU ID but is not one (expected ou-xxxx-yyyyyyyy)")
            if entry.startswith("r-") and "/" not in entry and not ROOT_ID.fullmatch(entry):
                raise ValueError(f"{entry!r} looks like a root ID but is not one (expected r-xxxx)")
            if entry.startswith(("ou-", "r-")) and "/" not in entry:
                cleaned.append(entry)
                continue
            path = entry.strip("/ ")
            if not path:
                raise ValueError("an empty OU path matches nothing: leave 'ous' out to match any account")
            if path.lower().startswith("root/") or path.lower() == "root":
                raise ValueError(f"{entry!r}: OU paths start below the root (write 'Workloads/Prod', not 'Root/...')")
            if any(ch in WILDCARDS for ch in path):
                raise ValueError(f"{entry!r}: OU paths are prefixes, not globs; wildcards are not allowed")
            cleaned.append(path)
        return tuple(cleaned)

    @field_validator("account_tags", mode="before")
    @classmethod
    def _tag_value_lists(cls, value: Any) -> Any:
        # A single value is the common case; accept it bare and treat it as a list of one.
        if isinstance(value, dict):
            return {key: [accepted] if isinstance(accepted, str) else accepted for key, accepted in value.items()}
        return value

    @field_validator("account_tags")
    @classmethod
    def _check_tags(cls, value: dict[str, tuple[str, ...]] | None) -> dict[str, tuple[str, ...]] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("an empty tag map is meaningless: leave 'account_tags' out to match any account")
        for key, patterns in value.items():
            if not patterns:
                raise ValueError(f'tag {key!r}: an empty list matches nothing (use "*" for any value)')
            for pattern in patterns:
                if len(pattern) > TAG_VALUE_MAX * 2:
                    raise ValueError(f"tag {key!r}: pattern longer than {TAG_VALUE_MAX * 2} characters")
        return value

    @field_validator("regions")
    @classmethod
    def _check_regions(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for region in value or ():
            if not has_wildcard(region) and not is_region(region):
                raise ValueError(f"{region!r} is not an AWS region name (like 'eu-west-1')")
        return value

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in CONDITION_FIELDS)


CONDITION_FIELDS: tuple[str, ...] = tuple(Conditions.model_fields)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=RULE_NAME)
    description: str | None = Field(default=None, max_length=1000)
    action: Action
    # A rule without conditions matches every request: useful only as the last rule.
    when: Conditions = Conditions()


class RuleDocument(BaseModel):
    """The JSON document stored in SSM. `mode` has no default: whoever deploys rules says whether they act."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    description: str | None = Field(default=None, max_length=1000)
    mode: Mode
    default_action: Action = "hold"
    # Length limits are checked here rather than with Field(min_length=...), which pydantic also reports
    # (as "0 items") whenever any single rule is invalid.
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _check_rules(self) -> RuleDocument:
        if not self.rules:
            raise ValueError("there are no rules")
        if len(self.rules) > MAX_RULES:
            raise ValueError(f"at most {MAX_RULES} rules")
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules, start=1):
            if rule.name in seen:
                raise ValueError(
                    f"rule names must be unique: {rule.name!r} is used by rule #{seen[rule.name]} and rule #{index}"
                )
            seen[rule.name] = index
        return self


# --------------------------------------------------------------------------------------------------
# Problems: what the engine receives instead of a rule set when there is none it can trust.


@dataclass(frozen=True)
class RuleError:
    """One thing wrong with a rule document, located by rule (1-based, as people count) and field."""

    message: str
    rule_index: int | None = None
    rule_name: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where: list[str] = []
        if self.rule_index is not None:
            where.append(f"rule #{self.rule_index}" + (f" {self.rule_name!r}" if self.rule_name else ""))
        if self.field:
            where.append(f"field {self.field!r}")
        return (", ".join(where) + ": " if where else "") + self.message


@dataclass(frozen=True)
class RuleSetProblem:
    """There is no usable rule set: every request is held until this is fixed."""

    kind: ProblemKind
    message: str
    errors: tuple[RuleError, ...] = ()
    source: str = "rules"

    def describe(self) -> str:
        lines = [f"{self.source}: {self.kind}: {self.message}"]
        lines.extend(f"  - {error}" for error in self.errors)
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Parsing: text in, a RuleDocument or a RuleSetProblem out. Never raises for bad input.

_MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "document": tuple(RuleDocument.model_fields),
    "rule": tuple(Rule.model_fields),
    "when": CONDITION_FIELDS,
}


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys without a word; in a rule that silently changes meaning.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(f"key {key!r} appears twice in the same object")
        out[key] = value
    return out


def _rule_name_at(raw: Any, index: int) -> str | None:
    rules = raw.get("rules") if isinstance(raw, dict) else None
    if isinstance(rules, list) and 0 <= index < len(rules) and isinstance(rules[index], dict):
        name = rules[index].get("name")
        return name if isinstance(name, str) else None
    return None


def _translate(error: Mapping[str, Any], raw: Any) -> RuleError:
    loc = tuple(error.get("loc", ()))
    rule_index: int | None = None
    rule_name: str | None = None
    rest: tuple[Any, ...] = loc
    level = "document"
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rule_index = loc[1] + 1
        rule_name = _rule_name_at(raw, loc[1])
        rest = loc[2:]
        level = "rule"
        if rest and rest[0] == "when":
            level = "when" if len(rest) == 2 else level
    parts: list[str] = []
    for item in rest:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    field_name = "".join(parts) or None
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        unknown = str(rest[-1]) if rest else ""
        known = _MODEL_FIELDS[level]
        guess = difflib.get_close_matches(unknown, known, n=1, cutoff=0.85)
        hint = f" (did you mean {guess[0]!r}?)" if guess else f" (known fields: {', '.join(known)})"
        message = "unknown field" + hint
    elif error.get("type") == "missing":
        message = "required field is missing"
    elif error.get("type") == "literal_error":
        message = f"{message} (got {error.get('input')!r})"
    return RuleError(message=message, rule_index=rule_index, rule_name=rule_name, field=field_name)


def _duplicate_names(raw: Mapping[str, Any]) -> tuple[RuleError, ...]:
    # The model checks names only once every rule is valid; say it now so one round of fixes is enough.
    rules = raw.get("rules")
    if not isinstance(rules, list):
        return ()
    seen: dict[str, int] = {}
    found: list[RuleError] = []
    for index, rule in enumerate(rules, start=1):
        name = rule.get("name") if isinstance(rule, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            found.append(RuleError(f"the name is already used by rule #{seen[name]}", index, name, "name"))
        else:
            seen[name] = index
    return tuple(found)


def parse_document(text: str | bytes | None, *, source: str = "rules") -> RuleDocument | RuleSetProblem:
    """Validate a rule document without compiling it."""
    if text is None:
        return RuleSetProblem("missing", "there is no rule document", source=source)
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > MAX_DOCUMENT_BYTES:
        return RuleSetProblem(
            "oversized",
            f"the document is {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes (64 KiB)",
            source=source,
        )
    if not data.strip():
        return RuleSetProblem("empty", "the rule document is empty", source=source)
    try:
        raw = loads_bounded(
            data,
            max_bytes=MAX_DOCUMENT_BYTES,
            max_depth=MAX_DOCUMENT_DEPTH,
            what="the rule document",
            object_pairs_hook=_no_duplicate_keys,
        )
    except _DuplicateKeyError as exc:
        return RuleSetProblem("invalid", "not a valid rule document", (RuleError(str(exc)),), source=source)
    except JsonLimitError as exc:
        return RuleSetProblem("invalid" if exc.problem == "invalid" else "oversized", str(exc), source=source)
    if not isinstance(raw, dict):
        return RuleSetProblem("invalid", f"the document must be a JSON object, not {type(raw).__name__}", source=source)
    rules = raw.get("rules")
    if isinstance(rules, list) and len(rules) > MAX_RULES:
        return RuleSetProblem(
            "oversized", f"the document has {len(rules)} rules; the limit is {MAX_RULES}", source=source
        )
    # A document that says nothing about rules is "empty"; one with a misspelt key is "invalid" (and says so).
    if rules == [] or ("rules" not in raw and set(raw) <= set(RuleDocument.model_fields)):
        return RuleSetProblem("empty", "the rule document has no rules", source=source)
    try:
        return RuleDocument.model_validate(raw)
    except ValidationError as exc:
        # The model's own uniqueness error is replaced by _duplicate_names, which locates each repeat.
        errors = tuple(
            _translate(error, raw) for error in exc.errors() if error.get("loc") or "unique" not in error["msg"]
        ) + _duplicate_names(raw)
        count = len(errors)
        return RuleSetProblem(
            "invalid", f"{count} problem{'s' if count != 1 else ''} in the rule document", errors, source=source
        )
