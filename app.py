"""Gatehouse's Lambda functions and their triggers. Wiring only: each handler hands its event to chalicelib.

Handlers import chalicelib.handlers on first call, not at module import: a cold start then pays for
boto3, pydantic and requests only when an event arrives, and importing app creates no client and reads nothing.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, CloudWatchEvent

from chalicelib.events import ARRIVAL_PATTERN

app = Chalice(app_name="gatehouse", configure_logs=False)  # Powertools owns logging


@app.on_cw_event(ARRIVAL_PATTERN, name="on_account_arrival")
def on_account_arrival(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.handlers import handle_account_arrival

    result: dict[str, Any] = handle_account_arrival(event.to_dict(), event.context)
    return result
