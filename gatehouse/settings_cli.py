"""`gatehouse settings validate|show`: the settings document, checked by the deployed functions' own parser."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gatehouse.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError


def _text(file: Path) -> str:
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text()
    except FileNotFoundError:
        raise UsageError(f"settings file {file} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"settings file {file} is a directory: give a file") from None
    except UnicodeDecodeError:
        raise UsageError(f"settings file {file} is not UTF-8 text") from None


def run_validate(file: Path) -> int:
    """Exit 0 and print the effective settings when valid; exit 2 with one line per problem when not."""
    return _check(_text(file), source=f"settings file {file}", title=f"valid: {file}", invalid=EXIT_USAGE)


def _check(text: str, *, source: str, title: str, invalid: int) -> int:
    """Parse as the deployed functions do; print the effective settings, or the problems (exit `invalid`)."""
    from chalicelib.core.errors import ConfigurationError
    from chalicelib.core.settings import parse_settings_text

    try:
        settings = parse_settings_text(text, source=source)
    except ConfigurationError as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        return invalid
    print(title)
    print(json.dumps(settings.model_dump(mode="json"), indent=2, default=str))
    return EXIT_OK


def run_show(stage: str, *, region: str | None, profile: str | None) -> int:
    """The stage's settings parameter as the functions read it; exit 1 when missing or invalid."""
    from chalicelib.adapters.aws import aws_call
    from chalicelib.core.errors import AwsError
    from gatehouse.aws_cli import operator_session

    name = f"/gatehouse/{stage}/settings"
    ssm = operator_session(region, profile).client("ssm")
    try:
        with aws_call(f"ssm:GetParameter {name}"):
            text = ssm.get_parameter(Name=name)["Parameter"].get("Value", "")
    except AwsError as exc:
        print(f"gatehouse: {name} cannot be read with your credentials: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return _check(text, source=f"settings parameter {name}", title=f"ssm:{name}: valid", invalid=EXIT_FAILED)
