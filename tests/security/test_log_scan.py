"""The logs of the hostile suite hold no secret and no stack trace (issue 9 item 3).

A handler on the root logger at DEBUG (every library's records reach it, SQLAlchemy's SQL and
parameters included) captures everything while the whole API part of the hostile suite
(``test_hostile_input.py``: bad bodies, oversized batches and bodies, SQL and path fragments in
every GET parameter, forged, revoked and other tenants' keys) and a rate-limited key run
against the app, on SQLite and PostgreSQL; then every formatted record — message, arguments and
any exception with its traceback — is scanned for ``Traceback``, source paths and each secret:
every API key and its secret part, the signing key's PEM and the key-encryption key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.settings import Settings
from tests.api.conftest import Template
from tests.domain import routed
from tests.security import test_hostile_input as suite
from tests.security.test_hostile_input import Hostile, hostile_settings, running

LEAKS = ("Traceback", 'File "', "site-packages", "/work/")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.lines.append(self.format(record))  # includes the traceback of exc_info


@pytest.fixture
def captured() -> Iterator[Capture]:
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.anyio
async def test_no_secret_or_traceback_in_the_logs_of_the_hostile_suite(
    captured: Capture, api_settings: Settings, api_template: Template, tmp_path: Path
) -> None:
    limited = tmp_path / "limited"
    limited.mkdir()
    await suite.test_a_batch_over_the_limit_and_a_body_over_the_limit_are_413(
        api_settings, api_template, limited
    )
    settings = hostile_settings(api_settings, tmp_path, api_max_batch=50)
    async with running(settings, api_template) as hostile:
        await suite.test_bad_event_bodies_are_refused_and_write_nothing(hostile)
        await suite.test_sql_and_path_fragments_in_every_get_parameter_are_harmless(hostile)
        await suite.test_forged_revoked_and_other_tenant_keys_are_refused(hostile)
        secrets = hostile.secrets
    limited_rate = settings.model_copy(update={"api_rate_limit": 0.001})
    async with running(limited_rate, api_template) as hostile:
        await _rate_limited(hostile)
    assert captured.count > 100  # the scan read something: the suite's requests were logged
    text = "\n".join(captured.lines)
    for leak in LEAKS:
        assert leak not in text, _around(text, leak)
    for secret in secrets:
        assert secret not in text, "a secret is in the logs"


async def _rate_limited(hostile: Hostile) -> None:
    headers = hostile.auth("auditor-acme")
    first = await hostile.send("GET", "/v1/audit/inferences", headers=headers)
    assert first.status_code == 200
    refused = await hostile.send("GET", "/v1/audit/inferences", headers=headers)
    assert refused.status_code == 429
    batch = await hostile.send(
        "POST", "/v1/events:batch", json={"events": [routed(99)]}, headers=hostile.auth("admin")
    )
    assert batch.status_code in (201, 429)
    assert isinstance(batch, httpx.Response)


def _around(text: str, needle: str) -> str:
    at = text.index(needle)
    return text[max(0, at - 1500) : at + 500]
