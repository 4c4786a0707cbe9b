"""Cold start to the first completed arrival: Gatehouse's on_account_arrival against the hand-written Lambda in
benchmarks/handwritten/arrival.py doing the same work, each in a fresh interpreter, alternately, in one run.

Run: .venv/bin/python benchmarks/coldstart.py [--runs 5]   (or `make bench`). Offline: the sandbox's moto server
and Cloudcraft emulator run in this process on 127.0.0.1; each measured function runs in a child process that
reaches them over HTTP, as a Lambda container would reach AWS. Figures per child, from its own start to the end
of its first invocation (imports included): CPU time (user + system) and peak resident memory (VmHWM).
Target (issue 11): Gatehouse at most 1.2x the hand-written Lambda on both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys
event = json.loads(sys.argv[2])
class Context:  # what Powertools reads of a Lambda context
    function_name = "gatehouse-bench-on_account_arrival"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:111111111111:function:gatehouse-bench-on_account_arrival"
    aws_request_id = "cold-start"
    log_group_name = "/aws/lambda/gatehouse-bench-on_account_arrival"
    def get_remaining_time_in_millis(self):
        return 300_000
if sys.argv[1] == "gatehouse":
    import app
    result = app.on_account_arrival(event, Context())
else:
    sys.path.insert(0, "benchmarks/handwritten")
    import arrival
    result = arrival.handler(event, None)
usage = resource.getrusage(resource.RUSAGE_SELF)
# The high-water mark of this program's memory (ru_maxrss would count the parent's, from before exec).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "rss_mb": hwm / 1024, "result": result}))
"""


def run_child(kind: str, event: dict[str, Any], pycache: str | None) -> dict[str, Any]:
    """`pycache`: a directory of compiled bytecode the child may use and fill (a package shipping .pyc files);
    None: every module compiled from source, as a Lambda package without .pyc files is on each cold start."""
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", CHILD, kind, json.dumps(event)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, choices=range(1, 21), metavar="1-20")
    args = parser.parse_args()

    import tempfile

    from gatehouse.sandbox import samples
    from gatehouse.sandbox.world import Sandbox

    modes = {"from source (no .pyc: a zip as chalice packages it)": None, "bytecode compiled": tempfile.mkdtemp()}
    kinds = ("gatehouse", "hand-written")
    count = len(modes) * len(kinds) * (args.runs + 1)
    accounts = [{"id": f"{710000000000 + i}", "name": f"cold-{i}", "ou": "Workloads"} for i in range(count)]
    state = {
        "organization": {"accounts": accounts},
        "cloudcraft": {"rate_limit": {"requests": 1000, "per_seconds": 60}},
    }
    figures: dict[tuple[str, str], list[dict[str, Any]]] = {(m, k): [] for m in modes for k in kinds}
    with Sandbox(state) as world:
        fresh = iter(accounts)
        for mode, pycache in modes.items():
            for i in range(args.runs + 1):  # the first of each fills the bytecode cache: not counted
                for kind in kinds:  # alternately, so machine load falls on both alike
                    measured = run_child(kind, samples.create_account_result(next(fresh)["id"]), pycache)
                    assert measured["result"]["outcome"] == "onboarded", measured
                    if i:
                        figures[(mode, kind)].append(measured)
        assert len(world.cloudcraft.accounts()) == count
    print(f"== cold start to the first completed arrival (median of {args.runs} fresh interpreters each)")
    cpu_of = {key: statistics.median(m["cpu"] for m in runs) for key, runs in figures.items()}
    for mode in modes:
        cpu = {k: statistics.median(m["cpu"] for m in figures[(mode, k)]) for k in kinds}
        rss = {k: statistics.median(m["rss_mb"] for m in figures[(mode, k)]) for k in kinds}
        print(f"-- {mode}")
        for kind in kinds:
            print(f"{kind:>13}: CPU {cpu[kind]:.2f} s, peak memory {rss[kind]:.0f} MB")
        print(
            f"ratio gatehouse / hand-written: CPU {cpu['gatehouse'] / cpu['hand-written']:.2f}, "
            f"peak memory {rss['gatehouse'] / rss['hand-written']:.2f} (target <= 1.2 each)"
        )
    source, compiled = modes
    print(
        "-- as each is deployed (Gatehouse's package ships bytecode: scripts/compile_package.py; a hand-written zip "
        f"does not): CPU ratio {cpu_of[(compiled, 'gatehouse')] / cpu_of[(source, 'hand-written')]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
