"""A sandbox STATE document checked before anything starts: unknown keys are errors, with a suggestion.

The settings inside it are checked by the deployed functions' own parser (chalicelib.core.settings), so a mistake
costs a second, not a sandbox start, and the state means what the operator thinks it means.
"""

from __future__ import annotations

import difflib
from typing import Any

ACCOUNT_KEYS = (
    "id",
    "name",
    "ou",
    "ou_ids",
    "tags",
    "status",
    "access_role",
    "refuse_assume_role",
    "refuse_assume_role_minutes",
    "role",
)
ROLE_KEYS = (
    "name",
    "trusted_account",
    "external_id",
    "permissions_boundary",
    "tags",
    "max_session",
    "managed_policies",
    "inline_policies",
)
REGISTRATION_KEYS = ("name", "roleArn", "readAccess", "writeAccess", "owned")
SHAPE: dict[str, Any] = {
    "organization": {"accounts": [dict.fromkeys(ACCOUNT_KEYS)], "management_account_id": None},
    "settings": None,  # checked by the settings parser itself
    "cloudcraft": {
        "accounts": [dict.fromkeys(REGISTRATION_KEYS)],
        "external_id": None,
        "rate_limit": {"requests": None, "per_seconds": None, "model": None},
        "role_propagation_seconds": None,
        "faults": {
            "rate_limit_next": None,
            "rate_limit_retry_after": None,
            "server_error_next": None,
            "fail_after_commit_next": None,
            "unverifiable_next": None,
        },
        "answers": None,  # checked by the emulator when it applies them
    },
    "proton": {"connections": None},
    "proton_rules": None,  # a rule document: `gatehouse rules validate` checks it; the functions hold on errors
    "sandbox": {"eventbridge_retries": None, "start": None, "seed": None, "plan_page_size": None},
}
SHAPE["organization"]["accounts"][0]["role"] = dict.fromkeys(ROLE_KEYS)


class StateError(ValueError):
    """Names the path inside the document, what is wrong, and the fix."""


def check_state(document: Any) -> None:
    if not isinstance(document, dict):
        raise StateError("must be a JSON object with some of: " + ", ".join(SHAPE))
    _check(document, SHAPE, "")
    from gatehouse.sandbox.proton_emulator import connection_problem
    from gatehouse.sandbox.world import SandboxError, _sandbox_options

    connections = (document.get("proton") or {}).get("connections") or []
    if not isinstance(connections, list):
        raise StateError("proton.connections: must be a list")
    for index, connection in enumerate(connections):
        problem = connection_problem(connection) if isinstance(connection, dict) else "must be an object"
        if problem:
            raise StateError(f"proton.connections[{index}]: {problem}")

    try:
        _sandbox_options(document.get("sandbox"))
    except SandboxError as exc:
        raise StateError(str(exc)) from None
    if isinstance(document.get("settings"), dict):
        from chalicelib.core.errors import ConfigurationError
        from chalicelib.core.settings import parse_settings

        try:  # the sandbox points Cloudcraft at its emulator on loopback
            parse_settings(document["settings"], allowed_hosts=("127.0.0.1", "localhost"))
        except ConfigurationError as exc:
            raise StateError(f"settings: {exc}") from None


def _check(value: Any, shape: Any, path: str) -> None:
    if shape is None:
        return
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise StateError(f"{path}: must be a list")
        for index, item in enumerate(value):
            _check(item, shape[0], f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        raise StateError(f"{path or 'the document'}: must be an object with some of: {', '.join(shape)}")
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in shape:
            close = difflib.get_close_matches(str(key), list(shape), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known here: {', '.join(shape)}"
            raise StateError(f"{where}: unknown key ({hint})")
        _check(item, shape[key], where)
