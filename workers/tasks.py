"""The house task decorator and the projector task.

:func:`ledger_task` is the one way a pactledger task is declared. It gives the task a stable
name (senders address it by name, never by import path) and the delivery and retry rules that
every task shares:

* ``acks_late`` and ``reject_on_worker_lost``: the message is acknowledged after the task has
  run, and redelivered when its worker process dies, so no request for work is lost. Tasks
  must therefore be idempotent; the projector task is (a checkpoint commits with its batch).
* transient errors (:data:`TRANSIENT`: the database cannot be reached) are retried with
  exponential backoff, jittered and capped at 60 s, at most 10 times; each retry is logged.
  Every other error fails the task at once.

``pactledger.project(names=None)`` catches the named projectors (all by default) up to the
head of the log on a :class:`~ledger.app.projection.Projectors` built once per worker process
(lazily, in the process that runs the task, never in a parent that forks) and disposed of when
the process shuts down. An entry the event catalogue does not know raises ``ProjectionError``:
it is logged with the projector, seq, type and version, and not retried (retrying cannot help
until the catalogue knows the type; ``pactledger project status`` shows it).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import sqlalchemy.exc
from celery import Celery  # type: ignore[import-untyped]

from ledger.app.dispatch import PROJECT_TASK
from ledger.app.projection import Projectors, RunResult
from ledger.compose import open_projectors
from ledger.errors import ProjectionError, StoreUnavailableError
from ledger.settings import Settings
from ledger.store.engine import make_engine

__all__ = [
    "MAX_RETRIES",
    "TRANSIENT",
    "ProjectorsCache",
    "close_all",
    "ledger_task",
    "register_tasks",
    "summarise",
]

P = ParamSpec("P")
R = TypeVar("R")

# The store translates driver errors into StoreUnavailableError; SQLAlchemy's OperationalError
# (connection lost, serialization failure) is listed in case one escapes another path.
TRANSIENT: tuple[type[BaseException], ...] = (
    StoreUnavailableError,
    sqlalchemy.exc.OperationalError,
)
MAX_RETRIES = 10

logger = logging.getLogger(__name__)


def ledger_task(app: Celery, *, name: str) -> Callable[[Callable[P, R]], Any]:
    """Register the decorated function as the task ``name`` of ``app``, with the house rules."""

    def decorate(function: Callable[P, R]) -> Any:
        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except TRANSIENT as exc:
                request = app.current_task.request if app.current_task else None
                attempt = (request.retries if request else 0) + 1
                if attempt > MAX_RETRIES:
                    logger.error("%s: %s; gave up after %d attempts", name, exc, attempt)
                else:
                    logger.warning(
                        "%s: %s (attempt %d of %d); retrying with backoff",
                        name,
                        exc,
                        attempt,
                        MAX_RETRIES + 1,
                    )
                raise

        return app.task(
            name=name,
            shared=False,  # a shared task would join every app made later, settings and all
            acks_late=True,
            reject_on_worker_lost=True,
            autoretry_for=TRANSIENT,
            retry_backoff=True,
            retry_backoff_max=60,
            retry_jitter=True,
            max_retries=MAX_RETRIES,
        )(run)

    return decorate


class ProjectorsCache:
    """One :class:`Projectors` per process, built on first use and disposed of by :meth:`close`.

    A process that forks (Celery's prefork pool) must not share its database connections with
    its children, so an instance made by another process id is never reused.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._projectors: Projectors | None = None
        self._dispose: Callable[[], None] | None = None
        _caches.add(self)

    def get(self) -> Projectors:
        with self._lock:
            if self._projectors is None or self._pid != os.getpid():
                engine = make_engine(self._settings.database_url)
                self._projectors = open_projectors(self._settings, engine=engine)
                self._dispose = engine.dispose
                self._pid = os.getpid()
            return self._projectors

    def close(self) -> None:
        with self._lock:
            dispose, mine = self._dispose, self._pid == os.getpid()
            self._projectors = self._dispose = self._pid = None
        if dispose is not None and mine:
            dispose()


_caches: weakref.WeakSet[ProjectorsCache] = weakref.WeakSet()


def close_all(**_signal: Any) -> None:
    """Dispose of every Projectors this process built (connected to worker shutdown signals)."""
    for cache in list(_caches):
        cache.close()


def summarise(results: Sequence[RunResult]) -> dict[str, Any]:
    """A small JSON-able account of one catch-up, for the worker's log."""
    return {
        "projected": sum(r.projected for r in results),
        "projectors": {
            r.name: {"projected": r.projected, "position": r.position, "busy": r.busy}
            for r in results
        },
    }


def register_tasks(app: Celery, settings: Settings) -> None:
    """Declare pactledger's tasks on ``app``; they read the ledger named by ``settings``."""
    cache = ProjectorsCache(settings)

    @ledger_task(app, name=PROJECT_TASK)
    def project(names: list[str] | None = None) -> dict[str, Any]:
        try:
            results = cache.get().catch_up(names)
        except ProjectionError as exc:
            logger.error(
                "%s: %s (not retried)",
                PROJECT_TASK,
                exc,
                extra={
                    "projector": exc.projector,
                    "seq": exc.seq,
                    "event_type": exc.event_type,
                    "schema_version": exc.version,
                },
            )
            raise
        return summarise(results)
