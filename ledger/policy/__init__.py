"""Residency and routing policies: YAML documents with CEL conditions, compiled once and
evaluated purely (no I/O, no clock). See ``policies/README.md`` for the document format."""

from ledger.policy.document import PolicyRef, PolicySource, digest_of, parse_document
from ledger.policy.evaluate import Decision, Facts, PolicySet, Route
from ledger.policy.load import (
    load_policy_set,
    policy_set_from_texts,
    read_policy_dir,
    shipped_policy_dir,
)

__all__ = [
    "Decision",
    "Facts",
    "PolicyRef",
    "PolicySet",
    "PolicySource",
    "Route",
    "digest_of",
    "load_policy_set",
    "parse_document",
    "policy_set_from_texts",
    "read_policy_dir",
    "shipped_policy_dir",
]
