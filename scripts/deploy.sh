#!/usr/bin/env bash
# Deploy one packaged stage: upload the code, create or update the stack gatehouse-STAGE in the current region,
# and, when that region is not us-east-1, the Organizations event forwarder stack in us-east-1.
# Usage: ARTIFACT_BUCKET=<bucket> scripts/deploy.sh STAGE      (`make deploy STAGE=... ARTIFACT_BUCKET=...`)
# Needs: AWS CLI v2 and credentials in the account Gatehouse runs in (README.md, Deploy, "Prerequisites"),
# scripts/package.sh STAGE run first, and ARTIFACT_BUCKET: an S3 bucket in the deployment region.
# Optional: RECONCILE_SCHEDULE, PROTON_SWEEP_SCHEDULE (EventBridge schedule expressions), CLOUDCRAFT_ALLOWED_HOSTS
# (Cloudcraft API hosts besides api.cloudcraft.co, comma-separated; README.md, Settings), MANAGEMENT_ACCOUNT_ID
# (delegated administrator mode: the management account whose forwarded events Gatehouse's bus accepts).
set -euo pipefail

stage="${1:?usage: ARTIFACT_BUCKET=<bucket> scripts/deploy.sh STAGE}"
cd "$(dirname "$0")/.."
out="out/$stage"
stack="gatehouse-$stage"

die() { echo "deploy: $*" >&2; exit 2; }

[ -f "$out/sam.yaml" ] || die "$out/sam.yaml is missing: run scripts/package.sh $stage (make package STAGE=$stage)"
bucket="${ARTIFACT_BUCKET:-}"
[ -n "$bucket" ] || die "set ARTIFACT_BUCKET to an S3 bucket in the deployment region (it receives the code zip)"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
[ -n "$region" ] || die "no region: set AWS_REGION (or a region in your AWS CLI profile)"

account="$(aws sts get-caller-identity --region "$region" --query Account --output text)"
echo "deploying $stack to account $account, region $region"

# The settings and rules parameters: created once with safe defaults, never overwritten (not in the stack).
"${PYTHON:-.venv/bin/python}" scripts/parameters.py --stage "$stage" --region "$region"

overrides=("Stage=$stage")
[ -n "${RECONCILE_SCHEDULE:-}" ] && overrides+=("ReconcileSchedule=$RECONCILE_SCHEDULE")
[ -n "${PROTON_SWEEP_SCHEDULE:-}" ] && overrides+=("ProtonSweepSchedule=$PROTON_SWEEP_SCHEDULE")
[ -n "${CLOUDCRAFT_ALLOWED_HOSTS:-}" ] && overrides+=("CloudcraftAllowedHosts=$CLOUDCRAFT_ALLOWED_HOSTS")
# Delegated administrator mode: accept the account events the management account forwards (README.md, Deploy).
[ -n "${MANAGEMENT_ACCOUNT_ID:-}" ] && overrides+=("ManagementAccountId=$MANAGEMENT_ACCOUNT_ID")

aws cloudformation package \
    --region "$region" \
    --template-file "$out/sam.yaml" \
    --s3-bucket "$bucket" \
    --s3-prefix "gatehouse/$stage" \
    --output-template-file "$out/packaged.yaml"

aws cloudformation deploy \
    --region "$region" \
    --template-file "$out/packaged.yaml" \
    --stack-name "$stack" \
    --s3-bucket "$bucket" \
    --s3-prefix "gatehouse/$stage" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --parameter-overrides "${overrides[@]}" \
    --tags app=gatehouse "stage=$stage" \
    --no-fail-on-empty-changeset

if [ "$region" != "us-east-1" ]; then
    # Organizations delivers its events in us-east-1 only.
    aws cloudformation deploy \
        --region us-east-1 \
        --template-file "$out/forwarder-us-east-1.yaml" \
        --stack-name "$stack-forwarder" \
        --capabilities CAPABILITY_IAM \
        --parameter-overrides "TargetRegion=$region" "Stage=$stage" \
        --tags app=gatehouse "stage=$stage" \
        --no-fail-on-empty-changeset
fi

aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
    --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output table

secret="gatehouse/$stage/cloudcraft-api-key"
if ! aws secretsmanager describe-secret --region "$region" --secret-id "$secret" \
        --query "VersionIdsToStages" --output text 2>/dev/null | grep -q AWSCURRENT; then
    echo "next: store the Cloudcraft API key (README.md, Deploy): aws secretsmanager put-secret-value --secret-id $secret --secret-string file://<key file>"
fi
