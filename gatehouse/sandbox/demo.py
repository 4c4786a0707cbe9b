"""`gatehouse sandbox demo`: a scripted tour of what Gatehouse does, told readably."""

from __future__ import annotations

import json
from typing import Any

from gatehouse.sandbox import samples
from gatehouse.sandbox.world import DEFAULT_ACCOUNTS, Sandbox

DEMO_STATE: dict[str, Any] = {
    "organization": {
        "accounts": [
            *DEFAULT_ACCOUNTS[:1],
            {**DEFAULT_ACCOUNTS[1], "refuse_assume_role": 2},  # a fresh account still settling in
            *DEFAULT_ACCOUNTS[2:],
        ]
    },
    "settings": {"read_access_teams": ["platform"], "write_access_teams": ["platform"]},
    "cloudcraft": {
        # Registered earlier by hand under another name: must be updated, never added twice.
        "accounts": [{"name": "payments dev (manual)", "roleArn": "arn:aws:iam::444444444444:role/cloudcraft"}],
        "role_propagation_seconds": 15,
        "faults": {"rate_limit_next": 1},  # one 429 without Retry-After: Gatehouse waits 60 s and goes on
    },
}


DEMO_RULES: dict[str, Any] = {
    "version": 1,
    "mode": "enforce",
    "default_action": "hold",
    "rules": [
        {"name": "no-admin-roles", "action": "reject", "when": {"role_names": ["*Admin*"]}},
        {"name": "prod-needs-review", "action": "hold", "when": {"ous": ["Workloads/Prod"]}},
        {
            "name": "dev-teams",
            "action": "accept",
            "when": {"ous": ["Workloads/Dev"], "environment_names": ["dev-*"], "role_names": ["Proton*"]},
        },
    ],
}


def _connection(number: int, account: str, env: str, role: str, role_account: str = "") -> dict[str, Any]:
    arn = f"arn:aws:iam::{role_account or account}:role/{role}"
    return {
        "id": f"{number:08d}-aaaa-4bbb-8ccc-dddddddddddd",
        "environmentAccountId": account,
        "environmentName": env,
        "roleArn": arn,
        "codebuildRoleArn": f"arn:aws:iam::{account}:role/ProtonCodeBuild",
    }


DEMO_CONNECTIONS = [
    _connection(1, "444444444444", "dev-api", "ProtonEnvironmentRole"),
    _connection(2, "444444444444", "dev-tools", "ProtonAdminRole"),
    _connection(3, "333333333333", "prod-api", "ProtonEnvironmentRole"),
    _connection(4, "444444444444", "dev-web", "ProtonEnvironmentRole", role_account="999999999999"),
]
DEMO_STATE["proton_rules"] = DEMO_RULES
DEMO_STATE["proton"] = {"connections": DEMO_CONNECTIONS}


def demo_events() -> list[tuple[str, Any]]:
    malformed = samples.create_account_result("222222222222")
    del malformed["detail"]["serviceEventDetails"]["createAccountStatus"]
    new_account = samples.create_account_result("222222222222")
    return [
        ("New account (Organizations, name redacted)", new_account),
        ("The same event delivered again", new_account),
        (
            "New account vended by Control Tower (refuses AssumeRole at first)",
            samples.managed_account("333333333333", "payments-prod"),
        ),
        ("Account registered by hand earlier", samples.managed_account("444444444444", "payments-dev", update=True)),
        ("Account that opts out by tag", samples.create_account_result("555555555555")),
        (
            "Failed account creation",
            samples.create_account_result(None, state="FAILED", failure="EMAIL_ALREADY_EXISTS"),
        ),
        ("Malformed event", malformed),
    ]


class _Report(list[str]):
    """The demo's report: printed line by line as each step happens (`live`), or all at the end."""

    def __init__(self, live: bool) -> None:
        super().__init__()
        self.live = live

    def append(self, line: str) -> None:
        super().append(line)
        if self.live:
            print(line, flush=True)

    def extend(self, lines: Any) -> None:
        for line in lines:
            self.append(line)

    def __iadd__(self, lines: Any) -> _Report:  # type: ignore[override,misc]
        self.extend(lines)
        return self


def _starting(quiet: bool, log_level: str) -> None:
    import logging
    import sys
    import warnings

    warnings.filterwarnings("ignore", module="aws_lambda_powertools")  # "no metrics to publish", per invocation
    logging.getLogger("gatehouse").setLevel(log_level)
    if not quiet:
        print("Starting the sandbox (moto, the Cloudcraft and Proton emulators, on 127.0.0.1)...", file=sys.stderr)


def _state_lines(snapshot: dict[str, Any]) -> list[str]:
    """The end state: roles, registrations, Cloudcraft calls and notifications."""
    lines: list[str] = []
    lines += ["", "Cloudcraft roles in member accounts"]
    for role in snapshot["roles"]:
        policies = ", ".join(role["managed_policies"] + role["inline_policies"])
        lines.append(
            f"  {role['account_id']}  {role['role_name']}  trusts {role['trusted_principal']} "
            f"(external ID {role['external_id']})  {policies}"
        )
    lines += ["", "Cloudcraft registrations"]
    for account in snapshot["cloudcraft"]["accounts"]:
        lines.append(f"  {account['name']:<40} {account['roleArn']}  write: {account['writeAccess']}")
    lines += ["", "Cloudcraft API calls"]
    for request in snapshot["cloudcraft"]["requests"]:
        lines.append(f"  {request['method']:<6} {request['path']:<40} {request['status']}")
    lines += ["", "Notifications to ops (SNS subject | attributes)"]
    for note in snapshot["notifications"]:
        lines.append(f"  {note['subject']}")
        lines.append(f"      {json.dumps(note['attributes'], sort_keys=True)}")
    return lines


def run_demo(*, as_json: bool = False, quiet: bool = False, log_level: str = "CRITICAL") -> int:
    """`quiet`: the report at the end only, no progress; `as_json`: the final state as JSON, nothing else."""
    _starting(quiet, log_level)
    with Sandbox(DEMO_STATE) as sandbox:
        lines = _Report(live=not quiet and not as_json)
        lines += ["Gatehouse sandbox: moto, a Cloudcraft emulator and the real handlers, all on 127.0.0.1.", ""]
        lines.append(f"Organization: {len(sandbox.accounts)} accounts; Cloudcraft emulator at {sandbox.cloudcraft_url}")
        lines.append("")
        lines.append("Events")
        for title, event in demo_events():
            calls_before = len(sandbox.cloudcraft.requests_log())
            assumes_before = len(sandbox.moto.gate.calls)
            delivery = sandbox.deliver(event, source=title)
            calls = sandbox.cloudcraft.requests_log()[calls_before:]
            refused = sum(verdict != "allowed" for _, verdict in sandbox.moto.gate.calls[assumes_before:])
            lines.append(f"  - {title}")
            lines.append(f"      {_describe(delivery.result, delivery.error, delivery.attempts)}")
            summary = ", ".join(f"{call['method']} {call['status']}" for call in calls) or "none"
            cost = f"Cloudcraft calls: {summary}"
            if refused:
                cost += f"; AssumeRole refused {refused} time(s), retried with backoff (and the next role name)"
            lines.append(f"      {cost}")
        if sandbox.proton is not None:
            lines += ["", "Proton environment-account connection requests (rules in SSM, mode enforce)"]
            sandbox.deliver(samples.proton_connection_change(DEMO_CONNECTIONS[0]["id"]), source="Proton event")
            sandbox.run_schedule("proton_sweep")  # events are best-effort: the sweep finds the rest
            environments = {c["id"]: (c["environmentName"], c["environmentAccountId"]) for c in DEMO_CONNECTIONS}
            status = {c["id"]: c["status"] for c in sandbox.proton.connections()}
            for decision in sandbox.decisions():
                env, account = environments.get(decision["id"], ("?", "?"))
                rule = f"rule {decision['rule']}" if decision["rule"] else "no rule"
                lines.append(
                    f"  - {env} from {account}: {decision['decision']} ({rule}) -> now {status[decision['id']]}"
                )
                lines.append(f"      {decision['reason']}")
        lines += ["", "Drift, then the daily reconciliation (queued repairs, applied by the SQS fleet worker)"]
        lines += _drift_and_reconcile(sandbox)
        lines += ["", "An account leaves the Organization (settings.offboarding = deregister)"]
        delivery = sandbox.deliver(samples.close_account_result("333333333333"), source="CloseAccountResult")
        lines.append(
            f"  - CloseAccountResult 333333333333: {_describe(delivery.result, delivery.error, delivery.attempts)}"
        )
        snapshot = sandbox.snapshot()
        if as_json:
            print(json.dumps(snapshot, indent=2, default=str))
            return 0
        lines += _state_lines(snapshot)
        waited = snapshot["clock"]["elapsed_seconds"]
        lines += ["", f"Sandbox time: {waited:.1f} s of waits (Retry-After, backoff, Lambda retries), none of it real"]
        if not lines.live:
            print("\n".join(lines))
    return 0


def _drift_and_reconcile(sandbox: Sandbox) -> list[str]:
    """Someone attaches AdministratorAccess to a role by hand, and the API key changes owner: both repaired."""
    from moto.iam.models import iam_backends

    iam_backends["222222222222"]["global"].attach_role_policy(
        "arn:aws:iam::aws:policy/AdministratorAccess", "cloudcraft"
    )
    sandbox.cloudcraft.rotate_external_id("external-id-of-the-new-key-owner")
    sandbox.new_container()  # the next day's invocation: nothing cached from today
    lines = [
        "  - by hand: AdministratorAccess attached to 222222222222's role; the API key now belongs to another user"
    ]
    result = sandbox.run_schedule("reconcile")
    lines.append(f"  - reconcile: {result['outcome']}, {result['summary']}, {result['queued']} work items queued")
    responses = sandbox.drain_queue()
    failed = sum(len(response["batchItemFailures"]) for response in responses)
    lines.append(f"  - fleet_worker: {len(responses)} batch(es), {failed} failed item(s)")
    again = sandbox.run_schedule("reconcile")
    lines.append(f"  - reconcile again: {again['outcome']}, {again['summary']}")
    return lines


def _describe(result: Any, error: str | None, attempts: int) -> str:
    if error:
        return f"ERROR after {attempts} attempt(s): {error}"
    if not isinstance(result, dict):
        return f"result: {result!r}"
    retried = f" (delivered {attempts} times: EventBridge retried)" if attempts > 1 else ""
    return f"{result.get('outcome')}: {result.get('reason')}{retried}"
