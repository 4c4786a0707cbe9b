"""The `gatehouse` command as a user runs it: a subprocess each, its exit code and the first line it prints."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GATEHOUSE = [sys.executable, "-c", "import sys; from gatehouse.cli import main; sys.exit(main())"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GATEHOUSE_"))}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull  # no local credentials at all
    return subprocess.run(  # noqa: S603 - our own interpreter and command
        [*GATEHOUSE, *args], cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def first_error(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.splitlines()[0] if done.stderr else ""


def test_help_names_every_group_with_examples_and_version() -> None:
    done = run("--help")
    assert done.returncode == 0
    for word in ("sandbox", "plan", "apply", "rules", "settings", "doctor", "Examples:", "Exit codes"):
        assert word in done.stdout
    version = run("--version")
    assert (version.returncode, version.stdout.split()[0]) == (0, "gatehouse")


@pytest.mark.parametrize(("group", "commands"), [("sandbox", ("demo", "replay")), ("rules", ("validate", "show"))])
def test_a_group_alone_prints_its_own_help(group: str, commands: tuple[str, ...]) -> None:
    done = run(group)
    text = done.stdout + done.stderr
    assert done.returncode in (0, 2)
    assert all(command in text for command in commands)
    assert "doctor" not in text  # not the top-level help


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("sandbox", "replay", "--accounts", "-3"), "--accounts"),
        (("sandbox", "replay", "--schedule", "nightly"), "--schedule"),
        (("sandbox", "replay", "--repeat", "0"), "--repeat"),
        (("sandbox", "replay"), "give at least one EVENT.json or --schedule NAME"),
        (("plan",), "name the stage: --stage STAGE (or GATEHOUSE_STAGE=STAGE), or use --sandbox"),
        (("apply", "--accounts", "3"), "--accounts and --state go with --sandbox"),
        (("doctor",), "name the stage"),
        (("settings", "show"), "name the stage"),
        (("plan", "--stage", "prod", "--region", "eu-west-1"), "no AWS credentials found"),
        (("settings", "validate", "missing.json"), "settings file missing.json does not exist"),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_no_traceback(args: tuple[str, ...], says: str) -> None:
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_local_credentials_are_not_blamed_on_the_functions() -> None:
    done = run("settings", "show", "--stage", "prod", "--region", "eu-west-1")
    assert done.returncode == 2
    assert first_error(done).startswith("gatehouse: no AWS credentials found: this is about the credentials on this")
    assert "function" in first_error(done)  # says it is *not* the functions' permissions


def test_settings_validate_checks_as_the_functions_do(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"scope_ous": ["ou-ab12-cd34efgh"], "reconcile": "report"}))
    done = run("settings", "validate", str(good))
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == f"valid: {good}"
    assert json.loads(done.stdout.split("\n", 1)[1])["reconcile"] == "report"

    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"scope_ou": ["ou-ab12-cd34efgh"]}))
    done = run("settings", "validate", str(typo))
    assert done.returncode == 2
    assert first_error(done) == (
        f"gatehouse: settings file {typo} is invalid: scope_ou: unknown field (did you mean 'scope_ous'?)"
    )
    stdin = run("settings", "validate", "-", stdin='{"offboarding": "keep"}')
    assert stdin.returncode == 0


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.json"
    folder.mkdir()
    done = run("rules", "validate", str(folder))
    assert done.returncode in (1, 2)
    assert "Traceback" not in done.stderr
    assert first_error(done).startswith("gatehouse: ")


def test_a_closed_pipe_ends_quietly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    example = str(REPO / "examples" / "proton-rules.json")
    process = subprocess.Popen(  # noqa: S603
        [*GATEHOUSE, "rules", "validate", example, "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # the reader goes away before the command writes, as `| head -0` would
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141  # as a command killed by SIGPIPE
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr


def _pty_run(args: list[str], answers: dict[str, str], *, interrupt_on: str = "") -> tuple[int, str]:
    """Run the command on a pseudo-terminal; answer prompts; send Ctrl-C when `interrupt_on` appears."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    main, secondary = pty.openpty()
    process = subprocess.Popen(  # noqa: S603
        [*GATEHOUSE, *args], cwd=REPO, env=env, stdin=secondary, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    seen = b""
    pending = dict(answers)
    interrupted = False
    while True:
        ready, _, _ = select.select([main], [], [], 300)
        if not ready:
            process.kill()
            raise AssertionError(f"no output for 300 s; so far: {seen.decode(errors='replace')[-500:]}")
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the command ended and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        text = seen.decode(errors="replace")
        for prompt in list(pending):
            if prompt in text:
                os.write(main, pending.pop(prompt).encode())
        if interrupt_on and not interrupted and interrupt_on in text:
            process.send_signal(signal.SIGINT)
            interrupted = True
    os.close(main)
    return process.wait(timeout=120), seen.decode(errors="replace")


def test_apply_on_a_terminal_asks_then_shows_a_clean_progress_bar_in_sandbox_time() -> None:
    code, text = _pty_run(["apply", "--sandbox", "--accounts", "3"], {"Apply these changes? [y/N]": "y\n"})
    assert code == 0, text
    assert "Apply these changes? [y/N]" in text
    assert "Cloudcraft writes left, ETA" in text
    assert "of sandbox time" in text
    assert "sss" not in text  # a shorter redraw blanks what the longer line left
    assert "Applied 3 accounts" in text


def test_apply_declined_on_a_terminal_changes_nothing() -> None:
    code, text = _pty_run(["apply", "--sandbox", "--accounts", "2"], {"Apply these changes? [y/N]": "n\n"})
    assert code == 2, text  # changes remain, as plan would say
    assert "Nothing changed." in text


def test_ctrl_c_ends_quietly_with_130() -> None:
    code, text = _pty_run(["sandbox", "demo"], {}, interrupt_on="Starting the sandbox")
    assert code == 130, text
    assert "gatehouse: interrupted" in text
    assert "Traceback" not in text


def test_doctor_checks_the_sandbox_and_says_each_result() -> None:
    done = run("doctor", "--sandbox")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:9]] == [
        "PASS  stack",
        "PASS  settings",
        "PASS  rules",
        "PASS  Cloudcraft API key",
        "PASS  trust principal",
        "PASS  access role",
        "PASS  dead-letter queues",
        "PASS  alarms",
        "PASS  last reconciliation",
    ]
    assert lines[-1] == "9 passed, 0 failed"


def test_rules_test_says_why_a_real_request_is_held_and_the_way_out(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "environmentAccountId": "444444444444",
                "environmentName": "dev-api",
                "roleArn": "arn:aws:iam::444444444444:role/ProtonEnvironmentRole",
                "managementAccountId": "123456789012",
            }
        )
    )
    done = run("rules", "test", str(REPO / "examples" / "proton-rules.json"), "--request", str(request))
    assert done.returncode == 0
    assert first_error(done) == (
        "gatehouse: held because the request names management account 123456789012, and this test assumes "
        "111111111111: pass --state with organization.management_account_id set to it"
    )
