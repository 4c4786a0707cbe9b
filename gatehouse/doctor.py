"""`gatehouse doctor`: check a deployed stage end to end, changing nothing. One line per check: PASS or FAIL, what
was found, and for a failure the fix.

Reads only: CloudFormation (the stack), SSM (settings, rules), Secrets Manager and one Cloudcraft request
(iamParameters: the key is accepted, and names the account the roles trust), DynamoDB (the trust principal of record,
the last reconciliation run), Organizations and STS (the access role in a sample of accounts), SQS (dead-letter
queue depths), CloudWatch (alarm states). The operator's policy for it is infra/operator-policy.json.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gatehouse.cli import EXIT_FAILED, EXIT_OK


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n      fix: {self.fix}"


class Doctor:
    """The checks of one stage. `services` is a chalicelib Services for the stage; `session` reads the rest."""

    def __init__(self, services: Any, session: Any, stage: str, *, sample: int, sandbox: bool = False) -> None:
        self.services = services
        self.session = session
        self.stage = stage
        self.sample = sample
        self.sandbox = sandbox
        self.settings: Any = None

    def run(self) -> list[Check]:
        checks: list[Callable[[], Check]] = [
            self.stack,
            self.settings_parameter,
            self.rules_parameter,
            self.api_key,
            self.trust_principal,
            self.access_roles,
            self.dead_letter_queues,
            self.alarms,
            self.last_reconciliation,
        ]
        results = []
        for check in checks:
            try:
                results.append(check())
            except Exception as exc:  # a check that cannot run is a failed check, never a traceback
                name = check.__name__.replace("_", " ")
                first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                results.append(Check(name, False, f"could not check ({first})", "see infra/operator-policy.json"))
        return results

    # --- the checks ------------------------------------------------------------------------------------------
    def stack(self) -> Check:
        name = f"gatehouse-{self.stage}"
        if self.sandbox:
            return Check("stack", True, "the sandbox has no stack (its resources are seeded in moto)")
        cfn = self.session.client("cloudformation")
        try:
            [stack] = cfn.describe_stacks(StackName=name)["Stacks"]
        except Exception as exc:
            if "does not exist" in str(exc):
                return Check("stack", False, f"no stack {name} in {self.session.region_name}", "make deploy STAGE=...")
            raise
        status = str(stack["StackStatus"])
        ok = status.endswith("_COMPLETE") and "ROLLBACK" not in status and "DELETE" not in status
        return Check("stack", ok, f"{name} is {status}", "see the stack's events in the CloudFormation console")

    def settings_parameter(self) -> Check:
        from chalicelib.core.errors import ConfigurationError

        name = self.services.config.settings_parameter
        try:
            self.settings = self.services.settings()
        except ConfigurationError as exc:
            return Check("settings", False, str(exc), f"gatehouse settings validate FILE, then put it in {name}")
        return Check("settings", True, f"{name} is valid (reconcile={self.settings.reconcile})")

    def rules_parameter(self) -> Check:
        from chalicelib.approvals.rules.compile import RuleSet, load_rules_from_ssm

        name = self.services.config.rules_parameter
        loaded = load_rules_from_ssm(self.services.client("ssm"), name)
        if isinstance(loaded, RuleSet):
            return Check("rules", True, f"{name}: {len(loaded.rules)} rules, mode {loaded.document.mode}")
        problem = "; ".join([loaded.message, *map(str, loaded.errors)])[:400]
        return Check("rules", False, f"{name}: {problem}", "gatehouse rules validate FILE, then put it in SSM")

    def api_key(self) -> Check:
        if self.settings is None:
            return Check("Cloudcraft API key", False, "not checked: the settings are invalid", "fix the settings first")
        parameters = self.services.cloudcraft(self.settings).iam_parameters()
        self._cloudcraft_account = parameters.account_id
        return Check("Cloudcraft API key", True, f"accepted by Cloudcraft (its AWS account {parameters.account_id})")

    def trust_principal(self) -> Check:
        answered = getattr(self, "_cloudcraft_account", None)
        if answered is None:
            return Check("trust principal", False, "not checked: no answer from Cloudcraft", "fix the API key first")
        recorded = self.services.ledger.principal()
        pinned = self.settings.cloudcraft_aws_account_id
        expected = pinned or recorded
        if expected is None:
            return Check("trust principal", True, f"no role written yet; Cloudcraft answers {answered}")
        if answered != expected:
            source = "settings.cloudcraft_aws_account_id" if pinned else "the principal of record"
            return Check(
                "trust principal",
                False,
                f"Cloudcraft answers {answered}, {source} is {expected}: roles are held, not rewritten",
                "if Cloudcraft really moved, set settings.cloudcraft_aws_account_id to the new account",
            )
        return Check("trust principal", True, f"roles trust {expected}, as Cloudcraft answers")

    def access_roles(self) -> Check:
        if self.settings is None:
            return Check("access role", False, "not checked: the settings are invalid", "fix the settings first")
        from chalicelib.core.errors import GatehouseError
        from chalicelib.planning.scope import check_scope

        members = self.services.directory.list_members(with_tags=False)
        in_scope = [m for m in members if not m.is_management and check_scope(m, self.settings).in_scope]
        picked = in_scope[: self.sample]
        if not picked:
            return Check("access role", True, "no account in scope to try")
        failed = []
        for member in picked:
            try:
                self.services.member_session(self.settings, attempts=1)(member.account_id)
            except GatehouseError as exc:
                failed.append(f"{member.account_id} ({exc})")
        names = ", ".join(self.settings.access_role_names)
        if failed:
            return Check(
                "access role",
                False,
                f"not assumable in {len(failed)} of {len(picked)} accounts: {'; '.join(failed)[:400]}",
                f"deploy one of {names} into those accounts, trusting this account",
            )
        return Check("access role", True, f"assumed in {len(picked)} of {len(in_scope)} in-scope accounts ({names})")

    def dead_letter_queues(self) -> Check:
        sqs = self.session.client("sqs")
        deep = []
        for queue in ("work-dlq", "plan-dlq", "events-dlq"):
            name = f"gatehouse-{self.stage}-{queue}"
            try:
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except Exception:
                if self.sandbox:
                    continue  # the sandbox has no dead-letter queues
                raise
            count = int(
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                    "ApproximateNumberOfMessages"
                ]
            )
            if count:
                deep.append(f"{name}: {count}")
        if deep:
            return Check(
                "dead-letter queues",
                False,
                "messages waiting: " + ", ".join(deep),
                "README.md, Reliability: find the cause, then redrive (aws sqs start-message-move-task)",
            )
        return Check("dead-letter queues", True, "empty")

    def alarms(self) -> Check:
        cloudwatch = self.session.client("cloudwatch")
        prefix = f"gatehouse-{self.stage}-"
        alarms = [
            a
            for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix)
            for a in page["MetricAlarms"]
        ]
        firing = sorted(a["AlarmName"] for a in alarms if a["StateValue"] == "ALARM")
        if firing:
            return Check(
                "alarms", False, "in ALARM: " + ", ".join(firing), "README.md, Reliability: the table of alarms"
            )
        if not alarms and not self.sandbox:
            return Check("alarms", False, f"no alarm named {prefix}*", "deploy the stack with infra/resources.yaml")
        return Check("alarms", True, f"{len(alarms)} alarms, none in ALARM")

    def last_reconciliation(self) -> Check:
        from chalicelib.adapters.runs import PREFIX, RUN_TTL_SECONDS

        ddb = self.services.client("dynamodb")
        latest: tuple[int, str, int, int] | None = None
        for page in ddb.get_paginator("scan").paginate(
            TableName=self.services.config.idempotency_table,
            FilterExpression="begins_with(#id, :run) AND attribute_exists(parts)",
            ExpressionAttributeNames={"#id": "id"},
            ExpressionAttributeValues={":run": {"S": PREFIX}},
            ProjectionExpression="#id, parts, reported, expiration",
        ):
            for item in page.get("Items", []):
                started = int(item["expiration"]["N"]) - RUN_TTL_SECONDS
                run = (started, item["id"]["S"], int(item["parts"]["N"]), len(item.get("reported", {}).get("NS", [])))
                latest = max(latest, run) if latest else run
        fix = "run it by hand: aws lambda invoke --function-name gatehouse-<stage>-reconcile (README.md)"
        if latest is None:
            return Check("last reconciliation", False, "none in the last 3 days", fix)
        started, run_id, parts, reported = latest
        when = datetime.fromtimestamp(started, UTC).isoformat(timespec="minutes")
        age_hours = (self.services.clock.now().timestamp() - started) / 3600
        detail = f"run {run_id.removeprefix(PREFIX)} started {when} ({age_hours:.1f} h ago), {reported}/{parts} parts"
        if reported < parts:
            return Check("last reconciliation", False, detail + ": incomplete", "look at the plan DLQ and its alarm")
        if age_hours > 26:
            return Check("last reconciliation", False, detail + ": older than 26 hours", fix)
        return Check("last reconciliation", True, detail + ", complete")


def run_doctor(*, stage: str | None, region: str | None, profile: str | None, sandbox: bool, sample: int) -> int:
    if sandbox:
        return _sandbox_doctor(sample)
    import os

    from chalicelib.container import Services
    from chalicelib.core.settings import ALLOWED_HOSTS_VARIABLE, StageConfig, parse_allowed_hosts
    from gatehouse.aws_cli import operator_session

    assert stage is not None
    session = operator_session(region, profile)
    hosts = parse_allowed_hosts(os.environ.get(ALLOWED_HOSTS_VARIABLE, ""))
    config = StageConfig.for_stage(stage, session.region_name, cloudcraft_allowed_hosts=hosts)
    return _report(Doctor(Services(config, session=session), session, stage, sample=sample).run())


def _sandbox_doctor(sample: int) -> int:
    """The doctor against a seeded sandbox after one reconciliation: every check runs, against moto."""
    import warnings

    import boto3

    from chalicelib.container import get_services
    from gatehouse.sandbox.world import STAGE, Sandbox

    warnings.filterwarnings("ignore", module="aws_lambda_powertools")
    print("Starting the sandbox (moto and the emulators on 127.0.0.1)...", file=sys.stderr)
    from gatehouse.sandbox.demo import DEMO_RULES

    with Sandbox({"proton_rules": DEMO_RULES}) as world:
        world.run_schedule("reconcile")
        services = get_services()
        session = boto3.session.Session(region_name=services.session.region_name)
        return _report(Doctor(services, session, STAGE, sample=sample, sandbox=True).run())


def _report(checks: list[Check]) -> int:
    for check in checks:
        print(check.line())
    failed = sum(not check.ok for check in checks)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK
