"""Approval rules: the document's schema and parsing (schema.py), compiled matchers and loading (compile.py),
and lint (lint.py). The names most callers need are re-exported here."""

from chalicelib.approvals.rules.compile import RuleSet, load_rules_from_ssm, parse_ruleset
from chalicelib.approvals.rules.lint import LintFinding, lint
from chalicelib.approvals.rules.schema import RuleSetProblem, parse_document

__all__ = ["LintFinding", "RuleSet", "RuleSetProblem", "lint", "load_rules_from_ssm", "parse_document", "parse_ruleset"]
