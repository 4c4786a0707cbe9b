"""A Cloudcraft API emulator on loopback: the AWS-account contract, its rate limit and switchable faults."""

from __future__ import annotations

import copy
import hmac
import json
import math
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from chalicelib.core.clock import Clock
from chalicelib.core.ids import parse_role_arn
from gatehouse.sandbox.loopback import LoopbackServer

ACCESS_ENTRY = re.compile(r"^(team|customer)/[\w-]+$")
BAD_GATEWAY = "<html><head><title>502 Bad Gateway</title></head><body>Bad gateway</body></html>"

# Read actions of the kind Cloudcraft's documented read-only policy grants, to make role shaping realistic.
CUSTOM_POLICY_ACTIONS = (
    "apigateway:Get",
    "autoscaling:Describe*",
    "cloudfront:Get*",
    "cloudfront:List*",
    "cloudwatch:Describe*",
    "cloudwatch:Get*",
    "cloudwatch:List*",
    "dynamodb:DescribeGlobalTable",
    "dynamodb:DescribeTable",
    "dynamodb:ListGlobalTables",
    "dynamodb:ListTables",
    "dynamodb:ListTagsOfResource",
    "ec2:Describe*",
    "ecr:Describe*",
    "ecr:List*",
    "ecs:Describe*",
    "ecs:List*",
    "eks:Describe*",
    "eks:List*",
    "elasticache:Describe*",
    "elasticache:List*",
    "elasticfilesystem:Describe*",
    "elasticloadbalancing:Describe*",
    "es:Describe*",
    "es:List*",
    "events:Describe*",
    "events:List*",
    "firehose:Describe*",
    "firehose:List*",
    "fsx:Describe*",
    "fsx:List*",
    "glacier:Describe*",
    "glacier:List*",
    "kafka:Describe*",
    "kafka:List*",
    "kinesis:Describe*",
    "kinesis:List*",
    "lambda:GetFunction",
    "lambda:GetPolicy",
    "lambda:List*",
    "network-firewall:Describe*",
    "network-firewall:List*",
    "rds:Describe*",
    "rds:ListTagsForResource",
    "redshift:Describe*",
    "route53:List*",
    "s3:GetBucketAcl",
    "s3:GetBucketLocation",
    "s3:GetBucketNotification",
    "s3:GetBucketPolicy",
    "s3:GetBucketTagging",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:List*",
    "ses:Get*",
    "ses:List*",
    "sns:GetTopicAttributes",
    "sns:List*",
    "sqs:GetQueueAttributes",
    "sqs:ListQueues",
    "states:Describe*",
    "states:List*",
    "tag:Get*",
    "timestream:Describe*",
    "timestream:List*",
)

MINIMAL_POLICY_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "cloudfront:ListDistributions",
    "dynamodb:DescribeTable",
    "dynamodb:ListTables",
    "ec2:DescribeInstances",
    "ec2:DescribeNatGateways",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ecs:DescribeServices",
    "ecs:ListClusters",
    "ecs:ListServices",
    "elasticloadbalancing:DescribeLoadBalancers",
    "lambda:ListFunctions",
    "rds:DescribeDBInstances",
    "s3:GetBucketLocation",
    "s3:ListAllMyBuckets",
    "sns:ListTopics",
    "sqs:ListQueues",
)


def custom_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(CUSTOM_POLICY_ACTIONS), "Resource": "*"}],
    }


def minimal_policy() -> dict[str, Any]:
    # Two statements, one with a string Action: clients must accept both shapes the contract allows.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": list(MINIMAL_POLICY_ACTIONS), "Resource": ["*"]},
            {"Effect": "Allow", "Action": "tag:GetResources", "Resource": "*"},
        ],
    }


DEFAULT_TEAMS: tuple[dict[str, Any], ...] = (
    {"id": "7c8f2a1e-0d4b-4c7e-9a51-3f6b2d8e1a01", "name": "Platform", "role": "admin", "members": []},
    {"id": "b1d9e3f4-6a2c-4e8b-8f13-5c7a9e2d4b02", "name": "Security", "role": "read", "members": []},
)


# --- faults ----------------------------------------------------------------------------------------------


RATE_MODELS = ("window", "bucket")  # a strict rolling window, or a smooth token bucket (Cloudcraft documents neither)
BUCKET_EPSILON = 1e-9  # a request exactly one interval after the last finds its token, float rounding aside


@dataclass
class _ServerError:
    remaining: int
    status: int
    body: str
    method: str | None


class Faults:
    """Failures to inject into the next requests; thread-safe, switchable while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rate_limit: list[int | None] = []  # one Retry-After (None: no header) per coming 429
        self._server_errors: list[_ServerError] = []
        self._fail_after_commit = 0
        self._unverifiable = 0
        self._disconnect = 0

    def rate_limit_next(self, n: int = 1, retry_after: int | None = 5) -> None:
        """The next `n` authenticated requests get 429 (and are not processed); None sends no Retry-After."""
        with self._lock:
            self._rate_limit.extend([retry_after] * n)

    def server_error_next(
        self, n: int = 1, status: int = 502, body: str = BAD_GATEWAY, *, method: str | None = None
    ) -> None:
        """The next `n` requests (of `method`, if given) fail with `status` before being processed."""
        with self._lock:
            self._server_errors.append(_ServerError(n, status, body, method.upper() if method else None))

    def fail_after_commit_next(self, n: int = 1) -> None:
        """The next `n` writes (POST, PUT, DELETE) are carried out, then answered with a 500."""
        with self._lock:
            self._fail_after_commit += n

    def unverifiable_next(self, n: int = 1) -> None:
        """The next `n` role verifications fail (400), as when a new role has not propagated yet."""
        with self._lock:
            self._unverifiable += n

    def disconnect_next(self, n: int = 1) -> None:
        """The next `n` requests get no answer at all: the connection is closed (a client sees a reset)."""
        with self._lock:
            self._disconnect += n

    def apply(self, config: Mapping[str, Any]) -> None:
        """Switch faults on from a sandbox config, e.g. {"rate_limit_next": 1, "rate_limit_retry_after": None}."""
        known = {
            "rate_limit_next",
            "rate_limit_retry_after",
            "server_error_next",
            "server_error_status",
            "fail_after_commit_next",
            "unverifiable_next",
            "disconnect_next",
        }
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown Cloudcraft faults {sorted(unknown)}; known: {sorted(known)}")
        if config.get("rate_limit_next"):
            retry_after = config.get("rate_limit_retry_after")
            self.rate_limit_next(int(config["rate_limit_next"]), None if retry_after is None else int(retry_after))
        if config.get("server_error_next"):
            self.server_error_next(int(config["server_error_next"]), int(config.get("server_error_status", 502)))
        if config.get("fail_after_commit_next"):
            self.fail_after_commit_next(int(config["fail_after_commit_next"]))
        if config.get("unverifiable_next"):
            self.unverifiable_next(int(config["unverifiable_next"]))
        if config.get("disconnect_next"):
            self.disconnect_next(int(config["disconnect_next"]))

    def clear(self) -> None:
        with self._lock:
            self._rate_limit.clear()
            self._server_errors.clear()
            self._fail_after_commit = self._unverifiable = self._disconnect = 0

    # The take_* methods consume one fault each; the emulator calls them at the matching step.
    def take_rate_limit(self) -> tuple[bool, int | None]:
        with self._lock:
            if not self._rate_limit:
                return False, None
            return True, self._rate_limit.pop(0)

    def take_server_error(self, method: str) -> tuple[int, str] | None:
        with self._lock:
            for fault in self._server_errors:
                if fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._server_errors.remove(fault)
                    return fault.status, fault.body
            return None

    def take_disconnect(self) -> bool:
        with self._lock:
            if self._disconnect <= 0:
                return False
            self._disconnect -= 1
            return True

    def take_fail_after_commit(self) -> bool:
        with self._lock:
            if self._fail_after_commit <= 0:
                return False
            self._fail_after_commit -= 1
            return True

    def take_unverifiable(self) -> bool:
        with self._lock:
            if self._unverifiable <= 0:
                return False
            self._unverifiable -= 1
            return True


# --- hostile answers -------------------------------------------------------------------------------------

# What a compromised Cloudcraft, or whoever answers in its place, might serve as the "read-only" policy.
ADMIN_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}
PUT_REPLIES = ("object", "empty-200", "204")


class Answers:
    """Answers to serve instead of the emulator's own, switchable while it runs: the forged or broken answers a
    compromised Cloudcraft (or whoever answers as it) could send, and the bodiless successes its spec allows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._iam_parameters: dict[str, Any] = {}
        self._policies: dict[str, Any] = {}
        self._nested: dict[str, int] = {}
        self._put_reply = "object"

    def forge_iam_parameters(self, **fields: Any) -> None:
        """Serve these iamParameters fields (`accountId`, `externalId`, ... any JSON value) instead of the real
        ones, e.g. forge_iam_parameters(accountId="*") or forge_iam_parameters(externalId="   ")."""
        with self._lock:
            self._iam_parameters.update(fields)

    def serve_policy(self, kind: str, document: Any) -> None:
        """Serve `document` as the `custom` or `minimal` policy (e.g. ADMIN_POLICY)."""
        if kind not in ("custom", "minimal"):
            raise ValueError("policy kind must be 'custom' or 'minimal'")
        with self._lock:
            self._policies[kind] = copy.deepcopy(document)

    def nest_next(self, path: str, depth: int = 100_000) -> None:
        """The next 2xx answer on `path` is a JSON array nested `depth` levels deep."""
        with self._lock:
            self._nested[path.rstrip("/")] = depth

    def reply_to_put(self, style: str) -> None:
        """How a successful PUT is answered: `object` (200 with the account), `empty-200` (200 with no body, as
        the published API spec documents it) or `204`."""
        if style not in PUT_REPLIES:
            raise ValueError(f"PUT reply must be one of {PUT_REPLIES}")
        with self._lock:
            self._put_reply = style

    def apply(self, config: Mapping[str, Any]) -> None:
        """Switch answers on from a sandbox config: {"iam_parameters": {...}, "policies": {"custom": ...},
        "nest_next": {path: depth}, "put_reply": "204"}."""
        known = {"iam_parameters", "policies", "nest_next", "put_reply"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown Cloudcraft answers {sorted(unknown)}; known: {sorted(known)}")
        self.forge_iam_parameters(**dict(config.get("iam_parameters") or {}))
        for kind, document in (config.get("policies") or {}).items():
            self.serve_policy(kind, document)
        for path, depth in (config.get("nest_next") or {}).items():
            self.nest_next(path, int(depth))
        if config.get("put_reply"):
            self.reply_to_put(str(config["put_reply"]))

    def clear(self) -> None:
        with self._lock:
            self._iam_parameters.clear()
            self._policies.clear()
            self._nested.clear()
            self._put_reply = "object"

    def iam_parameters(self, real: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {**real, **copy.deepcopy(self._iam_parameters)}

    def policy(self, kind: str, real: dict[str, Any]) -> Any:
        with self._lock:
            return copy.deepcopy(self._policies[kind]) if kind in self._policies else real

    def take_nested(self, path: str) -> str | None:
        with self._lock:
            depth = self._nested.pop(path, None)
        return None if depth is None else "[" * depth + "]" * depth

    @property
    def put_reply(self) -> str:
        with self._lock:
            return self._put_reply


# --- the emulator ----------------------------------------------------------------------------------------


class _Reply(Exception):
    """Ends a request with this status and body (error paths read as early returns)."""

    def __init__(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


_DISCONNECT = -1  # pseudo-status recorded for a request answered by closing the connection


class CloudcraftEmulator:
    """Cloudcraft's AWS-account API on 127.0.0.1, sharing the caller's clock for its rate limit and timestamps."""

    def __init__(
        self,
        api_key: str,
        *,
        clock: Clock,
        aws_account_id: str = "999999999999",
        external_id: str | None = None,
        rate_limit: tuple[int, float] | None = (20, 60.0),
        rate_model: str = "window",
        role_verifier: Callable[[str, str], bool] | None = None,
        teams: Sequence[Mapping[str, Any]] = DEFAULT_TEAMS,
        teams_wrapped: bool = False,
    ) -> None:
        self._api_key = api_key
        self._clock = clock
        self._aws_account_id = aws_account_id
        self._external_id = external_id or str(uuid.uuid4())
        self._rate_limit = rate_limit
        if rate_model not in RATE_MODELS:
            raise ValueError(f"rate_model must be one of {', '.join(RATE_MODELS)}, not {rate_model!r}")
        self._rate_model = rate_model
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._role_verifier = role_verifier
        self._teams = [dict(team) for team in teams]
        self._teams_wrapped = teams_wrapped
        self._creator_id = str(uuid.uuid4())
        self.faults = Faults()
        self.answers = Answers()
        self._lock = threading.RLock()
        self._accounts: dict[str, dict[str, Any]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._log: list[dict[str, Any]] = []
        self._http = LoopbackServer(_handler_for(self), "cloudcraft-emulator")

    def __repr__(self) -> str:
        return f"CloudcraftEmulator(url={self.url!r})"

    # --- lifecycle ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        return self._http.url

    def start(self) -> str:
        """Listen on a random loopback port; returns the base URL."""
        return self._http.start()

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> CloudcraftEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- inspection and set-up ---------------------------------------------------------------------------
    @property
    def iam_parameters(self) -> dict[str, Any]:
        """What GET /aws/account/iamParameters answers now (forged fields included, see `answers`)."""
        with self._lock:
            external_id = self._external_id
        return self.answers.iam_parameters(self._real_iam_parameters(external_id))

    def _real_iam_parameters(self, external_id: str) -> dict[str, Any]:
        return {
            "accountId": self._aws_account_id,
            "externalId": external_id,
            "awsConsoleUrl": (
                "https://console.aws.amazon.com/iam/home?#/roles$new?step=type&roleType=crossAccount"
                f"&accountID={self._aws_account_id}&externalId={quote(external_id)}"
                "&policies=arn:aws:iam::aws:policy%2FReadOnlyAccess"
            ),
        }

    def accounts(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._accounts.values()))

    def requests_log(self) -> list[dict[str, Any]]:
        """Every request answered so far: method, path and status (None when the connection was dropped)."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def seed_account(
        self,
        name: str,
        role_arn: str,
        read_access: Sequence[str] | None = None,
        write_access: Sequence[str] | None = None,
        *,
        source: str = "aws",
    ) -> dict[str, Any]:
        """Add a registration directly, unvalidated, as if made earlier (by hand, or through Datadog)."""
        with self._lock:
            account = self._new_account(name, role_arn, read_access, write_access, source=source)
            return copy.deepcopy(account)

    def move_aws_account(self, new: str) -> None:
        """As if Cloudcraft moved to another AWS account: iamParameters reports `new` from now on."""
        with self._lock:
            self._aws_account_id = new

    def rotate_external_id(self, new: str) -> None:
        """As when the key changes hands: iamParameters reports `new`, and roles trusting the old one fail."""
        with self._lock:
            self._external_id = new

    def reset(self) -> None:
        with self._lock:
            self._accounts.clear()
            self._windows.clear()
            self._log.clear()
        self.faults.clear()
        self.answers.clear()

    # --- request handling (called from the server's threads) ---------------------------------------------
    def handle(self, method: str, raw_path: str, authorization: str | None, body: bytes) -> _Reply:
        path = urlsplit(raw_path).path.rstrip("/") or "/"
        try:
            key = self._authenticate(authorization)
            self._admit(key)
            if self.faults.take_disconnect():
                raise _Reply(_DISCONNECT)
            injected = self.faults.take_server_error(method)
            if injected is not None:
                raise _Reply(injected[0], injected[1])
            reply = self._route(method, path, body)
            if method in ("POST", "PUT", "DELETE") and reply.status < 300 and self.faults.take_fail_after_commit():
                reply = _Reply(500, {"error": "Internal server error"})
            elif reply.status < 300:
                nested = self.answers.take_nested(path)
                if nested is not None:
                    reply = _Reply(reply.status, nested)
        except _Reply as stop:
            reply = stop
        with self._lock:
            self._log.append(
                {
                    "method": method,
                    "path": path,
                    "status": None if reply.status < 0 else reply.status,
                    "at": self._clock.monotonic(),
                }
            )
        return reply

    def _authenticate(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Reply(401, {"error": "Missing API key: send Authorization: Bearer <key>"})
        if not hmac.compare_digest(token.strip().encode(), self._api_key.encode()):
            raise _Reply(401, {"error": "Invalid API key"})
        return token.strip()

    def _admit(self, key: str) -> None:
        """The rate limit: a throttled request is answered 429 and never processed (nor counted)."""
        forced, retry_after = self.faults.take_rate_limit()
        if forced:
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            raise _Reply(429, {"error": "Too many requests"}, headers)
        if self._rate_limit is None:
            return
        limit, per = self._rate_limit
        if self._rate_model == "bucket":
            self._take_token(key, limit / per)
            return
        with self._lock:
            now = self._clock.monotonic()
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - per:
                window.popleft()
            if len(window) >= limit:
                wait = max(1, math.ceil(window[0] + per - now))
                raise _Reply(429, {"error": "Too many requests"}, {"Retry-After": str(wait)})
            window.append(now)

    def _take_token(self, key: str, rate: float) -> None:
        """A smooth token bucket: `rate` tokens a second, room for one (no burst at all), the strictest reading
        of "20 requests per minute" a server could have."""
        with self._lock:
            now = self._clock.monotonic()
            tokens, at = self._buckets.get(key, (1.0, now))
            tokens = min(1.0, tokens + (now - at) * rate)
            if tokens < 1.0 - BUCKET_EPSILON:
                wait = max(1, math.ceil((1.0 - tokens) / rate))
                self._buckets[key] = (tokens, now)
                raise _Reply(429, {"error": "Too many requests"}, {"Retry-After": str(wait)})
            self._buckets[key] = (max(tokens - 1.0, 0.0), now)

    def _route(self, method: str, path: str, body: bytes) -> _Reply:
        if path == "/aws/account":
            if method == "GET":
                return _Reply(200, {"accounts": self.accounts()})
            if method == "POST":
                return self._create(_json_object(body))
            raise _Reply(405, {"error": "Method not allowed"})
        if path == "/aws/account/iamParameters":
            self._only(method, "GET")
            return _Reply(200, self.iam_parameters)
        if path == "/aws/account/iamParameters/policy/custom":
            self._only(method, "GET")
            return _Reply(200, self.answers.policy("custom", custom_policy()))
        if path == "/aws/account/iamParameters/policy/minimal":
            self._only(method, "GET")
            return _Reply(200, self.answers.policy("minimal", minimal_policy()))
        if path == "/team":
            self._only(method, "GET")
            teams = copy.deepcopy(self._teams)
            return _Reply(200, {"teams": teams} if self._teams_wrapped else teams)
        if path.startswith("/aws/account/") and path.count("/") == 3:
            account_id = unquote(path.rsplit("/", 1)[1])
            if method == "PUT":
                return self._update(account_id, _json_object(body))
            if method == "DELETE":
                return self._delete(account_id)
            raise _Reply(405, {"error": "Method not allowed"})
        raise _Reply(404, {"error": "Not found"})

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise _Reply(405, {"error": "Method not allowed"})

    def _create(self, body: dict[str, Any]) -> _Reply:
        name, role_arn = _required_text(body, "name"), _required_text(body, "roleArn")
        region = body.get("region", "us-east-1")
        if not isinstance(region, str) or not region:
            raise _Reply(400, {"error": "Invalid region"})
        read_access, write_access = _access(body, "readAccess"), _access(body, "writeAccess")
        _check_role_arn(role_arn)
        with self._lock:
            external_id = self._external_id
        self._verify(role_arn, external_id)
        with self._lock:
            return _Reply(201, copy.deepcopy(self._new_account(name, role_arn, read_access, write_access)))

    def _update(self, account_id: str, body: dict[str, Any]) -> _Reply:
        name, role_arn = _required_text(body, "name"), _required_text(body, "roleArn")
        read_access, write_access = _access(body, "readAccess"), _access(body, "writeAccess")
        with self._lock:
            current = self._accounts.get(account_id)
            if current is None:
                raise _Reply(404, {"error": "Account not found"})
            role_changed = current["roleArn"] != role_arn
            external_id = current["externalId"]
        if role_changed:
            _check_role_arn(role_arn)
            self._verify(role_arn, external_id)
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:  # deleted while the role was being verified
                raise _Reply(404, {"error": "Account not found"})
            account.update(
                name=name,
                roleArn=role_arn,
                readAccess=read_access,
                writeAccess=write_access,
                updatedAt=self._timestamp(),
            )
            updated = copy.deepcopy(account)
        style = self.answers.put_reply
        if style == "204":
            return _Reply(204)
        return _Reply(200, None if style == "empty-200" else updated)

    def _delete(self, account_id: str) -> _Reply:
        with self._lock:
            if self._accounts.pop(account_id, None) is None:
                raise _Reply(404, {"error": "Account not found"})
        return _Reply(200)

    def _verify(self, role_arn: str, external_id: str) -> None:
        # Called outside the lock: the sandbox's verifier inspects moto, which may take a while.
        unverifiable = self.faults.take_unverifiable()
        if unverifiable or (self._role_verifier is not None and not self._role_verifier(role_arn, external_id)):
            raise _Reply(
                400,
                {
                    "error": f"Unable to verify the role {role_arn}: check that it exists and trusts Cloudcraft "
                    "with the external ID (it may take a moment to propagate)"
                },
            )

    def _new_account(
        self,
        name: str,
        role_arn: str,
        read_access: Sequence[str] | None,
        write_access: Sequence[str] | None,
        *,
        source: str = "aws",
    ) -> dict[str, Any]:
        now = self._timestamp()
        account: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": name,
            "roleArn": role_arn,
            "externalId": self._external_id,
            "readAccess": list(read_access) if read_access is not None else None,
            "writeAccess": list(write_access) if write_access is not None else None,
            "source": source,
            "CreatorId": self._creator_id,
            "createdAt": now,
            "updatedAt": now,
        }
        self._accounts[account["id"]] = account
        return account

    def _timestamp(self) -> str:
        return self._clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        raise _Reply(400, {"error": "Request body is not valid JSON"}) from None
    if not isinstance(parsed, dict):
        raise _Reply(400, {"error": "Request body must be a JSON object"})
    return parsed


def _required_text(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise _Reply(400, {"error": f"Missing or invalid {field}"})
    return value


def _access(body: Mapping[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and ACCESS_ENTRY.match(item) for item in value):
        raise _Reply(400, {"error": f"Invalid {field}: expected a list of team/<id> or customer/<id>"})
    return list(value)


def _check_role_arn(role_arn: str) -> None:
    if parse_role_arn(role_arn, partition=None) is None:
        raise _Reply(400, {"error": f"Invalid roleArn: {role_arn}"})


def _handler_for(emulator: CloudcraftEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions expect from a real API
        # Headers and body go out in two writes; with Nagle on, delayed ACKs add ~40 ms to every request.
        disable_nagle_algorithm = True
        server_version = "cloudcraft-emulator"
        sys_version = ""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            try:
                reply = emulator.handle(self.command, self.path, self.headers.get("Authorization"), body)
            except Exception:  # an emulator bug: answer it, so the connection stays usable and the client sees it
                reply = _Reply(500, {"error": "Internal server error (emulator)"})
            if reply.status == _DISCONNECT:
                self.close_connection = True
                return
            payload = b"" if reply.body is None else _encode(reply.body)
            self.send_response(reply.status, HTTPStatus(reply.status).phrase if _known(reply.status) else "")
            is_json = not isinstance(reply.body, str)
            self.send_header("Content-Type", "application/json" if is_json else "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            # Silent: test output stays clean, and nothing request-derived is written to stderr.
            return

    return Handler


def _encode(body: Any) -> bytes:
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def _known(status: int) -> bool:
    try:
        HTTPStatus(status)
    except ValueError:
        return False
    return True
