"""The approval rule document: its schema, parsing with errors that name rule and field, matchers, lint."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chalicelib.core.identifiers import ACCOUNT_ID_PATTERN
from chalicelib.core.models import OU_ID
from chalicelib.core.safejson import JsonLimitError, loads_bounded

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

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

ACCOUNT_ID = ACCOUNT_ID_PATTERN  # twelve ASCII digits (pydantic's \d takes any script's digits)
RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
ROOT_ID = re.compile(r"^r-[0-9a-z]{4,32}$")
REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
# What IAM allows in a role name and in a role path, plus the two wildcards.
ROLE_PATTERN_CHARS = re.compile(r"^[\w+=,.@/*?-]+$", re.ASCII)
ROLE_NAME_MAX = 64
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
WILDCARDS = frozenset("*?")

# Slots of the per-request facts tuple the engine builds; compiled conditions read one slot each.
SLOT_ACCOUNT_ID = 0
SLOT_OU_KEYS = 1  # frozenset of the account's OU IDs and every prefix of its OU path, or None
SLOT_TAGS = 2  # the account's tags, or None when the account is not known to the Organization
SLOT_ENVIRONMENT_NAME = 3
SLOT_ROLE = 4  # (name, path/name), both lower-cased, or None when the request has no such role
SLOT_COMPONENT_ROLE = 5
SLOT_CODEBUILD_ROLE = 6
SLOT_REGION = 7

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

    account_ids: tuple[Annotated[str, Field(pattern=ACCOUNT_ID)], ...] | None = None
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
            if not _has_wildcard(region) and not REGION.fullmatch(region):
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
# Matchers, compiled once per rule set so a decision costs set look-ups and at most one regex per field.


def _has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _glob_to_regex(pattern: str) -> str:
    # Only * and ? are special: character classes would make shadowing analysis unsound for no real gain.
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)


class GlobSet:
    """Any-of matcher over glob patterns: literals in a set, wildcards in one alternation regex."""

    __slots__ = ("literals", "patterns", "regex")

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = False) -> None:
        self.patterns = tuple(patterns)
        normalised = [p.lower() if ignore_case else p for p in self.patterns]
        self.literals = frozenset(p for p in normalised if not _has_wildcard(p))
        wild = [p for p in normalised if _has_wildcard(p)]
        self.regex = re.compile("|".join(f"(?:{_glob_to_regex(p)})" for p in wild), re.S) if wild else None

    def __call__(self, value: str) -> bool:
        return value in self.literals or (self.regex is not None and self.regex.fullmatch(value) is not None)

    def __bool__(self) -> bool:
        return bool(self.patterns)


def _one_of(values: Iterable[str]) -> str:
    shown = list(values)
    if len(shown) == 1:
        return shown[0]
    head = ", ".join(shown[:8])
    return f"one of {head}" + (f" (+{len(shown) - 8} more)" if len(shown) > 8 else "")


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """One condition of a rule: `test` reads `facts[slot]`; `expected` says in words what it wants."""

    field: str
    slot: int
    test: Callable[[Any], bool]
    expected: str


def _account_ids_condition(values: tuple[str, ...]) -> CompiledCondition:
    accepted = frozenset(values)
    return CompiledCondition("account_ids", SLOT_ACCOUNT_ID, accepted.__contains__, _one_of(values))


def _ous_condition(values: tuple[str, ...]) -> CompiledCondition:
    # The engine gives the account's OU IDs plus every prefix of its OU path as one set, so "in this OU or
    # below" is a single disjointness test.
    keys = frozenset(values)

    def test(ou_keys: frozenset[str] | None) -> bool:
        return ou_keys is not None and not keys.isdisjoint(ou_keys)

    return CompiledCondition("ous", SLOT_OU_KEYS, test, "in OU " + _one_of(values) + " (or below)")


def _tags_condition(tags: Mapping[str, tuple[str, ...]]) -> CompiledCondition:
    required = tuple((key, GlobSet(patterns)) for key, patterns in tags.items())

    def test(account_tags: Mapping[str, str] | None) -> bool:
        if account_tags is None:
            return False
        for key, accepted in required:
            value = account_tags.get(key)
            if value is None or not accepted(value):
                return False
        return True

    expected = ", ".join(f"{key}={_one_of(matcher.patterns)}" for key, matcher in required)
    return CompiledCondition("account_tags", SLOT_TAGS, test, "tags " + expected)


def _glob_condition(name: str, slot: int, patterns: tuple[str, ...]) -> CompiledCondition:
    matcher = GlobSet(patterns)
    return CompiledCondition(name, slot, matcher, _one_of(patterns))


def _role_condition(name: str, slot: int, patterns: tuple[str, ...]) -> CompiledCondition:
    # IAM role names are unique regardless of case, so matching ignores case: a rule must not be
    # sidestepped by a request that spells the same role differently.
    by_name = GlobSet((p for p in patterns if "/" not in p), ignore_case=True)
    by_path = GlobSet((p for p in patterns if "/" in p), ignore_case=True)

    def test(role: tuple[str, str] | None) -> bool:
        if role is None:
            return False
        return (bool(by_name) and by_name(role[0])) or (bool(by_path) and by_path(role[1]))

    return CompiledCondition(name, slot, test, "role " + _one_of(patterns))


def compile_conditions(when: Conditions) -> tuple[CompiledCondition, ...]:
    # Cheapest and most selective first, so a non-matching rule is usually rejected by its first test.
    out: list[CompiledCondition] = []
    if when.account_ids is not None:
        out.append(_account_ids_condition(when.account_ids))
    if when.regions is not None:
        out.append(_glob_condition("regions", SLOT_REGION, when.regions))
    if when.environment_names is not None:
        out.append(_glob_condition("environment_names", SLOT_ENVIRONMENT_NAME, when.environment_names))
    if when.ous is not None:
        out.append(_ous_condition(when.ous))
    if when.account_tags is not None:
        out.append(_tags_condition(when.account_tags))
    if when.role_names is not None:
        out.append(_role_condition("role_names", SLOT_ROLE, when.role_names))
    if when.component_role_names is not None:
        out.append(_role_condition("component_role_names", SLOT_COMPONENT_ROLE, when.component_role_names))
    if when.codebuild_role_names is not None:
        out.append(_role_condition("codebuild_role_names", SLOT_CODEBUILD_ROLE, when.codebuild_role_names))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int  # 1-based position in the document
    rule: Rule
    conditions: tuple[CompiledCondition, ...]
    # The fast path: (slot, test) pairs, cheapest and most selective first.
    tests: tuple[tuple[int, Callable[[Any], bool]], ...]
    account_ids: frozenset[str] | None

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def action(self) -> Action:
        return self.rule.action

    def matches(self, facts: tuple[Any, ...]) -> bool:
        return all(test(facts[slot]) for slot, test in self.tests)


@dataclass
class RuleSet:
    """A parsed, validated and compiled rule document. Build it with `parse_ruleset`."""

    document: RuleDocument
    rules: tuple[CompiledRule, ...]
    digest: str
    source: str = "rules"
    # Rules that can apply to a given account, in document order: those naming it plus those naming no
    # account. Filled lazily, since most rule sets name far fewer accounts than they are asked about.
    _by_account: dict[str, tuple[CompiledRule, ...]] = field(default_factory=dict, repr=False)
    _unscoped: tuple[CompiledRule, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self._unscoped = tuple(rule for rule in self.rules if rule.account_ids is None)

    @property
    def mode(self) -> Mode:
        return self.document.mode

    @property
    def default_action(self) -> Action:
        return self.document.default_action

    def candidates(self, account_id: str) -> tuple[CompiledRule, ...]:
        found = self._by_account.get(account_id)
        if found is None:
            found = tuple(r for r in self.rules if r.account_ids is None or account_id in r.account_ids)
            if len(self._by_account) < 100_000:  # a bound, so a flood of unknown accounts cannot grow it
                self._by_account[account_id] = found
        return found


def compile_document(document: RuleDocument, *, digest: str = "", source: str = "rules") -> RuleSet:
    compiled: list[CompiledRule] = []
    for index, rule in enumerate(document.rules, start=1):
        conditions = compile_conditions(rule.when)
        compiled.append(
            CompiledRule(
                index=index,
                rule=rule,
                # Explanations follow the schema's order, as people read a rule; tests run cheapest first.
                conditions=tuple(sorted(conditions, key=lambda c: CONDITION_FIELDS.index(c.field))),
                tests=tuple((c.slot, c.test) for c in conditions),
                account_ids=frozenset(rule.when.account_ids) if rule.when.account_ids is not None else None,
            )
        )
    if not digest:
        canonical = json.dumps(document.model_dump(mode="json"), sort_keys=True).encode()
        digest = hashlib.sha256(canonical).hexdigest()[:12]
    return RuleSet(document=document, rules=tuple(compiled), digest=digest, source=source)


# --------------------------------------------------------------------------------------------------
# Parsing: text in, a RuleSet or a RuleSetProblem out. Never raises for bad input.

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


def parse_ruleset(text: str | bytes | None, *, source: str = "rules") -> RuleSet | RuleSetProblem:
    """Parse, validate and compile a rule document; anything wrong comes back as a RuleSetProblem."""
    parsed = parse_document(text, source=source)
    if isinstance(parsed, RuleSetProblem):
        return parsed
    data = text.encode("utf-8") if isinstance(text, str) else (text or b"")
    return compile_document(parsed, digest=hashlib.sha256(data).hexdigest()[:12], source=source)


def load_rules_from_ssm(client: SSMClient, parameter_name: str) -> RuleSet | RuleSetProblem:
    """Read and parse the deployed rule set; a missing or unreadable parameter is a problem, not an error."""
    from botocore.exceptions import BotoCoreError, ClientError

    source = f"ssm:{parameter_name}"
    try:
        response = client.get_parameter(Name=parameter_name, WithDecryption=True)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ParameterNotFound":
            return RuleSetProblem("missing", f"SSM parameter {parameter_name} does not exist", source=source)
        return RuleSetProblem("unreadable", f"SSM parameter {parameter_name} could not be read: {code}", source=source)
    except BotoCoreError as exc:
        return RuleSetProblem("unreadable", f"SSM parameter {parameter_name} could not be read: {exc}", source=source)
    return parse_ruleset(response.get("Parameter", {}).get("Value"), source=source)


# --------------------------------------------------------------------------------------------------
# Lint: findings on a rule set that parses but may not mean what its author thinks.


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
    if not _has_wildcard(specific):
        return GlobSet((general,))(specific)
    if general and set(general) == {"*"}:
        return True
    body = general[:-1]
    if general.endswith("*") and not _has_wildcard(body):
        return _literal_prefix(specific).startswith(body)
    tail = general[1:]
    if general.startswith("*") and not _has_wildcard(tail):
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
            if not _has_wildcard(last) and any(glob_covers(g, last) for g in wide if "/" not in g):
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
            elif not _has_wildcard(pattern.rsplit("/", 1)[-1]) and len(pattern.rsplit("/", 1)[-1]) > ROLE_NAME_MAX:
                found.append((name, f"{pattern!r}: IAM role names are at most {ROLE_NAME_MAX} characters"))
    for tag_key, accepted in (when.account_tags or {}).items():
        for pattern in accepted:
            if not _has_wildcard(pattern) and len(pattern) > TAG_VALUE_MAX:
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
