"""Celery workers of pactledger: they run the projectors that turn the log into its views.

The composition root is :func:`workers.celery_app.make_celery` (settings in, a configured
Celery app with its tasks out); ``pactledger worker`` and ``pactledger beat`` run it. Workers
depend on ``ledger`` only, never on ``api``. What they guarantee:

* a task is acknowledged only after it has run (``acks_late``), and one whose worker died is
  delivered again (``reject_on_worker_lost``); projecting is exactly-once anyway, because each
  batch and its checkpoint commit together (docs/projectors.md), so a redelivery projects
  nothing twice;
* a database that cannot be reached is retried with capped, jittered exponential backoff (at
  most 10 times, 60 s apart at most); an entry the catalogue does not know stops its projector
  with a logged error and is not retried.
"""

from .celery_app import make_celery

__all__ = ["make_celery"]
