"""Reading Cloudcraft's answers within bounds: a body too large, nested too deep or not JSON is an
UnreadableAnswer (a ValueError), never a RecursionError, MemoryError or an answer Gatehouse chokes on later."""

from __future__ import annotations

import json
from typing import Any

# Cloudcraft's largest answer is the account list, about 600 bytes per registration: 8 MiB is over 10,000.
MAX_BODY_BYTES = 8 * 1024 * 1024
# Its deepest answer is a policy document (document → Statement list → statement → Action list): 4 levels.
MAX_DEPTH = 32


class UnreadableAnswer(ValueError):
    """An answer that is not JSON Gatehouse can safely hold: the message says why, never what it held."""


def _no_constant(name: str) -> Any:
    raise UnreadableAnswer(f"non-standard JSON constant {name}")


def loads(text: str, *, max_depth: int = MAX_DEPTH, max_chars: int = MAX_BODY_BYTES) -> Any:
    """Parse `text` as JSON no larger than `max_chars` and nested no deeper than `max_depth`."""
    if len(text) > max_chars:
        raise UnreadableAnswer(f"{len(text)} characters, over the limit of {max_chars}")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except UnreadableAnswer:
        raise
    except RecursionError:
        # Past the interpreter's own recursion limit: nested far deeper than any answer of Cloudcraft's.
        raise UnreadableAnswer(f"nested deeper than {max_depth} levels") from None
    except (ValueError, MemoryError) as exc:  # JSONDecodeError; an integer too long to convert
        raise UnreadableAnswer(f"not JSON ({type(exc).__name__})") from None
    if depth_exceeds(value, max_depth):
        raise UnreadableAnswer(f"nested deeper than {max_depth} levels")
    return value


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` nests lists/objects deeper than `max_depth` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Any
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
