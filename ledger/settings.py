"""pactledger settings, read from ``PACTLEDGER_*`` environment variables (pydantic-settings).

Nothing reads settings at import time: each entry point (CLI, API, workers) builds one
:class:`Settings` and passes it down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PACTLEDGER_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///pactledger.db",
        description="SQLAlchemy URL: sqlite:///file.db or postgresql://user@host/db",
    )
    signing_key: Path = Field(
        default=Path("pactledger-signing-key.pem"),
        description="Ed25519 private key (PKCS#8 PEM) that signs checkpoints",
    )
    kek: Path = Field(
        default=Path("pactledger-kek.key"),
        description="Key-encryption key (32 random bytes, base64) that wraps the per-subject "
        "keys of personal data; created by `pactledger init` with mode 0600",
    )
    retention_days: int = Field(
        default=183,
        ge=183,
        le=36_500,
        description="Days every record is kept before it may be erased without an erasure "
        "request (at least 6 months: EU AI Act Art. 19 and 26(6)); the log is never pruned",
    )
    origin: str = Field(
        default="pactledger.local/ledger",
        description="The log's origin line in checkpoints, e.g. ledger.contoso.example/eu-1",
    )
    api_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest HTTP request body the API reads (larger: 413)",
    )
    api_max_batch: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Most entries in one POST /v1/events:batch (more: 413)",
    )
    api_rate_limit: float = Field(
        default=10_000,
        ge=0,
        description="Requests per second each API key may make, per API process, with bursts "
        "of twice as many (more: 429 with Retry-After); 0 turns the limit off",
    )
    verifier_key: str | None = Field(
        default=None,
        description="Verifier key (vkey, from `pactledger key show`) of the checkpoints, for "
        "a server that verifies the log (the dashboard's 'verify now') without holding the "
        "signing key",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Secret that seals the dashboard's sign-in cookies (any long random text); "
        "`pactledger serve` makes one for its workers when unset, so a restart signs everyone "
        "out. Set it to keep sessions across restarts and servers",
    )
    session_cookie_secure: bool | None = Field(
        default=None,
        description="Mark the dashboard's cookies Secure (sent over HTTPS only): true behind a "
        "proxy that terminates TLS; unset: when the request itself came over HTTPS",
    )
    proof_cache_entries: int = Field(
        default=2_097_152,
        ge=0,
        description="`pactledger serve` proves from an in-memory copy of the Merkle hashes of "
        "logs of up to this many entries (64 bytes each: 2,097,152 is 128 MB per API "
        "process), loaded on first use; proofs in a larger log, or with 0, read the database",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker for the projectors, redis://host:6379/0 or "
        "amqp://guest:guest@host:5672//; unset: projectors run in-process after each append",
    )
    project_in_process: bool = Field(
        default=True,
        description="Without a broker, run the projectors in this process after each append; "
        "false: leave them to `pactledger project run` or another process",
    )
    project_every_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between the periodic projector catch-ups that `pactledger beat` "
        "schedules",
    )
    project_batch: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Entries a projector reads and writes per transaction",
    )
