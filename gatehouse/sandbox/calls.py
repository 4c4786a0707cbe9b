"""Counting the AWS API calls made in this process: for benchmarks and tests that assert on call counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def record_aws_calls() -> Iterator[list[str]]:
    """Every botocore API call made inside the block, as "service:Operation", in order."""
    from botocore.client import BaseClient

    calls: list[str] = []
    original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - a private method, patched on purpose

    def recording(client: Any, operation_name: str, api_params: Any) -> Any:
        calls.append(f"{client.meta.service_model.service_name}:{operation_name}")
        return original(client, operation_name, api_params)

    setattr(BaseClient, "_make_api_call", recording)  # noqa: B010
    try:
        yield calls
    finally:
        setattr(BaseClient, "_make_api_call", original)  # noqa: B010


@contextmanager
def count_aws_calls() -> Iterator[Counter[str]]:
    """The same, counted per "service:Operation"; the counts are filled in when the block ends."""
    counts: Counter[str] = Counter()
    with record_aws_calls() as calls:
        try:
            yield counts
        finally:
            counts.update(calls)
