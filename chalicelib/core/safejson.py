"""JSON from outside, bounded: size and nesting are checked before (and depth also after) parsing.

Python's json module recurses once per nesting level, so a document nested a few thousand levels deep raises
RecursionError, an error no caller expects; a huge document costs memory before anyone looks at it. Every
parser of outside JSON (events, work items, settings, rule documents) goes through here, and gets the
project's own error naming the problem and the limit instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from chalicelib.core.errors import GatehouseError

Problem = Literal["oversize", "too-deep", "invalid"]

# A JSON string (escapes included), or one bracket: what the depth scan needs to see, found by the C regex engine.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_OPENERS = frozenset("[{")


class JsonLimitError(GatehouseError):
    """Outside JSON that is too large, nested too deeply, or not JSON at all; names the problem and the limit."""

    def __init__(self, message: str, *, problem: Problem, limit: int | None = None) -> None:
        super().__init__(message)
        self.problem: Problem = problem
        self.limit = limit


def loads_bounded(
    text: str | bytes | bytearray,
    *,
    max_bytes: int,
    max_depth: int,
    what: str = "the document",
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Parse `text` as JSON, refusing more than `max_bytes` (UTF-8) or more than `max_depth` nested containers."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(data) > max_bytes:
        raise JsonLimitError(
            f"{what} is {len(data):,} bytes; the limit is {max_bytes:,} bytes", problem="oversize", limit=max_bytes
        )
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonLimitError(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}", problem="invalid") from None
    depth = _text_depth(decoded, max_depth)
    if depth > max_depth:
        raise _too_deep(what, max_depth)
    try:
        return json.loads(decoded, object_pairs_hook=object_pairs_hook)
    except (RecursionError, MemoryError):  # pragma: no cover - the scan above stops both; kept as the last guard
        raise _too_deep(what, max_depth) from None
    except json.JSONDecodeError as exc:
        raise JsonLimitError(f"{what} is not valid JSON: {exc}", problem="invalid") from None


def check_depth(value: Any, max_depth: int, *, what: str = "the event") -> None:
    """Refuse an already-parsed value (a Lambda event) nested more than `max_depth` containers deep.

    Iterative, so it is safe on any depth; stops at the first container past the limit.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            raise _too_deep(what, max_depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))


def _text_depth(text: str, stop_after: int) -> int:
    """The deepest nesting of brackets outside strings (stops counting once past `stop_after`)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _too_deep(what: str, max_depth: int) -> JsonLimitError:
    return JsonLimitError(
        f"{what} is nested more than {max_depth} levels deep, the limit", problem="too-deep", limit=max_depth
    )
