"""The `gatehouse` command: the local sandbox and the operator's tools.

Exit codes, for every command: 0 ok, 1 a failure (or, for `plan`, an account refused), 2 a usage error or an
invalid input file (`plan`: 2 also means changes, like `terraform plan -detailed-exitcode`), 130 interrupted
(Ctrl-C), 141 when the reader of the output went away (`gatehouse ... | head`), quietly. No traceback without
`--debug`.

Only click is imported before a command runs: each command imports what it needs in its body, so `--help` and
usage errors answer at once.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_CLOSED_PIPE = 0, 1, 2, 130, 141
STAGE_VARIABLE = "GATEHOUSE_STAGE"
SCHEDULES = ("proton_sweep", "reconcile")
MAX_ACCOUNTS = 20_000

MAX_FILE_BYTES = 8 * 1024 * 1024  # a state of thousands of accounts, or an event, is far smaller
MAX_FILE_DEPTH = 32


class UsageError(Exception):
    """A problem with what the user asked for or gave: printed as one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="gatehouse", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:  # usage errors: wrong option, value out of range, missing argument
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except UsageError as exc:
        click.echo(f"gatehouse: {exc}", err=True)
        return EXIT_USAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("\ngatehouse: interrupted", err=True)
        return EXIT_INTERRUPTED
    except (_ClosedPipe, BrokenPipeError):
        _quiet_closed_pipe()
        return EXIT_CLOSED_PIPE
    except Exception as exc:
        if debug:
            raise
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        click.echo(f"gatehouse: {type(exc).__name__}: {first} (run with --debug for the traceback)", err=True)
        return EXIT_FAILED
    return int(result or 0)


class _ClosedPipe(Exception):
    """The reader of stdout went away. Not an OSError, so click does not handle it (it would exit 1 and silence
    stderr): main ends quietly with 141, as a command killed by SIGPIPE does."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _ClosedPipe from None


def _quiet_closed_pipe() -> None:
    """The reader went away (`| head`): point stdout at /dev/null so Python's exit flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def load_json_file(path: Path, what: str) -> Any:
    from chalicelib.core.safejson import JsonLimitError, loads_bounded

    try:
        return loads_bounded(
            path.read_bytes(), max_bytes=MAX_FILE_BYTES, max_depth=MAX_FILE_DEPTH, what=f"{what} {path}"
        )
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory: give a file") from None
    except JsonLimitError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise UsageError(f"{what} {path} is not valid JSON ({str(exc)[:200]}): fix it, or give another file") from None


# --- the command tree ------------------------------------------------------------------------------------
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(
    cls=_Group,
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  gatehouse sandbox demo                      the whole flow offline
  gatehouse plan --stage prod                 what Gatehouse would change in the Organization
  gatehouse doctor --stage prod               check a deployed stage, change nothing
  gatehouse rules validate rules.json         check a rule file before it goes into SSM
  gatehouse settings validate settings.json   check a settings document before it goes into SSM

Exit codes: 0 ok, 1 failure, 2 usage or invalid input (plan: 2 also means changes), 130 interrupted,
141 output pipe closed.""",
)
@click.version_option(package_name="gatehouse", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def cli(debug: bool) -> None:
    """Gatehouse: connect every account of an AWS Organization to Cloudcraft, decide connection requests by
    rules. Offline with `sandbox`; against a deployed stage with `--stage`."""


def stage_options(f: Any) -> Any:
    """--stage (or GATEHOUSE_STAGE), --region and --profile: every command that reads a deployed stage."""
    f = click.option("--profile", help="AWS CLI profile to use (default: your AWS configuration's).")(f)
    f = click.option("--region", help="Region of the deployment (default: your AWS configuration's).")(f)
    return click.option(
        "--stage",
        envvar=STAGE_VARIABLE,
        help=f"Deployed stage (dev, prod, ...; or set {STAGE_VARIABLE}). No default: name it.",
    )(f)


# --- sandbox ----------------------------------------------------------------------------------------------
@cli.group(context_settings=CONTEXT)
def sandbox() -> None:
    """Run Gatehouse offline: moto, a Cloudcraft emulator and the real handlers on 127.0.0.1.

    \b
    Examples:
      gatehouse sandbox demo
      gatehouse sandbox replay event.json --state state.json
      gatehouse sandbox replay --accounts 50 --schedule reconcile --work-minutes 30
    """


def output_options(f: Any) -> Any:
    f = click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        help="The handlers' structured logs on stderr at this level (default: none).",
    )(f)
    f = click.option("--verbose", "-v", is_flag=True, help="The handlers' logs on stderr (INFO).")(f)
    return click.option("--quiet", "-q", is_flag=True, help="Only the result: no progress lines.")(f)


def _log_level(quiet: bool, verbose: bool, log_level: str | None) -> str:
    if log_level:
        return log_level.upper()
    return "INFO" if verbose and not quiet else "CRITICAL"


@sandbox.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the final state as JSON instead of a report.")
@output_options
def demo(as_json: bool, quiet: bool, verbose: bool, log_level: str | None) -> int:
    """Seed an Organization, fire real-shaped events, and tell what happened, step by step."""
    from gatehouse.sandbox.demo import run_demo

    return run_demo(as_json=as_json, quiet=quiet, log_level=_log_level(quiet, verbose, log_level))


@sandbox.command(context_settings=CONTEXT)
@click.argument("events", nargs=-1, type=click.Path(path_type=Path), metavar="[EVENT.json]...")
@click.option("--state", type=click.Path(path_type=Path), help="STATE.json seeding the Organization, settings...")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True, help="Deliver each event N times.")
@click.option("--accounts", type=click.IntRange(0, MAX_ACCOUNTS), default=0, help="Seed N generated accounts.")
@click.option(
    "--schedule",
    multiple=True,
    type=click.Choice(SCHEDULES),
    help="After the events, run a scheduled handler (repeatable).",
)
@click.option(
    "--work-minutes",
    type=click.FloatRange(0, 7 * 24 * 60),
    default=0.0,
    help="Then run the fleet worker over N minutes of sandbox time.",
)
@output_options
def replay(
    *,
    events: tuple[Path, ...],
    state: Path | None,
    repeat: int,
    accounts: int,
    schedule: tuple[str, ...],
    work_minutes: float,
    quiet: bool,
    verbose: bool,
    log_level: str | None,
) -> int:
    """Deliver EventBridge event files to the handlers, then print the state as JSON.

    Every file is checked before the sandbox starts; the exit code is 1 when any event failed.
    """
    if not events and not schedule:
        raise UsageError("give at least one EVENT.json or --schedule NAME")
    document = _state_document(state)
    loaded = [(path, load_json_file(path, "event file")) for path in events]  # a bad file costs no sandbox start
    from gatehouse.sandbox.world import Sandbox, SandboxError, generated_accounts

    if accounts:
        document.setdefault("organization", {})["accounts"] = generated_accounts(accounts)
    say = _say(quiet)
    _quiet_logs(_log_level(quiet, verbose, log_level))
    say("Starting the sandbox (moto and the emulators on 127.0.0.1)...")
    try:
        with Sandbox(document) as world:
            for path, event in loaded:
                for _ in range(repeat):
                    delivery = world.deliver(event, source=str(path))
                    say(f"  {path}: {'FAILED: ' + delivery.error if delivery.error else 'delivered'}")
            for name in schedule:
                world.run_schedule(name)
                say(f"  schedule {name}: ran")
            if work_minutes:
                world.run_worker(for_seconds=work_minutes * 60)
                say(f"  fleet worker: {work_minutes:g} minutes of sandbox time")
            snapshot = world.snapshot()
            click.echo(json.dumps(snapshot, indent=2, default=str))
            # An account whose creation failed in AWS is told to ops: Gatehouse did its job, the event did not fail.
            failed = sum(not e["message"].startswith("creation-failed:") for e in world.errors)
    except SandboxError as exc:
        raise UsageError(str(exc)) from None
    if failed:
        click.echo(f"gatehouse: {failed} delivery or job failed (see errors in the state above)", err=True)
        return EXIT_FAILED
    return EXIT_OK


def _state_document(path: Path | None) -> dict[str, Any]:
    """A sandbox STATE file, checked as strictly as the sandbox will (unknown keys included), before it starts."""
    if path is None:
        return {}
    document = load_json_file(path, "state file")
    from gatehouse.sandbox.validate import StateError, check_state

    try:
        check_state(document)
    except StateError as exc:
        raise UsageError(f"state file {path}: {exc}") from None
    assert isinstance(document, dict)
    return document


def _say(quiet: bool) -> Any:
    def say(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    return say


def _quiet_logs(level: str) -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="aws_lambda_powertools")  # "no metrics to publish", per invocation

    logging.getLogger("gatehouse").setLevel(level)


# --- plan / apply -----------------------------------------------------------------------------------------
def source_options(f: Any) -> Any:
    f = click.option("--state", type=click.Path(path_type=Path), help="With --sandbox: seed from STATE.json.")(f)
    f = click.option(
        "--accounts", type=click.IntRange(0, MAX_ACCOUNTS), default=0, help="With --sandbox: seed N accounts."
    )(f)
    f = click.option("--sandbox", "use_sandbox", is_flag=True, help="Against a seeded offline sandbox, not AWS.")(f)
    return stage_options(f)


@cli.command(context_settings=CONTEXT)
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every account, not only those with changes.")
def plan(**options: Any) -> int:
    """Dry run over every account: what Gatehouse would change. Exit 0: nothing, 2: changes, 1: refused.

    \b
    Examples:
      gatehouse plan --stage prod --region eu-west-1
      gatehouse plan --sandbox --accounts 100 --all
    """
    from gatehouse.fleet_cli import run_plan

    return run_plan(_namespace(options))


@cli.command(context_settings=CONTEXT)
@source_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--queue", is_flag=True, help="Enqueue one work item per account for the fleet worker in AWS instead.")
def apply(**options: Any) -> int:
    """Carry the plan out at Cloudcraft's pace (shows the plan and asks first unless --yes).

    \b
    Examples:
      gatehouse apply --stage prod             review, confirm, apply from this shell
      gatehouse apply --stage prod --queue     let the deployed fleet worker apply it
    """
    from gatehouse.fleet_cli import run_apply

    return run_apply(_namespace(options))


def _namespace(options: dict[str, Any]) -> Any:
    from types import SimpleNamespace

    values = {**options, "sandbox": options.pop("use_sandbox", False)}
    values.setdefault("json", values.pop("as_json", False))
    values.setdefault("all", values.pop("show_all", False))
    if not values["sandbox"]:
        if values.get("accounts") or values.get("state"):
            raise UsageError("--accounts and --state go with --sandbox")
        if not values.get("stage"):
            raise UsageError(f"name the stage: --stage STAGE (or {STAGE_VARIABLE}=STAGE), or use --sandbox")
    elif values.get("state"):
        values["state_document"] = _state_document(values["state"])
    return SimpleNamespace(**values)


# --- rules ------------------------------------------------------------------------------------------------
@cli.group(context_settings=CONTEXT)
def rules() -> None:
    """Approval rules for connection requests: validate, test, show the deployed set.

    \b
    Examples:
      gatehouse rules validate rules.json
      gatehouse rules test rules.json --request connection.json --state state.json
      gatehouse rules show --stage prod
    """


@rules.command("validate", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path), metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def rules_validate(file: Path, as_json: bool) -> int:
    """Check a rule file (or - for stdin) against the schema and lint it. Exit 1 on errors."""
    from gatehouse.rules_cli import run_validate

    return int(run_validate(_rules_args(file=file, json=as_json)))


@rules.command("test", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path), metavar="FILE")
@click.option("--request", type=click.Path(path_type=Path), required=True, metavar="REQ.json", help="The request.")
@click.option("--state", type=click.Path(path_type=Path), metavar="STATE.json", help="The Organization.")
@click.option("--all", "show_all", is_flag=True, help="Also show how every rule fared.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def rules_test(file: Path, request: Path, state: Path | None, show_all: bool, as_json: bool) -> int:
    """Decide one request against a rule file; touches nothing."""
    from gatehouse.rules_cli import run_test

    return int(run_test(_rules_args(file=file, request=request, state=state, all=show_all, json=as_json)))


@rules.command("show", context_settings=CONTEXT)
@stage_options
@click.option("--parameter", help="SSM parameter name (default: /gatehouse/<stage>/proton-rules).")
@click.option("--raw", is_flag=True, help="Print the stored document as it is.")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed document and findings as JSON.")
def rules_show(
    *, stage: str | None, region: str | None, profile: str | None, parameter: str | None, raw: bool, as_json: bool
) -> int:
    """Print the deployed rule set of a stage (from SSM) with its findings."""
    from gatehouse.rules_cli import run_show

    if not parameter and not stage:
        raise UsageError(f"name the stage: --stage STAGE (or {STAGE_VARIABLE}=STAGE), or --parameter NAME")
    name = parameter or f"/gatehouse/{stage}/proton-rules"
    return int(run_show(_rules_args(parameter=name, region=region, profile=profile, raw=raw, json=as_json)))


def _rules_args(**values: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(**values)


# --- settings ---------------------------------------------------------------------------------------------
@cli.group(context_settings=CONTEXT)
def settings() -> None:
    """The settings document: check one before it goes into SSM, show a stage's.

    \b
    Examples:
      gatehouse settings validate settings.json
      gatehouse settings show --stage prod
    """


@settings.command("validate", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path), metavar="FILE")
def settings_validate(file: Path) -> int:
    """Check a settings document (or - for stdin) exactly as the deployed functions will. Exit 2 if invalid."""
    from gatehouse.settings_cli import run_validate

    return run_validate(file)


@settings.command("show", context_settings=CONTEXT)
@stage_options
def settings_show(stage: str | None, region: str | None, profile: str | None) -> int:
    """Print a stage's settings as the functions read them (defaults filled in), or why they are invalid."""
    from gatehouse.settings_cli import run_show

    if not stage:
        raise UsageError(f"name the stage: --stage STAGE (or {STAGE_VARIABLE}=STAGE)")
    return run_show(stage, region=region, profile=profile)


# --- doctor -----------------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@stage_options
@click.option("--sandbox", "use_sandbox", is_flag=True, help="Check a freshly seeded offline sandbox instead.")
@click.option("--sample", type=click.IntRange(0, 50), default=3, show_default=True, help="Accounts to assume into.")
def doctor(stage: str | None, region: str | None, profile: str | None, use_sandbox: bool, sample: int) -> int:
    """Check a deployed stage end to end and change nothing: one line per check, with the fix. Exit 1 if any fails.

    \b
    Examples:
      gatehouse doctor --stage prod --region eu-west-1
      gatehouse doctor --sandbox
    """
    from gatehouse.doctor import run_doctor

    if not use_sandbox and not stage:
        raise UsageError(f"name the stage: --stage STAGE (or {STAGE_VARIABLE}=STAGE), or use --sandbox")
    return run_doctor(stage=stage, region=region, profile=profile, sandbox=use_sandbox, sample=sample)


if __name__ == "__main__":
    sys.exit(main())
