"""Write the management-account template with the member role template inlined as its StackSet's TemplateBody.

    python scripts/inline_member_role.py OUTDIR      (scripts/package.sh runs it)

`aws cloudformation package` uploads nested stacks' templates, not StackSets': the body goes in inline (it is far
below the StackSet's 51,200-byte limit).
"""

from __future__ import annotations

import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent.parent / "infra"
PLACEHOLDER = "TemplateBody: MEMBER_ROLE_TEMPLATE"


def inlined() -> str:
    management = (INFRA / "management-account.yaml").read_text()
    member = (INFRA / "member-role.yaml").read_text()
    [line] = [line for line in management.splitlines() if PLACEHOLDER in line]
    indent = " " * (len(line) - len(line.lstrip()))
    body = "\n".join(f"{indent}  {text}" if text else "" for text in member.splitlines())
    return management.replace(line, f"{indent}TemplateBody: |\n{body}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/inline_member_role.py OUTDIR", file=sys.stderr)
        return 2
    target = Path(argv[0]) / "management-account.yaml"
    target.write_text(inlined())
    print(f"inline_member_role: wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
