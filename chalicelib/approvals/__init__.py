"""Policy-driven approval of cross-account connection requests (AWS Proton environment account connections)."""

from chalicelib.approvals.engine import ConnectionRequest, Decision, decide
from chalicelib.approvals.rules import LintFinding, RuleSet, RuleSetProblem, lint, parse_ruleset

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
