"""Create a stage's settings and rules parameters once, with safe defaults; never overwrite them.

    .venv/bin/python scripts/parameters.py --stage prod --region eu-west-1   (scripts/deploy.sh runs it)

They live outside the stack on purpose: CloudFormation writes an AWS::SSM::Parameter's Value again whenever any
part of its definition changes (even its Description), which would reset an operator's settings to `{}` (the
whole Organization). Here a value, once there, is the operator's: `PutParameter` without `Overwrite` leaves it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DEFAULT_SETTINGS: dict[str, Any] = {}  # the whole Organization, read-only access, the default role names
# Shadow mode, holding every request, until the operator writes rules.
DEFAULT_RULES: dict[str, Any] = {"version": 1, "mode": "shadow", "default_action": "hold", "rules": []}


def parameter_names(stage: str) -> dict[str, str]:
    return {"settings": f"/gatehouse/{stage}/settings", "rules": f"/gatehouse/{stage}/proton-rules"}


def ensure(ssm: Any, stage: str) -> dict[str, str]:
    """Create whichever of the stage's parameters is missing; returns name → "created" or "kept"."""
    defaults = {"settings": DEFAULT_SETTINGS, "rules": DEFAULT_RULES}
    done = {}
    for kind, name in parameter_names(stage).items():
        try:
            ssm.put_parameter(
                Name=name,
                Type="String",
                Tier="Standard",
                Value=json.dumps(defaults[kind]),
                Description=f"Gatehouse {kind} for stage {stage} (JSON); README.md, Deploy",
                Overwrite=False,
            )
            done[name] = "created"
        except ssm.exceptions.ParameterAlreadyExists:
            done[name] = "kept"
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--region", required=True)
    args = parser.parse_args(argv)
    import boto3

    for name, what in ensure(boto3.client("ssm", region_name=args.region), args.stage).items():
        print(f"parameter {name}: {what}" + (" (the operator's value, left alone)" if what == "kept" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
