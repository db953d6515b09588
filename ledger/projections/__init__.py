"""Pure projections of the log into views (no I/O): see docs/projectors.md."""

from __future__ import annotations

from .base import Fact, MemoryViews, Projection, Rows, TableSpec
from .capacity import CapacityProjection
from .chargeback import ChargebackProjection
from .compliance import ComplianceProjection
from .provenance import ProvenanceProjection


def all_projections() -> dict[str, Projection]:
    """Every projection by name, in the order status lists them."""
    projections: list[Projection] = [
        ComplianceProjection(),
        ChargebackProjection(),
        ProvenanceProjection(),
        CapacityProjection(),
    ]
    return {p.name: p for p in projections}


__all__ = ["Fact", "MemoryViews", "Projection", "Rows", "TableSpec", "all_projections"]
