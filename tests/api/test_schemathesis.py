"""Property-based fuzzing of every route in the OpenAPI document (schemathesis): whatever the
generated request, the API answers without a server error, and every refusal comes in its one
error shape.

Bounded for CI (``max_examples`` per operation); run longer by hand with
``PACTLEDGER_FUZZ_EXAMPLES=500 pytest tests/api/test_schemathesis.py``."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from api.app import create_app
from ledger.access import Role, create_key
from ledger.app.governance import publish_policies
from ledger.log.entry import utc_now
from ledger.policy import load_policy_set
from ledger.settings import Settings
from tests.conftest import ORIGIN, open_sql_store
from tests.domain import price_list, routed

EXAMPLES = int(os.environ.get("PACTLEDGER_FUZZ_EXAMPLES", "25"))


def _fuzzed_app() -> tuple[FastAPI, str]:
    """An app over a SQLite ledger of its own (schemathesis needs the schema at collection)."""
    directory = Path(tempfile.mkdtemp(prefix="pactledger-fuzz-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    url = f"sqlite:///{directory}/ledger.db"
    open_sql_store(url).engine.dispose()
    app = create_app(Settings(database_url=url, signing_key=directory / "none.pem", origin=ORIGIN))
    found = app.state.services
    publish_policies(found.ledger, load_policy_set())
    found.ledger.append([price_list(), routed(1, tenant="acme")])
    token, _ = create_key(
        found.keys, role=Role.ADMIN, tenants=[], all_tenants=True, name="fuzz", now=utc_now()
    )
    return app, token


APP, TOKEN = _fuzzed_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_route_answers_with_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    content_type = response.headers.get("content-type", [""])
    if response.status_code >= 400 and "json" in str(content_type):
        error = response.json()["error"]
        assert error["status"] == response.status_code
        assert error["code"]
        assert error["message"]
