"""The composition root of the HTTP API: :func:`create_app` builds everything from settings.

Nothing is read at import time. ``pactledger serve`` runs ``create_app`` under uvicorn as a
factory; tests call it with their own settings (and may hand in a ledger and key store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ledger.access import CachedKeyStore, KeyStore
from ledger.app.service import Ledger
from ledger.compose import Trigger, projection_trigger, projectors_for, vault_for
from ledger.log.entry import utc_now
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.keys import SqlKeyStore
from ledger.store.sql import SqlLogStore
from ledger.store.verifications import SqlVerificationLog

from . import errors
from .fast_ingest import FastIngest
from .group_commit import GroupCommitter
from .limits import BodyLimit, RefuseNul, RequireCredentials, StrictJson
from .metrics import Metrics
from .rate_limit import RateLimiter
from .routers import audit, decisions, estimates, events, health, otlp, proofs, reconcile, views
from .services import Services
from .web import routes as web
from .web.session import Sessions

DESCRIPTION = """\
A verifiable ledger of AI inference governance events: every routed request, residency
decision and capacity event is appended to an RFC 6962 Merkle log sealed by signed C2SP
checkpoints.

Authenticate with an API key (`pactledger keys create`) as `Authorization: Bearer <key>`.
Errors have one shape: `{"error": {"status", "code", "message", "field"?, "index"?}}`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    ledger: Ledger | None = None,
    keys: KeyStore | None = None,
    fast_ingest: bool = True,
) -> FastAPI:
    """The FastAPI application over the ledger named by ``settings``. ``fast_ingest=False``
    leaves out the lean path for ``POST /v1/events`` (:mod:`api.fast_ingest`), so that every
    request takes the FastAPI route: tests compare the two."""
    settings = settings or Settings()
    engine = None
    if ledger is None or keys is None:
        engine = (
            make_engine(settings.database_url, pool_size=20, max_overflow=20)
            if (settings.database_url.startswith("postgres"))
            else make_engine(settings.database_url)
        )
    trigger: Trigger | None = None
    if ledger is None:
        assert engine is not None
        # No signer: the API does not sign checkpoints (the CLI and the beat do), and creating
        # the app must not need the database (readiness reports it instead). After each commit
        # the projectors are woken: Celery with a broker, else a thread of this process.
        trigger = projection_trigger(settings, engine, mode="background")
        ledger = Ledger(
            store=SqlLogStore(engine, tree_cache=settings.proof_cache_entries),
            after_append=trigger,
            vault=vault_for(settings, engine),
        )
    if keys is None:
        assert engine is not None
        keys = CachedKeyStore(SqlKeyStore(engine))
    metrics = Metrics(ledger, utc_now)
    committer = GroupCommitter(ledger.append_admissible, metrics)
    projectors = (
        None if engine is None else projectors_for(engine, batch_size=settings.project_batch)
    )
    found = Services(
        settings,
        engine,
        ledger,
        keys,
        committer,
        metrics,
        projectors,
        verifications=None if engine is None else SqlVerificationLog(engine),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await committer.start()
        try:
            yield
        finally:
            await committer.stop()
            if trigger is not None:
                trigger.close()
            if isinstance(ledger.store, SqlLogStore):
                ledger.store.close()  # its own read pool (proofs); the engine is ours
            if engine is not None:
                engine.dispose()

    app = FastAPI(
        title="pactledger",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = found
    limiter = RateLimiter(settings.api_rate_limit)
    app.state.rate_limiter = limiter
    errors.install(app)
    for module in (events, decisions, otlp, proofs, audit, views, estimates, reconcile, health):
        app.include_router(module.router)
    app.state.sessions = Sessions.from_text(
        settings.session_secret.get_secret_value() if settings.session_secret else None
    )
    web.install(app)
    if fast_ingest:
        # innermost: after the three below
        app.add_middleware(FastIngest, services=found, limiter=limiter)
    app.add_middleware(StrictJson)
    app.add_middleware(RequireCredentials)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RefuseNul)
    return app
