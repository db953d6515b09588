"""Sending projector work to Celery workers: the producer side only, used after each commit.

With ``PACTLEDGER_BROKER_URL`` set, the ledger calls a trigger after every append that
committed; the trigger publishes the task :data:`PROJECT_TASK` *by name* (this module never
imports ``workers``: the ledger only needs the task's name and queue, not its code).

What a trigger guarantees:

* **It never fails an append.** The entries are durable before it runs, and the periodic
  catch-up (``pactledger beat``) projects them whether or not this message arrives, so a
  broker that is down, slow or refusing is logged and swallowed. It never raises.
* **It never waits for the work.** It publishes and returns; there is no result backend.
* **It is cheap and bounded.** One publish, at most one immediate reconnect (for a pooled
  connection that a broker restart left stale), connection and socket timeouts of
  :data:`CONNECT_TIMEOUT_S`: about a second in the worst case. After a failure it sends
  nothing for :data:`QUIET_S` seconds, so an outage costs appends nothing.
* **It logs an outage once**, a warning when the broker first fails and an info line when it
  answers again, not one line per append.
* **It is safe to call from several threads** (the API's request threads): Celery's
  producer pool hands each caller its own connection; the outage state has its own lock.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = [
    "CONNECT_TIMEOUT_S",
    "PROJECT_QUEUE",
    "PROJECT_TASK",
    "QUIET_S",
    "CeleryTrigger",
    "celery_trigger",
]

PROJECT_TASK = "pactledger.project"
"""The task that catches the projectors up: ``pactledger.project(names=None)``."""

PROJECT_QUEUE = "pactledger.projectors"
"""The queue the task is sent to and ``pactledger worker`` consumes by default."""

CONNECT_TIMEOUT_S = 0.5
QUIET_S = 1.0

logger = logging.getLogger(__name__)


def celery_trigger(broker_url: str, *, queue: str = PROJECT_QUEUE) -> CeleryTrigger:
    """A callable that asks the workers to catch up, for the ledger to call after each commit
    (``close()`` releases its broker connections).

    ``queue`` must be one that a worker consumes (``pactledger worker --queues``).
    """
    return CeleryTrigger(broker_url, queue=queue)


class CeleryTrigger:
    """Publishes :data:`PROJECT_TASK` on each call; see the module docstring for its promises."""

    def __init__(self, broker_url: str, *, queue: str = PROJECT_QUEUE) -> None:
        from celery import Celery  # type: ignore[import-untyped]  # only when a broker is set

        self.queue = queue
        self._app = Celery("pactledger-producer", broker=broker_url, set_as_current=False)
        self._app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_timeout=CONNECT_TIMEOUT_S,
            broker_connection_retry=False,
            broker_transport_options={
                "socket_connect_timeout": CONNECT_TIMEOUT_S,
                "socket_timeout": CONNECT_TIMEOUT_S,
            },
        )
        self._broker = _redacted(broker_url)
        self._lock = threading.Lock()
        self._quiet_until = 0.0
        self._down = False
        try:
            # Build the lazy producer pool now, in one thread, rather than racing in many.
            # It connects to nothing; a broker that is down is found on the first send.
            self._app.producer_pool  # noqa: B018
        except Exception as exc:  # a malformed URL: report it like an outage, never raise
            self._failed(exc)

    def __call__(self) -> None:
        if time.monotonic() < self._quiet_until:
            return
        try:
            self._app.send_task(
                PROJECT_TASK,
                kwargs={},
                queue=self.queue,
                retry=True,
                retry_policy=_RETRY_ONCE,
            )
        except Exception as exc:  # whatever the broker does, the append has succeeded
            self._failed(exc)
            return
        if self._down:
            self._recovered()

    def close(self) -> None:
        """Release the pooled broker connections."""
        self._app.close()

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._quiet_until = time.monotonic() + QUIET_S
            first, self._down = not self._down, True
        if first:
            logger.warning(
                "cannot send %s to the broker %s (%s); the entries are stored and the next "
                "catch-up (pactledger beat) projects them; no more warnings until it answers",
                PROJECT_TASK,
                self._broker,
                exc,
            )

    def _recovered(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            logger.info("the broker %s answers again; %s is sent", self._broker, PROJECT_TASK)


_RETRY_ONCE: dict[str, Any] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0,
    "interval_max": 0,
}


def _redacted(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"
