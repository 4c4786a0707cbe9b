"""Gatehouse developer and operator tooling (not part of the Lambda package)."""
