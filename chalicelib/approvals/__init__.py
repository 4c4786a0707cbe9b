"""Policy-driven approval of cross-account connection requests (AWS Proton environment account connections)."""

from chalicelib.approvals.engine import ConnectionRequest, Decision, decide
from chalicelib.approvals.rules.compile import RuleSet, parse_ruleset
from chalicelib.approvals.rules.lint import LintFinding, lint
from chalicelib.approvals.rules.schema import RuleSetProblem

__all__ = [
    "ConnectionRequest",
    "Decision",
    "LintFinding",
    "RuleSet",
    "RuleSetProblem",
    "decide",
    "lint",
    "parse_ruleset",
]
