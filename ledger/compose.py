"""Building the ledger's parts from settings, shared by the CLI, the API and the workers.

What it guarantees: one place decides how projectors are triggered after an append —

* ``PACTLEDGER_BROKER_URL`` set: the Celery trigger (:mod:`ledger.app.dispatch`) publishes
  ``pactledger.project`` after each commit; workers do the projecting;
* unset (the embedded default): the projectors run in this process — right after the append
  (``inline``: the CLI and the demo, whose next command sees the views) or on a background
  thread woken by each append (``background``: the API, whose requests must not wait);
* unset and ``PACTLEDGER_PROJECT_IN_PROCESS=false``: nothing; another process projects
  (``pactledger project run`` from a timer, say).

A projector error never fails an append (the entries are durable by then): it is logged, and
``pactledger project status`` shows it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal, Protocol

from sqlalchemy import Engine

from ledger.app.keys import load_kek
from ledger.app.projection import Projectors
from ledger.errors import LedgerError
from ledger.log.entry import utc_now
from ledger.privacy import Vault
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.subject_keys import SqlSubjectKeys
from ledger.store.views import SqlViewStore

log = logging.getLogger(__name__)

Mode = Literal["inline", "background"]


class Trigger(Protocol):
    def __call__(self) -> None: ...
    def close(self) -> None: ...


def vault_for(settings: Settings, engine: Engine) -> Vault | None:
    """The subject-key vault when a key-encryption key file exists (None: entries carrying
    personal data are refused with a message saying how to configure one). A key file that
    others may read is refused (ConfigurationError)."""
    if not settings.kek.exists():
        return None
    return Vault(load_kek(settings.kek), SqlSubjectKeys(engine), utc_now)


def projectors_for(engine: Engine, *, batch_size: int = 1000) -> Projectors:
    return Projectors(SqlViewStore(engine), batch_size=batch_size)


def open_projectors(settings: Settings, *, engine: Engine | None = None) -> Projectors:
    """Projectors over the ledger database of ``settings`` (its schema must be migrated)."""
    return projectors_for(
        engine or make_engine(settings.database_url), batch_size=settings.project_batch
    )


def projection_trigger(settings: Settings, engine: Engine, *, mode: Mode) -> Trigger:
    """What the ledger calls after each append (see the module docstring)."""
    if settings.broker_url:
        from ledger.app.dispatch import celery_trigger

        return celery_trigger(settings.broker_url)
    if not settings.project_in_process:
        return _Closing(lambda: None)
    projectors = projectors_for(engine, batch_size=settings.project_batch)
    if mode == "inline":
        return _Closing(lambda: catch_up_quietly(projectors))
    return BackgroundProjection(projectors)


def catch_up_quietly(projectors: Projectors) -> None:
    """Catch every projector up; log, never raise, what stops one."""
    try:
        projectors.catch_up()
    except LedgerError as exc:
        log.warning("projection: %s", exc)


class _Closing:
    def __init__(self, call: Callable[[], None]) -> None:
        self._call = call

    def __call__(self) -> None:
        self._call()

    def close(self) -> None:
        return None


class BackgroundProjection:
    """One daemon thread that catches the projectors up whenever it is woken; wake-ups that
    arrive while it works fold into one more round."""

    def __init__(self, projectors: Projectors) -> None:
        self.projectors = projectors
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(
            target=self._loop, name="pactledger-projection", daemon=True
        )
        self._thread.start()

    def __call__(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Finish the round in progress (and one for entries already appended), then stop."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            stopping = self._stop  # read before the round: it covers every earlier append
            catch_up_quietly(self.projectors)
            if stopping:
                return
