"""The workers' composition root: :func:`make_celery` turns settings into a Celery app.

Nothing here runs at import time: there is no module-level app, engine or settings. The app

* talks to the broker of ``PACTLEDGER_BROKER_URL`` (Redis or RabbitMQ) and to no result
  backend: senders never wait for a result, the views are the result;
* moves JSON only (tasks take names and positions, never objects);
* takes one message at a time per worker process (prefetch 1) and acknowledges it after the
  task has run; a message whose worker died is delivered again (see :mod:`workers.tasks`);
* routes ``pactledger.project`` to one queue (default ``pactledger.projectors``) and, under
  ``pactledger beat``, sends it every ``PACTLEDGER_PROJECT_EVERY_S`` seconds, so entries whose
  trigger was lost (broker down at append time) are projected anyway. A scheduled catch-up
  that no worker took within two periods (30 s at least) expires instead of piling up.
"""

from __future__ import annotations

from celery import Celery, signals  # type: ignore[import-untyped]

from ledger.app.dispatch import PROJECT_QUEUE, PROJECT_TASK
from ledger.errors import ConfigurationError
from ledger.settings import Settings

from .tasks import close_all, register_tasks

__all__ = ["CATCH_UP_ENTRY", "make_celery"]

CATCH_UP_ENTRY = "pactledger-catch-up"
"""The name of the periodic catch-up in the beat schedule."""

MISSING_BROKER = (
    "no Celery broker configured: set PACTLEDGER_BROKER_URL, e.g. redis://localhost:6379/0 "
    "or amqp://guest:guest@localhost:5672//; without a broker the projectors run in-process "
    "after each append and need no worker"
)


def make_celery(settings: Settings, *, queue: str = PROJECT_QUEUE) -> Celery:
    """A Celery app for the ledger of ``settings``, with the projector task and its schedule.

    Raises ConfigurationError when ``settings.broker_url`` is unset.
    """
    if not settings.broker_url:
        raise ConfigurationError(MISSING_BROKER)
    app = Celery("pactledger", broker=settings.broker_url, set_as_current=False)
    every = settings.project_every_s
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A task cut off by a lost broker connection is redelivered; do not also finish it.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        task_default_queue=queue,
        task_routes={PROJECT_TASK: {"queue": queue}},
        beat_schedule={
            CATCH_UP_ENTRY: {
                "task": PROJECT_TASK,
                "schedule": every,
                "options": {"queue": queue, "expires": max(2 * every, 30.0)},
            }
        },
        enable_utc=True,
        timezone="UTC",
    )
    register_tasks(app, settings)
    # Prefork children dispose of their connections as they exit; solo and thread pools,
    # with the worker itself.
    signals.worker_process_shutdown.connect(close_all, weak=False, dispatch_uid=__name__)
    signals.worker_shutdown.connect(close_all, weak=False, dispatch_uid=__name__ + ".main")
    return app
