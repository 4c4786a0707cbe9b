"""Add compiled bytecode to a Lambda deployment zip (scripts/package.sh runs it on Chalice's zip).

    python scripts/compile_package.py out/prod/deployment.zip

Lambda's /var/task is read-only: without .pyc files in the package, every cold start compiles every module it
imports from source, about half of a cold start's CPU (benchmarks/coldstart.py). The bytecode is compiled by this
interpreter, which must be the runtime's version (the lock is for Python 3.11, as the functions are), with
unchecked hashes (Python never stats the source to validate it: the package is immutable) and paths as Lambda
sees them (/var/task/...), so tracebacks read the same.
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

TASK_ROOT = "/var/task"


def compile_zip(path: Path) -> int:
    """Rewrite the zip with a __pycache__/*.cpython-3XX.pyc beside each .py; returns how many were added."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "task"
        with zipfile.ZipFile(path) as archive:
            archive.extractall(root)
            infos = {info.filename: info for info in archive.infolist()}
        ok = compileall.compile_dir(
            root,
            quiet=1,
            stripdir=str(root),
            prependdir=TASK_ROOT,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            workers=1,
        )
        if not ok:
            raise SystemExit(f"compile_package: some modules in {path} do not compile")
        rebuilt = path.with_suffix(".tmp.zip")
        added = 0
        with zipfile.ZipFile(rebuilt, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, info in infos.items():  # the original entries, in order, with their permissions
                archive.writestr(info, (root / name).read_bytes() if not name.endswith("/") else b"")
            for pyc in sorted(root.rglob("*.pyc")):
                name = pyc.relative_to(root).as_posix()
                if name not in infos:
                    archive.write(pyc, name)
                    added += 1
        shutil.move(rebuilt, path)
    return added


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/compile_package.py DEPLOYMENT.zip", file=sys.stderr)
        return 2
    if sys.version_info[:2] != (3, 11):
        print("compile_package: run it with Python 3.11, the functions' runtime", file=sys.stderr)
        return 2
    added = compile_zip(Path(argv[0]))
    print(f"compile_package: {added} bytecode files added to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
