#!/usr/bin/env bash
# Package one stage for CloudFormation: Chalice's SAM template merged with infra/resources.yaml.
# Usage: scripts/package.sh STAGE [OUTDIR]   (default OUTDIR: out/STAGE)
# Writes OUTDIR/sam.yaml, OUTDIR/deployment.zip, a copy of the us-east-1 forwarder template and the
# management-account template of delegated administrator mode (OUTDIR/management-account.yaml).
# Needs PyPI (Chalice downloads Lambda-compatible wheels); no AWS credentials.
set -euo pipefail

stage="${1:?usage: scripts/package.sh STAGE [OUTDIR]}"
cd "$(dirname "$0")/.."
out="${2:-out/$stage}"

if ! python3 -c "import json,sys; sys.exit(0 if sys.argv[1] in json.load(open('.chalice/config.json'))['stages'] else 1)" "$stage"; then
    echo "package: stage '$stage' is not in .chalice/config.json" >&2
    exit 2
fi

rm -rf "$out"
# Chalice wants a region even though the template uses only pseudo parameters; any region packages the same.
AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}" \
    "${CHALICE:-chalice}" package --stage "$stage" --merge-template infra/resources.yaml "$out"
# Bytecode in the zip: Lambda cannot cache it, so without it every cold start compiles every module it imports.
"${PYTHON:-python3}" scripts/compile_package.py "$out/deployment.zip"
# Every policy scoped to its stage, region and account (the policy files use wildcards: one file, every stage).
"${PYTHON:-python3}" scripts/stage_policies.py "$out/sam.yaml"
cp infra/forwarder-us-east-1.yaml "$out/"
# Delegated administrator mode: the management account's stack, with the member role inlined for its StackSet.
"${PYTHON:-python3}" scripts/inline_member_role.py "$out"
echo "packaged stage $stage into $out: $(ls "$out" | tr '\n' ' ')"
