"""The HTTP API of pactledger (FastAPI). Arrives with issue 4; it depends on ``ledger`` only."""
