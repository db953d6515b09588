"""pactledger: a verifiable governance and provenance ledger for enterprise AI inference."""

__version__ = "0.1.0"
