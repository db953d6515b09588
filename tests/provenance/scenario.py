"""A request with a residency decision and two routed inferences (one after the checkpoint), on
a ledger with the shipped policies and a price list published, for the provenance tests."""

from __future__ import annotations

from typing import Any

from ledger.app.governance import decision_entry, publish_policies
from ledger.app.service import Ledger
from ledger.policy import Facts, load_policy_set
from tests.domain import price_list, routed

REQUEST = "req-5"
DECISION = "dec-5"
FACTS = Facts(
    tenant="acme",
    data_classes=("eu_personal",),
    provider="aws",
    region="us-east-1",
    model_tier="sonnet",
)


def decision_line(request_id: str = REQUEST, decision_id: str = DECISION) -> dict[str, Any]:
    """The ResidencyDecided entry the shipped policies make for EU personal data headed for
    a US region (a reroute)."""
    policy_set = load_policy_set()
    decision = policy_set.decide(FACTS)
    return decision_entry(
        FACTS,
        decision,
        request_id=request_id,
        decision_id=decision_id,
        occurred_at="2026-11-02T09:59:59Z",
    )


def routed_line(**payload: Any) -> dict[str, Any]:
    """The request's InferenceRouted entry, on the tranche and deployment it ran on, with an
    end-user reference that must never reach a PROV document."""
    fields: dict[str, Any] = {
        "decision_id": DECISION,
        "deployment": "sonnet-fra-blue",
        "rack_family": "gb200-nvl72",
        "tranche_id": "gb200-fra-1",
        "latency_ms": 1800,
        "time_to_first_token_ms": 240,
        "end_user_ref": "ciphertext-of-the-end-user",
    }
    fields.update(payload)
    return routed(5, **fields)


def fill(ledger: Ledger, *, after_checkpoint: bool = True) -> None:
    """Publish, decide, route, checkpoint; then (``after_checkpoint``) one more inference that
    the checkpoint does not cover yet."""
    publish_policies(ledger, load_policy_set())
    ledger.append([price_list()])
    ledger.append([decision_line(), routed(6)])  # routed(6): another request's entry
    ledger.append([routed_line()])
    if ledger.signer is not None:
        ledger.checkpoint()
    if after_checkpoint:
        ledger.append([routed_line(input_tokens=7, latency_ms=None)])
