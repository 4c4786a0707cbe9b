"""Scope every function's policy to its stage, region and account, in a packaged template (scripts/package.sh).

    python scripts/stage_policies.py out/prod/sam.yaml

.chalice/policy-*.json name Gatehouse's resources with wildcards (`gatehouse-*-work`, `arn:aws:ssm:*:*:...`) because
Chalice copies them into the template as they are, and one file serves every stage. This rewrites each such
Resource of each role into `Fn::Sub` form naming `${Stage}`, `${AWS::Region}` and `${AWS::AccountId}`, so that a
dev stage's functions can reach nothing of prod's, even in the same account. ARNs of member accounts (IAM roles
assumed in other accounts) and Organizations keep their wildcards: they are not this stage's resources.
The template is written back in CloudFormation's long form (`Fn::Sub:` rather than `!Sub`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

# Services whose ARNs carry the deployment's region and account.
REGIONAL = ("ssm", "sqs", "sns", "dynamodb", "secretsmanager", "logs", "cloudwatch")


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: short intrinsics (!Ref, !GetAtt, !Sub, ...) become their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - YAML has no other node kind
        raise TypeError(node)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def stage_scoped(resource: Any) -> Any:
    """One Resource entry, scoped to the stage when it names a Gatehouse resource; others unchanged."""
    if not isinstance(resource, str) or "gatehouse" not in resource:
        return resource
    scoped = resource.replace("gatehouse-*-", "gatehouse-${Stage}-").replace("gatehouse/*/", "gatehouse/${Stage}/")
    for service in REGIONAL:
        scoped = scoped.replace(
            f"arn:aws:{service}:*:*:", f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:"
        )
    return {"Fn::Sub": scoped} if scoped != resource else resource


def scope_template(template: dict[str, Any]) -> int:
    """Rewrite the roles' policies in place; returns how many Resource entries were scoped."""
    changed = 0
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy.get("PolicyDocument", {}).get("Statement", []):
                entries = statement.get("Resource")
                many = isinstance(entries, list)
                scoped = [stage_scoped(entry) for entry in (entries if many else [entries])]
                changed += sum(new is not old for new, old in zip(scoped, entries if many else [entries], strict=True))
                statement["Resource"] = scoped if many else scoped[0]
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/stage_policies.py TEMPLATE.yaml", file=sys.stderr)
        return 2
    path = Path(argv[0])
    template = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    changed = scope_template(template)
    path.write_text(yaml.safe_dump(template, sort_keys=False, width=120))
    print(f"stage_policies: {changed} policy resources scoped to the stage, region and account in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
