"""The guard on Cloudcraft's custom/minimal policy document before it becomes a role's inline policy (pure).

Cloudcraft documents these policies as read-only: one or a few `Allow` statements of Get/List/Describe-style
actions on `Resource: "*"`. Anything else in the answer — a wildcard, a write, a Deny/NotAction trick, a
condition, a read that hands out credentials — is refused, naming the statement and the action, and nothing is
written. `check_policy` never raises anything but PolicyRefused, whatever it is given.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from fnmatch import fnmatchcase

from chalicelib.planning.guard import UnsafeAnswer, shown

# An action is a read when its name starts with one of these verbs (IAM compares action names case-insensitively).
READ_VERBS = ("Get", "List", "Describe", "BatchGet", "Search", "Lookup")
# Reads that hand out secrets or credentials, so more than a diagram needs: refused even though they are reads,
# and so is a wildcard that would cover one (`ec2:Get*` covers ec2:GetPasswordData).
SECRET_READS = (
    "cognito-identity:GetCredentialsForIdentity",
    "cognito-identity:GetOpenIdToken",
    "cognito-identity:GetOpenIdTokenForDeveloperIdentity",
    "codeartifact:GetAuthorizationToken",
    "ec2:GetPasswordData",
    "ecr-public:GetAuthorizationToken",
    "ecr:GetAuthorizationToken",
    "emr-containers:GetManagedEndpointSessionCredentials",
    "gamelift:GetInstanceAccess",
    "glue:GetConnection",
    "glue:GetConnections",
    "lightsail:GetInstanceAccessDetails",
    "lightsail:GetRelationalDatabaseMasterUserPassword",
    "redshift-serverless:GetCredentials",
    "redshift:GetClusterCredentials",
    "redshift:GetClusterCredentialsWithIAM",
    "secretsmanager:BatchGetSecretValue",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameterHistory",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "sso:GetRoleCredentials",
)
SECRET_WORDS = ("credential", "password", "secretvalue", "token")  # in an exact action name
FORBIDDEN_SERVICES = frozenset({"sts"})  # a role that can call STS can hand its access on

VERSIONS = ("2012-10-17", "2008-10-17")
DOCUMENT_KEYS = frozenset({"Version", "Id", "Statement"})
STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "Resource"})
# IAM's limit for a role's inline policies, counted without whitespace.
MAX_POLICY_CHARS = 10_240
MAX_STATEMENTS = 20
MAX_ACTIONS = 500
MAX_RESOURCES = 100
MAX_TEXT = 2_048

_ACTION = re.compile(r"([A-Za-z0-9-]{1,64}):([A-Za-z0-9*?]{1,128})", re.ASCII)
_PRINTABLE = re.compile(r"[\x20-\x7e]*", re.ASCII)
_SECRET_BY_SERVICE: dict[str, tuple[str, ...]] = {}
for _entry in SECRET_READS:
    _service, _name = _entry.split(":")
    _SECRET_BY_SERVICE[_service] = (*_SECRET_BY_SERVICE.get(_service, ()), _name.lower())


class PolicyRefused(UnsafeAnswer):
    """Cloudcraft's policy document grants more than read access, or cannot be read as a policy."""


def check_policy(document: object, *, source: str = "Cloudcraft's policy document") -> None:
    """Return when `document` grants read actions only; PolicyRefused naming the first problem otherwise."""
    try:
        _check(document, source)
    except PolicyRefused:
        raise
    except Exception as exc:  # whatever an answer holds, the caller gets this guard's error
        raise PolicyRefused(f"{source} could not be checked ({type(exc).__name__}): nothing was written") from None


def _check(document: object, source: str) -> None:
    def refuse(why: str) -> PolicyRefused:
        return PolicyRefused(f"{source} is refused: {why}. Nothing was written")

    if document is None:
        raise refuse("Cloudcraft sent none")
    if not isinstance(document, dict):
        raise refuse(f"it is {type(document).__name__}, not a JSON object")
    unknown = [key for key in document if key not in DOCUMENT_KEYS]
    if unknown:
        raise refuse(f"unknown top-level field {shown(unknown[0])}")
    if "Version" in document and document["Version"] not in VERSIONS:
        raise refuse(f"Version {shown(document['Version'])} is not one of {', '.join(VERSIONS)}")
    if "Id" in document and not _text(document["Id"]):
        raise refuse("Id is not a short printable string")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise refuse("Statement is not a statement or a non-empty list of statements")
    if len(statements) > MAX_STATEMENTS:
        raise refuse(f"{len(statements)} statements (at most {MAX_STATEMENTS})")
    actions = 0
    for index, statement in enumerate(statements):
        actions += _check_statement(index, statement, refuse)
        if actions > MAX_ACTIONS:
            raise refuse(f"more than {MAX_ACTIONS} actions")
    size = len(json.dumps(document, separators=(",", ":")))
    if size > MAX_POLICY_CHARS:
        raise refuse(f"{size} characters, over IAM's {MAX_POLICY_CHARS} for a role's inline policies")


def _check_statement(index: int, statement: object, refuse: Callable[[str], PolicyRefused]) -> int:
    if not isinstance(statement, dict):
        raise refuse(f"Statement[{index}] is {type(statement).__name__}, not an object")
    sid = statement.get("Sid")
    if sid is not None and not _text(sid):
        raise refuse(f"Statement[{index}] has a Sid that is not a short printable string")
    where = f"Statement[{index}]" + (f" (Sid {shown(sid)})" if sid else "")
    for key in statement:
        if key not in STATEMENT_KEYS:
            hint = (
                {
                    "NotAction": "NotAction grants every action it does not name",
                    "NotResource": "NotResource grants every resource it does not name",
                    "Condition": "a read-only policy needs no Condition",
                    "Principal": "an identity policy has no Principal",
                    "NotPrincipal": "an identity policy has no NotPrincipal",
                }.get(key, "unknown field")
                if isinstance(key, str)
                else "unknown field"
            )
            raise refuse(f"{where} has {shown(key)}: {hint}")
    if statement.get("Effect") != "Allow":
        raise refuse(f"{where} has Effect {shown(statement.get('Effect'))}; only Allow statements are accepted")
    actions = _strings(statement.get("Action"), MAX_ACTIONS)
    if actions is None:
        raise refuse(f"{where} has no Action, or one that is not a string or a list of strings")
    resources = _strings(statement.get("Resource"), MAX_RESOURCES)
    if resources is None or not all(_text(resource) for resource in resources):
        raise refuse(f"{where} has no Resource, or one that is not a printable string or a list of them")
    for action in actions:
        problem = action_problem(action)
        if problem is not None:
            raise refuse(f"{where} grants {shown(action)}, {problem}")
    return len(actions)


@functools.lru_cache(maxsize=4096)  # a fleet plan checks the same few dozen actions once per account
def action_problem(action: str) -> str | None:
    """Why `action` is not an acceptable read action, or None when it is."""
    if action.strip() == "*":
        return "every action of every service"
    match = _ACTION.fullmatch(action)
    if match is None:
        return "which is not a service:Action name"
    service, name = match.group(1).lower(), match.group(2)
    if service in FORBIDDEN_SERVICES:
        return f"an {service} action (a role that can call {service.upper()} can hand its access on)"
    lowered = name.lower()
    literal = re.split(r"[*?]", lowered, maxsplit=1)[0]
    if not literal:
        return f"every action of {service} (a wildcard before any verb)"
    if service == "iam" and lowered.startswith("pass"):
        return "which hands a role to a service"
    if not any(literal.startswith(verb.lower()) for verb in READ_VERBS):
        allowed = ", ".join(f"{verb}*" for verb in READ_VERBS)
        return f"which is not a read action (accepted: {allowed})"
    wildcard = literal != lowered
    for secret in _SECRET_BY_SERVICE.get(service, ()):
        if fnmatchcase(secret, lowered):
            covered = "" if not wildcard else f", which covers {service}:{secret}"
            return f"a read that hands out secrets or credentials{covered}"
    if not wildcard and any(word in lowered for word in SECRET_WORDS):
        return "a read that hands out secrets or credentials"
    return None


def _strings(value: object, limit: int) -> list[str] | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > limit:
        return None
    if not all(isinstance(item, str) for item in items):
        return None
    return items


def _text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT and _PRINTABLE.fullmatch(value) is not None
