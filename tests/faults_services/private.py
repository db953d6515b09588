"""Private service instances for one fault test: a PostgreSQL cluster and a Redis server that
the test may crash and restart without touching the shared services other tests use.

* :class:`PostgresCluster` runs the PostgreSQL 15 binaries (``initdb``, ``pg_ctl``) as the
  ``postgres`` OS user on a free port, with trust authentication and ``fsync=off`` (a crash
  with ``pg_ctl stop -m immediate`` still exercises WAL recovery: only an OS crash would need
  fsync). Its data directory lives in a temporary directory of its own that the ``postgres``
  user owns, removed in teardown.
* :class:`RedisServer` runs ``redis-server --save "" --appendonly no`` on a free port and can be
  shut down (``SHUTDOWN NOSAVE``: every queued message is lost) and started again on the same
  port.

When the binaries (or the ``postgres`` user, or root to switch to it) are missing the test is
skipped, or fails when CI=true.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from tests.conftest import IN_CI

PG_BIN = Path(os.environ.get("PACTLEDGER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S = 60


def unavailable(message: str) -> None:
    """Skip the test, or fail it when CI=true (a CI machine must run it)."""
    if IN_CI:
        pytest.fail(f"{message} (mandatory in CI)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """A PostgreSQL cluster of one test, run as the ``postgres`` OS user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        command = ["runuser", "-u", "postgres", "--", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
                + self.tail()
            )

    def create(self) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8", "--locale", "C",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c unix_socket_directories={self.root} -c max_connections=50"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every backend is killed, no checkpoint is written."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started private cluster, stopped and deleted afterwards."""
    if not (PG_BIN / "pg_ctl").exists() or shutil.which("runuser") is None:
        unavailable(f"the PostgreSQL binaries are not in {PG_BIN} (or runuser is missing)")
    if os.geteuid() != 0:
        unavailable("starting a private PostgreSQL cluster needs root (to run as 'postgres')")
    try:
        import pwd

        owner = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("there is no 'postgres' OS user to run a private cluster")
    root = Path(tempfile.mkdtemp(prefix="pactledger-pg-"))
    os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = PostgresCluster(root)
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


class RedisServer:
    """A ``redis-server`` of one test with no persistence: a restart forgets everything."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        log = (self.root / f"redis-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.starts += 1
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``: the server exits and what it held is gone."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=True)
        client.close()
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    root = Path(tempfile.mkdtemp(prefix="pactledger-redis-"))
    server = RedisServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
