"""The governance event catalogue (DESIGN §3): typed, versioned payload models for every entry
type, in one registry. Pure: no I/O, no framework."""

from __future__ import annotations

from ledger.events.capacity import (
    BenchmarkRecorded,
    TrancheContracted,
    TrancheCreditAssessed,
    TrancheDelayed,
    TrancheDelivered,
    TrancheRetired,
)
from ledger.events.catalogue import Catalogue, Event, build_catalogue
from ledger.events.governance import (
    InferenceRouted,
    PolicyPublished,
    PriceListPublished,
    ResidencyDecided,
)
from ledger.events.security import SigningKeyRotated, SubjectErased

EVENT_MODELS: tuple[type[Event], ...] = (
    PolicyPublished,
    ResidencyDecided,
    InferenceRouted,
    PriceListPublished,
    TrancheContracted,
    TrancheDelivered,
    TrancheDelayed,
    TrancheCreditAssessed,
    TrancheRetired,
    BenchmarkRecorded,
    SubjectErased,
    SigningKeyRotated,
)


def default_catalogue() -> Catalogue:
    """A fresh catalogue holding every event type pactledger ships."""
    return build_catalogue(EVENT_MODELS)


__all__ = [
    "EVENT_MODELS",
    "BenchmarkRecorded",
    "Catalogue",
    "Event",
    "InferenceRouted",
    "PolicyPublished",
    "PriceListPublished",
    "ResidencyDecided",
    "SigningKeyRotated",
    "SubjectErased",
    "TrancheContracted",
    "TrancheCreditAssessed",
    "TrancheDelayed",
    "TrancheDelivered",
    "TrancheRetired",
    "default_catalogue",
]
