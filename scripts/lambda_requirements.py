"""requirements.txt (what `chalice package` bundles into the Lambda zip), generated from uv.lock.

    python scripts/lambda_requirements.py          # rewrite requirements.txt (`make lock` runs this)
    python scripts/lambda_requirements.py --check  # exit 1 if requirements.txt is not what uv.lock gives

The file is the runtime part of the lock (pyproject's `dependencies` and everything they pull in, boto3 and
botocore included; no dev extra), each pinned with its hashes, as `uv export --frozen` gives it: offline, from
the lock alone. The lock's own environment marker (Linux x86_64, Python 3.11) is left off every line: it holds
for Lambda by construction, and pip evaluates markers on the machine that runs `chalice package`, not on Lambda.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "uv.lock"
REQUIREMENTS = REPO / "requirements.txt"
HEADER = (
    "# GENERATED from uv.lock by `make lock` (scripts/lambda_requirements.py). Do not edit by hand: change\n"
    "# pyproject.toml, then run `make lock`. What `chalice package` bundles into the Lambda zip: the runtime\n"
    "# dependencies, boto3 and botocore included, at the versions the tests run (README.md, Dependencies).\n"
)


def uv_binary() -> str:
    """The uv installed beside this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise SystemExit("uv not found: run `make setup` (it installs uv into .venv)")
    return found


def lock_markers(lock: Path = LOCK) -> list[str]:
    """The environments the lock was resolved for (pyproject's [tool.uv] environments, as uv spells them)."""
    markers: list[str] = tomllib.loads(lock.read_text()).get("supported-markers", [])
    return markers


def render() -> str:
    """The requirements.txt uv.lock gives: the header, then uv's export with the lock's marker left off."""
    exported = subprocess.run(  # noqa: S603 - uv, with fixed arguments
        [
            uv_binary(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-header",
            "--format",
            "requirements.txt",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if exported.returncode != 0:
        raise SystemExit(f"uv export failed ({exported.returncode}):\n{exported.stderr}")
    text = exported.stdout
    for marker in lock_markers():
        text = text.replace(f" ; {marker}", "")
    return HEADER + text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when requirements.txt differs")
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        current = REQUIREMENTS.read_text() if REQUIREMENTS.exists() else ""
        if current != wanted:
            print(
                "requirements.txt is out of step with uv.lock (it is generated, never edited by hand): "
                "run `make lock` and commit both files",
                file=sys.stderr,
            )
            return 1
        return 0
    REQUIREMENTS.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
