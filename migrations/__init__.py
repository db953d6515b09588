"""Alembic migrations of the pactledger schema (shipped in the package so `pactledger init`
can run them from an installed wheel)."""
