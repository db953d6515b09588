"""``pactledger worker`` and ``pactledger beat``: the Celery processes that run the projectors.

Both need ``PACTLEDGER_BROKER_URL``; without it they exit with status 2 and say how to set it
(and that without a broker the projectors run in-process, needing neither). Celery is imported
inside the commands so that ``pactledger --help`` stays fast.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.app.dispatch import PROJECT_QUEUE
from ledger.errors import ConfigurationError

from .common import fail, load_settings

LogLevel = Annotated[
    str,
    typer.Option("--loglevel", "-l", help="debug, info, warning or error.", case_sensitive=False),
]


def _app(queue: str = PROJECT_QUEUE) -> Any:
    from workers import make_celery

    try:
        return make_celery(load_settings(), queue=queue)
    except ConfigurationError as exc:
        fail(str(exc), code=2)


def _check_loglevel(loglevel: str) -> str:
    level = loglevel.lower()
    if level not in ("debug", "info", "warning", "error", "critical"):
        fail(f"--loglevel {loglevel!r} is not one of debug, info, warning, error", code=2)
    return level


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Processes that run tasks (default: the CPUs, at most 4: one per projector).",
        ),
    ] = None,
    loglevel: LogLevel = "info",
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            "-Q",
            help=f"Queue to consume (repeat, or comma-separate); default {PROJECT_QUEUE}.",
        ),
    ] = None,
) -> None:
    """Run a Celery worker that keeps the projectors' views caught up with the log.

    It runs the task pactledger.project, which the ledger sends after each append and
    `pactledger beat` every PACTLEDGER_PROJECT_EVERY_S seconds: each run projects the entries
    after every projector's checkpoint, PACTLEDGER_PROJECT_BATCH entries per transaction.
    Run as many workers as you like: a projector has one writer at a time and the others pass
    it by. A worker killed mid-batch loses nothing and projects nothing twice. Ctrl-C stops it
    after the running batch.

    Needs PACTLEDGER_BROKER_URL (the broker the ledger sends to) and PACTLEDGER_DATABASE_URL
    (the ledger's database, PostgreSQL when more than one process writes). Without a broker
    the projectors run in-process after each append and no worker is needed.

    [bold]Redis:[/] PACTLEDGER_BROKER_URL=redis://localhost:6379/0 pactledger worker

    [bold]RabbitMQ:[/] PACTLEDGER_BROKER_URL=amqp://guest:guest@localhost:5672// pactledger
    worker -c 2
    """
    level = _check_loglevel(loglevel)
    names = [q.strip() for item in queues or [PROJECT_QUEUE] for q in item.split(",")]
    names = [q for q in names if q]
    if not names:
        fail("--queues names no queue; leave it out to consume " + PROJECT_QUEUE, code=2)
    processes = concurrency or min(4, os.cpu_count() or 1)
    app = _app(names[0])
    app.worker_main(
        [
            "worker",
            f"--loglevel={level}",
            f"--concurrency={processes}",
            f"--queues={','.join(names)}",
            f"--hostname=pactledger-{os.getpid()}@%h",
            # Projector workers coordinate through the database, not through each other.
            "--without-gossip",
            "--without-mingle",
        ]
    )


def beat(
    loglevel: LogLevel = "info",
    schedule: Annotated[
        Path | None,
        typer.Option(
            "--schedule",
            "-s",
            dir_okay=False,
            help="File in which beat keeps its last run times (default: in the temp folder).",
        ),
    ] = None,
    queue: Annotated[
        str,
        typer.Option(help="Queue to send the catch-up to: one that the workers consume."),
    ] = PROJECT_QUEUE,
) -> None:
    """Send the projectors' catch-up to the workers every PACTLEDGER_PROJECT_EVERY_S seconds.

    The ledger asks for a catch-up after each append already; this periodic one projects
    whatever a lost request left behind (a broker that was down at append time, a worker
    that died). Run one beat per broker: it only sends messages, `pactledger worker` does
    the work.

    Needs PACTLEDGER_BROKER_URL, the broker the workers consume. Without a broker the
    projectors run in-process after each append and no beat is needed.

    [bold]Redis:[/] PACTLEDGER_BROKER_URL=redis://localhost:6379/0 pactledger beat

    [bold]RabbitMQ:[/] PACTLEDGER_BROKER_URL=amqp://guest:guest@localhost:5672//
    PACTLEDGER_PROJECT_EVERY_S=2 pactledger beat
    """
    level = _check_loglevel(loglevel)
    app = _app(queue)
    path = schedule or Path(tempfile.gettempdir()) / "pactledger-beat-schedule"
    app.start(["beat", f"--loglevel={level}", f"--schedule={path}"])
