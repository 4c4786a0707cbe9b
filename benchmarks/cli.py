"""How fast the operator's CLI answers `--help` and a usage error: a fresh interpreter per run, against a bare
`python -c pass` in the same run (what no CLI at all costs). Target (issue 12): help in under 300 ms.

Run: .venv/bin/python benchmarks/cli.py   (or `make bench`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 9
CLI = "import sys; from gatehouse.cli import main; sys.exit(main())"


def median_ms(*args: str) -> float:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, check=False)  # noqa: S603
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    baseline = median_ms("-c", "pass")
    print(f"== gatehouse CLI start-up (median of {RUNS} fresh interpreters; wall time, machine load included)")
    print(f"{'python -c pass (baseline)':<40} {baseline:7.0f} ms")
    for label, args in (
        ("gatehouse --help", ["--help"]),
        ("gatehouse rules --help", ["rules", "--help"]),
        ("gatehouse sandbox replay --accounts -3", ["sandbox", "replay", "--accounts", "-3"]),
    ):
        took = median_ms("-c", CLI, *args)
        print(f"{label:<40} {took:7.0f} ms  ({took - baseline:.0f} ms over the baseline; target < 300 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
