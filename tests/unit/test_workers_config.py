"""The Celery configuration of the workers and the ledger's trigger, without a broker or worker.

Proves that :func:`workers.make_celery` configures late acknowledgement, redelivery of the
tasks of a dead worker, prefetch 1, JSON only, no result backend, one queue, and a beat
catch-up every ``project_every_s`` seconds; that ``pactledger.project`` is registered under
that stable name with bounded, jittered, capped backoff for transient errors only (a database
that cannot be reached is tried 11 times, each attempt logged, then the error surfaces; a
ProjectionError is logged with its entry and not retried); that a missing broker is a
ConfigurationError naming PACTLEDGER_BROKER_URL, and exit 2 with that sentence from
``pactledger worker`` and ``pactledger beat``; and that ``celery_trigger`` returns at once
from a dead broker, logging an outage once and its end once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from celery.schedules import maybe_schedule
from typer.testing import CliRunner

from ledger.app import dispatch
from ledger.app.dispatch import PROJECT_QUEUE, PROJECT_TASK, celery_trigger
from ledger.app.projection import RunResult
from ledger.cli.main import app as cli
from ledger.errors import ConfigurationError, ProjectionError, StoreUnavailableError
from ledger.settings import Settings
from workers import make_celery
from workers.celery_app import CATCH_UP_ENTRY
from workers.tasks import ProjectorsCache, summarise

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_AMQP = "amqp://guest:guest@127.0.0.1:1//"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "broker_url": "memory://",
        "database_url": "postgresql://nobody@127.0.0.1:1/pactledger",
        "project_every_s": 2.5,
    }
    return Settings(**(values | overrides))


def test_make_celery_acknowledges_late_one_message_at_a_time_in_json() -> None:
    conf = make_celery(settings()).conf
    assert conf.broker_url == "memory://"
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.result_backend is None
    assert conf.broker_connection_retry_on_startup is True
    assert conf.task_default_queue == PROJECT_QUEUE
    assert conf.task_routes[PROJECT_TASK] == {"queue": PROJECT_QUEUE}


def test_beat_sends_the_catch_up_every_project_every_s_seconds() -> None:
    entry = make_celery(settings(project_every_s=2.5)).conf.beat_schedule[CATCH_UP_ENTRY]
    assert entry["task"] == PROJECT_TASK
    assert maybe_schedule(entry["schedule"]).run_every == timedelta(seconds=2.5)
    assert entry["options"]["queue"] == PROJECT_QUEUE
    assert entry["options"]["expires"] >= 2 * 2.5  # a stale catch-up expires, never piles up


def test_a_named_queue_routes_the_task_and_the_schedule() -> None:
    conf = make_celery(settings(), queue="pactledger.test").conf
    assert conf.task_routes[PROJECT_TASK] == {"queue": "pactledger.test"}
    assert conf.beat_schedule[CATCH_UP_ENTRY]["options"]["queue"] == "pactledger.test"


def test_the_project_task_has_a_stable_name_and_bounded_retries_for_transient_errors() -> None:
    task = make_celery(settings()).tasks[PROJECT_TASK]
    assert task.name == "pactledger.project"
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert StoreUnavailableError in task.autoretry_for
    assert not any(issubclass(ProjectionError, kind) for kind in task.autoretry_for)
    assert task.retry_backoff is True
    assert task.retry_backoff_max == 60
    assert task.retry_jitter is True
    assert task.max_retries == 10


def test_an_unreachable_database_is_retried_ten_times_then_surfaces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = make_celery(settings()).tasks[PROJECT_TASK]
    with caplog.at_level(logging.WARNING, logger="workers.tasks"):
        result = task.apply()  # eager: retries run at once, without their countdown
    assert result.failed()
    assert isinstance(result.result, StoreUnavailableError)
    mine = [r.getMessage() for r in caplog.records if r.name == "workers.tasks"]
    assert len(mine) == 11
    assert all("retrying with backoff" in message for message in mine[:10])
    assert "attempt 10 of 11" in mine[9]
    assert "gave up after 11 attempts" in mine[10]


def test_a_projection_error_is_logged_with_its_entry_and_not_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []

    class Stopped:
        def catch_up(self, names: Any = None) -> list[RunResult]:
            calls.append(names)
            raise ProjectionError("compliance", 41, "FutureEvent", 3, "unknown type")

    monkeypatch.setattr(ProjectorsCache, "get", lambda self: Stopped())
    task = make_celery(settings()).tasks[PROJECT_TASK]
    with caplog.at_level(logging.ERROR, logger="workers.tasks"):
        result = task.apply(kwargs={"names": ["compliance"]})
    assert result.failed()
    assert "seq 41" in str(result.result)  # JSON results carry the message, not the class
    assert calls == [["compliance"]]
    (record,) = [r for r in caplog.records if r.name == "workers.tasks"]
    assert (record.projector, record.seq, record.event_type, record.schema_version) == (  # type: ignore[attr-defined]
        "compliance",
        41,
        "FutureEvent",
        3,
    )
    assert "seq 41" in record.getMessage()


def test_the_task_returns_a_json_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    done = [RunResult("compliance", 5, 9), RunResult("chargeback", 0, -1, busy=True)]

    class Done:
        def catch_up(self, names: Any = None) -> list[RunResult]:
            return done

    monkeypatch.setattr(ProjectorsCache, "get", lambda self: Done())
    result = make_celery(settings()).tasks[PROJECT_TASK].apply()
    assert result.get() == summarise(done)
    assert summarise(done) == {
        "projected": 5,
        "projectors": {
            "compliance": {"projected": 5, "position": 9, "busy": False},
            "chargeback": {"projected": 0, "position": -1, "busy": True},
        },
    }


@pytest.mark.parametrize("missing", [None, ""])
def test_make_celery_without_a_broker_names_the_setting(missing: str | None) -> None:
    with pytest.raises(ConfigurationError, match="PACTLEDGER_BROKER_URL") as caught:
        make_celery(settings(broker_url=missing))
    assert "in-process" in str(caught.value)


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_the_commands_without_a_broker_exit_2_saying_how_to_set_it(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PACTLEDGER_BROKER_URL", raising=False)
    result = CliRunner().invoke(cli, [command])
    assert result.exit_code == 2, result.output
    assert "PACTLEDGER_BROKER_URL" in result.output
    assert "in-process" in result.output


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_the_commands_help_names_the_broker_setting_with_examples(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    for needle in ("PACTLEDGER_BROKER_URL", "redis://", "amqp://"):
        assert needle in result.output


def test_a_bad_loglevel_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACTLEDGER_BROKER_URL", "memory://")
    result = CliRunner().invoke(cli, ["worker", "--loglevel", "loud"])
    assert result.exit_code == 2
    assert "--loglevel" in result.output


@pytest.mark.parametrize("url", [DEAD_REDIS, DEAD_AMQP])
def test_the_trigger_swallows_a_dead_broker_and_logs_the_outage_once(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = celery_trigger(url)
    with caplog.at_level(logging.WARNING, logger="ledger.app.dispatch"):
        for _ in range(5):
            assert trigger() is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "127.0.0.1:1" in warnings[0].getMessage()
    assert "guest:guest" not in warnings[0].getMessage()


def test_the_trigger_swallows_a_broker_url_it_cannot_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ledger.app.dispatch"):
        trigger = celery_trigger("nosuchtransport://broker")
        trigger()
    assert len(caplog.records) == 1


def test_the_trigger_logs_an_outage_once_and_its_end_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dispatch, "QUIET_S", 0.0)  # try the broker on every call
    trigger = celery_trigger("memory://")
    answers = iter([OSError("down"), OSError("still down"), None, None, OSError("down again")])

    def send_task(*args: Any, **kwargs: Any) -> None:
        if (answer := next(answers)) is not None:
            raise answer

    monkeypatch.setattr(trigger._app, "send_task", send_task)
    with caplog.at_level(logging.INFO, logger="ledger.app.dispatch"):
        for _ in range(5):
            trigger()
    assert [(r.levelname, "down" in r.getMessage()) for r in caplog.records] == [
        ("WARNING", True),
        ("INFO", False),
        ("WARNING", True),
    ]
    assert "answers again" in caplog.records[1].getMessage()
    trigger.close()
