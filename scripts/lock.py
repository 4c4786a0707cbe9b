"""What is derived from uv.lock, the one lock file: the Lambda's requirements.txt, and the pip line that bootstraps uv.

    python scripts/lock.py requirements          # rewrite requirements.txt (`make lock` runs this)
    python scripts/lock.py requirements --check  # exit 1 if requirements.txt is not what uv.lock gives
    python scripts/lock.py bootstrap             # print uv's pin and hashes from uv.lock, for `pip --require-hashes`

requirements.txt, what `chalice package` bundles into the Lambda zip, is the runtime part of the lock
(pyproject's `dependencies` and everything they pull in, boto3 and botocore included; no dev extra), each
pinned with its hashes, as `uv export --frozen` gives it: offline, from the lock alone. The lock's own
environment marker (Linux x86_64, Python 3.11) is left off every line: it holds for Lambda by construction, and
pip would evaluate it on the machine running `chalice package`, not on Lambda.

Standard library only: `make setup` runs `bootstrap` before anything is installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "uv.lock"
REQUIREMENTS = REPO / "requirements.txt"
HEADER = (
    "# GENERATED from uv.lock by `make lock` (scripts/lock.py). Do not edit by hand: change pyproject.toml,\n"
    "# then run `make lock`. What `chalice package` bundles into the Lambda zip: the runtime dependencies,\n"
    "# boto3 and botocore included, at the versions the tests run (README.md, Dependencies).\n"
)


def load_lock(lock: Path = LOCK) -> dict[str, Any]:
    return tomllib.loads(lock.read_text())


def locked_package(name: str, lock: dict[str, Any]) -> dict[str, Any]:
    """The lock's entry for one package; a clear error when the lock has none."""
    for package in lock.get("package", []):
        if package.get("name") == name:
            entry: dict[str, Any] = package
            return entry
    raise SystemExit(f"uv.lock has no {name!r} package: add it to pyproject.toml's dev extra and run `make lock`")


def bootstrap_requirement(lock: dict[str, Any]) -> str:
    """`uv==<locked version>` with the hashes of its locked wheels: a requirements line pip checks."""
    uv = locked_package("uv", lock)
    hashes = [wheel["hash"] for wheel in uv.get("wheels", [])]
    if not hashes:
        raise SystemExit("uv.lock pins uv without wheels: run `make lock`")
    return f"uv=={uv['version']} " + " ".join(f"--hash={digest}" for digest in hashes) + "\n"


def uv_binary() -> str:
    """The uv installed beside this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise SystemExit("uv not found: run `make setup` (it installs uv into .venv)")
    return found


def render_requirements(lock: dict[str, Any]) -> str:
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
    for marker in lock.get("supported-markers", []):
        text = text.replace(f" ; {marker}", "")
    return HEADER + text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    requirements = commands.add_parser("requirements", help="write requirements.txt from uv.lock")
    requirements.add_argument("--check", action="store_true", help="only compare; exit 1 when it differs")
    commands.add_parser("bootstrap", help="print uv's locked pin and hashes, for pip --require-hashes")
    args = parser.parse_args(argv)
    lock = load_lock()
    if args.command == "bootstrap":
        sys.stdout.write(bootstrap_requirement(lock))
        return 0
    wanted = render_requirements(lock)
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
