"""The registration name template: literal text and three placeholders, nothing that could run or grow.

A template is literal text with `{account_id}`, `{account_name}` and `{ou_path}` in it; `{{` and `}}`
stand for literal braces. There are no format specs, conversions, attribute access or indexing (this is
not `str.format`), so no template can allocate without bound, reach object internals or fail when it
is rendered. Whether a template is valid is decided once, when settings are parsed (`template_errors`);
rendering (`render_name`) accepts any string and never raises.

The rendered name has control and format characters removed (they would reach the Cloudcraft UI and
its logs as they are), surrounding whitespace trimmed, and is cut to NAME_MAX characters. The Cloudcraft
API documents no limit for an account name; 100 is a choice that keeps names readable in its UI.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from typing import Literal

NAME_FIELDS = ("account_id", "account_name", "ou_path")
NAME_MAX = 100
ALLOWED = ", ".join(f"{{{name}}}" for name in NAME_FIELDS)

TokenKind = Literal["text", "field", "bad"]
# Removed from rendered names: control (Cc), format (Cf: bidi overrides, zero-width), surrogate (Cs),
# private-use (Co) and unassigned (Cn) characters.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _tokens(template: str) -> Iterator[tuple[TokenKind, str]]:
    """Split a template into literal text, known fields and bad pieces; every string splits."""
    i, size = 0, len(template)
    while i < size:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                yield "text", "{"
                i += 2
                continue
            close = template.find("}", i + 1)
            if close < 0:
                yield "bad", template[i:]
                return
            placeholder = template[i : close + 1]
            name = placeholder[1:-1]
            yield ("field", name) if name in NAME_FIELDS else ("bad", placeholder)
            i = close + 1
        elif ch == "}":
            if template.startswith("}}", i):
                yield "text", "}"
                i += 2
            else:
                yield "bad", "}"
                i += 1
        else:
            end = min((pos for pos in (template.find("{", i), template.find("}", i)) if pos >= 0), default=size)
            yield "text", template[i:end]
            i = end


def template_errors(template: str) -> list[str]:
    """What is wrong with a template, one message per bad piece; empty when it is valid."""
    problems: list[str] = []
    for kind, text in _tokens(template):
        if kind != "bad":
            continue
        if text == "}":
            problem = "a single '}' (write '}}' for a literal brace)"
        elif not text.endswith("}"):
            problem = f"{text!r} is never closed (write '{{{{' for a literal brace)"
        else:
            problem = f"placeholder {text!r} is not allowed"
        if problem not in problems:
            problems.append(problem)
    if problems:
        problems.append(
            f"allowed placeholders: {ALLOWED}, written exactly so (no format specs, conversions, attributes "
            "or indexes); '{{' and '}}' are literal braces"
        )
    return problems


def clean_name(text: str) -> str:
    """Without control and format characters, trimmed, and at most NAME_MAX characters."""
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in _REMOVED_CATEGORIES)
    return kept.strip()[:NAME_MAX].rstrip()


def render_name(template: str, values: Mapping[str, str]) -> str:
    """The registration name. Never raises: bad pieces (only in a template that skipped validation) stay
    literal, and a name that comes out empty falls back to the account ID."""
    parts = [values.get(text, "") if kind == "field" else text for kind, text in _tokens(template)]
    return clean_name("".join(parts)) or clean_name(values.get("account_id", ""))
