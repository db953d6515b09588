"""Regulator export bundles (DESIGN §7, docs/bundles.md): a deterministic zip of entries, one
Merkle multiproof, signed checkpoints, policy texts and reports, under a DSSE-signed in-toto
statement over the manifest; and the offline verifier that checks one with nothing but the
bundle and a trusted key.

The package is pure: it imports the standard library, ``cryptography`` and
:mod:`ledger.integrity` only (import-linter holds it to that), so that ``verify-bundle`` needs
no database and no configuration. Gathering a scope from a ledger is :mod:`ledger.app.export`.
"""
