"""Celery projectors of pactledger. Arrive with issue 5; they depend on ``ledger`` only."""
