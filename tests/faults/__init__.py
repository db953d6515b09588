"""Fault tests against real processes: SIGKILLed API servers and workers, a soak, backup and
restore with the real PostgreSQL tools (issue 9; promises in docs/reliability.md)."""
