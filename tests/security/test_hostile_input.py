"""Hostile input is refused quickly, clearly, without writing anything or leaking anything
(issue 9 item 3; docs/security.md).

Every case below is sent to the real ASGI app (SQLite and PostgreSQL) or the real CLI, and
each answer must be: a refusal with the documented status, ``code`` and, where the input has
a name, ``field``; the ledger's head unchanged; no stack trace (``Traceback``, a source file
path) and no secret (any API key, the signing key's PEM, the key-encryption key) in the answer.
The same suite runs with every log record captured in ``test_log_scan.py``.

Cases: JSON nested thousands deep, a string over the 64 KiB entry limit, a batch over
``PACTLEDGER_API_MAX_BATCH`` and a body over ``PACTLEDGER_API_MAX_BODY_BYTES``, a body that is
not UTF-8, NaN / Infinity / -Infinity, a duplicate object key (refused, not "last one wins"),
``occurred_at`` far in the future or without a zone, SQL and path fragments in every query and
path parameter of every GET route of the OpenAPI document and in every CLI path argument, a
forged API key (right prefix, wrong secret), a revoked key replayed, and a key of another
tenant. A hang would fail the test: each request runs under ``anyio.fail_after``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

from api.app import create_app
from api.services import Services
from ledger.access import revoke_key
from ledger.app.keys import create_kek, load_signer
from ledger.log.entry import utc_now
from ledger.settings import Settings
from tests.api.conftest import Template
from tests.cli.test_cli import oversized_price_list
from tests.conftest import ORIGIN
from tests.domain import routed

HOSTILE = (
    "' OR 1=1 --",
    "../../etc/passwd",
    "%00",
    "\x00",
    ";DROP TABLE entries",
    "1; DELETE FROM entries",
    "${jndi:ldap://x}",
    "x" * 5000,
)
# valid values for the parameters a request needs besides the hostile one
VALID = {"event_type": "InferenceRouted", "request_id": "req-1", "seq": "0", "first": "1"}
LIMIT_S = 30  # a guard against a hang, not a timing assertion
# a filter parameter that names something: a hostile value must match nothing
FILTERS = {"tenant", "business_unit", "model", "provider", "region", "policy", "status"}
LEAKS = re.compile(r"Traceback|File \"|\.py\b|/work/|site-packages|sqlalchemy|psycopg|sqlite3")


@dataclass
class Hostile:
    client: httpx.AsyncClient
    services: Services
    keys: dict[str, str]
    secrets: list[str]

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def size(self) -> int:
        return self.services.ledger.head().size

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with anyio.fail_after(LIMIT_S):
            response = await self.client.request(method, path, **kwargs)
        assert_clean(response, self.secrets)
        return response


def assert_clean(response: httpx.Response, secrets: list[str]) -> None:
    text = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    assert response.status_code < 500, text[:2000]
    assert not LEAKS.search(text), text[:2000]
    for secret in secrets:
        assert secret not in text


def assert_refused(
    response: httpx.Response,
    status: int,
    code: str,
    *,
    field: str | None = None,
    case: str = "",
) -> dict[str, Any]:
    assert response.status_code == status, (case, response.text[:2000])
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status, case
    assert error["code"] == code, (case, error)
    assert error["message"], case
    if field is not None:
        assert error.get("field") == field, (case, error)
    return error


def secrets_of(settings: Settings, keys: dict[str, str]) -> list[str]:
    found = list(keys.values())
    found += [token[len("plk_") + 12 + 1 :] for token in keys.values()]  # the secrets
    pem = settings.signing_key.read_text()
    found += [pem, *(line for line in pem.splitlines() if line and "PRIVATE" not in line)]
    found.append(settings.kek.read_text().strip())
    return found


def hostile_settings(api_settings: Settings, tmp_path: Path, **changes: Any) -> Settings:
    kek = tmp_path / "kek.key"
    create_kek(kek)
    return api_settings.model_copy(update={"kek": kek, **changes})


@pytest.fixture
async def hostile(
    api_settings: Settings, api_template: Template, tmp_path: Path
) -> AsyncIterator[Hostile]:
    settings = hostile_settings(api_settings, tmp_path, api_max_batch=50)
    async with running(settings, api_template) as found:
        yield found


@asynccontextmanager
async def running(settings: Settings, template: Template) -> AsyncIterator[Hostile]:
    """The app over ``settings`` with a request entry of each of two tenants, checkpointed."""
    app = create_app(settings)
    found: Services = app.state.services
    found.ledger.signer = load_signer(settings.signing_key, ORIGIN)
    found.ledger.append([routed(1), routed(2, tenant="globex")])
    found.ledger.checkpoint()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pactledger.test") as client,
    ):
        keys = dict(template.keys)
        yield Hostile(client, found, keys, secrets_of(settings, keys))


def body(**payload: Any) -> dict[str, Any]:
    entry = routed(3)
    entry["payload"].update(payload)
    return entry


def raw(entry: dict[str, Any], old: str, new: str) -> bytes:
    text = json.dumps(entry)
    assert old in text
    return text.replace(old, new, 1).encode()


JSON = {"content-type": "application/json"}
DEEP = 5000
# name: (body bytes, status, code, field or None)
BAD_BODIES: dict[str, tuple[bytes, int, str, str | None]] = {
    "nested thousands deep (arrays)": (
        raw(body(), '"research"', "[" * DEEP + "]" * DEEP),
        422,
        "validation_error",
        None,
    ),
    "nested thousands deep (objects)": (
        raw(body(), '"research"', '{"a":' * DEEP + "1" + "}" * DEEP),
        422,
        "validation_error",
        None,
    ),
    "a string beyond the 64 KiB entry": (
        json.dumps(body(route_reason="x" * 70_000)).encode(),
        422,
        "validation_error",
        "payload.route_reason",
    ),
    "not UTF-8": (
        json.dumps(body()).encode().replace(b"research", b"res\xff\xfe"),
        422,
        "validation_error",
        None,
    ),
    "NaN": (raw(body(), "1003", "NaN"), 422, "validation_error", "payload.input_tokens"),
    "Infinity": (raw(body(), "1003", "Infinity"), 422, "validation_error", "payload.input_tokens"),
    "-Infinity": (
        raw(body(), "1003", "-Infinity"),
        422,
        "validation_error",
        "payload.input_tokens",
    ),
    "a duplicate key in the payload": (
        raw(
            body(),
            '"business_unit": "research"',
            '"business_unit": "research", "business_unit": "legal"',
        ),
        422,
        "validation_error",
        None,
    ),
    "a duplicate tenant": (
        raw(body(), '"tenant": "acme"', '"tenant": "globex", "tenant": "acme"'),
        422,
        "validation_error",
        None,
    ),
    "occurred_at far in the future": (
        json.dumps({**body(), "occurred_at": "9999-12-31T23:59:59Z"}).encode(),
        422,
        "validation_error",
        "occurred_at",
    ),
    "occurred_at next year": (
        json.dumps({**body(), "occurred_at": "2099-01-01T00:00:00+00:00"}).encode(),
        422,
        "validation_error",
        "occurred_at",
    ),
    "occurred_at without a zone": (
        json.dumps({**body(), "occurred_at": "2026-11-02T10:00:00"}).encode(),
        422,
        "validation_error",
        "occurred_at",
    ),
    "a NUL in a name": (
        json.dumps(body(business_unit="a\x00b")).encode(),
        422,
        "validation_error",
        "payload.business_unit",
    ),
    "a NUL in the idempotency key": (
        json.dumps({**body(), "idempotency_key": "k\x00' OR 1=1 --"}).encode(),
        422,
        "validation_error",
        "idempotency_key",
    ),
    "a lone surrogate": (
        raw(body(), "research", "r\\ud800x"),
        422,
        "validation_error",
        "payload.business_unit",
    ),
}


@pytest.mark.anyio
async def test_bad_event_bodies_are_refused_and_write_nothing(hostile: Hostile) -> None:
    size = hostile.size()
    for case, (content, status, code, field) in BAD_BODIES.items():
        # the route, then the lean path (the key is remembered after the first request)
        for _ in range(2):
            headers = {**hostile.auth("ingest-acme"), **JSON}
            response = await hostile.send("POST", "/v1/events", content=content, headers=headers)
            assert_refused(response, status, code, field=field, case=case)
        batch = b'{"events": [' + content + b"]}"
        headers = {**hostile.auth("ingest-acme"), **JSON}
        response = await hostile.send("POST", "/v1/events:batch", content=batch, headers=headers)
        error = assert_refused(response, status, code, field=field, case=case)
        if field is not None:
            assert error.get("index") == 0, case
    assert hostile.size() == size


@pytest.mark.anyio
async def test_an_entry_over_64_kib_canonical_is_refused(hostile: Hostile) -> None:
    size = hostile.size()
    headers = {**hostile.auth("admin"), **JSON}
    big = oversized_price_list()
    response = await hostile.send("POST", "/v1/events", json=big, headers=headers)
    error = assert_refused(response, 422, "validation_error")
    assert "65536" in error["message"] or "64 KiB" in error["message"], error
    assert hostile.size() == size


@pytest.mark.anyio
async def test_a_batch_over_the_limit_and_a_body_over_the_limit_are_413(
    api_settings: Settings, api_template: Template, tmp_path: Path
) -> None:
    settings = hostile_settings(api_settings, tmp_path, api_max_batch=50, api_max_body_bytes=65_536)
    async with running(settings, api_template) as hostile:
        size = hostile.size()
        headers = {**hostile.auth("ingest-acme"), **JSON}
        events = {"events": [routed(100 + n) for n in range(51)]}
        response = await hostile.send("POST", "/v1/events:batch", json=events, headers=headers)
        error = assert_refused(response, 413, "too_large")
        assert "50" in error["message"]
        huge = json.dumps({"events": [routed(n) for n in range(40)] * 10}).encode()
        assert len(huge) > 65_536
        for path in ("/v1/events:batch", "/v1/events", "/v1/decisions/residency"):
            response = await hostile.send("POST", path, content=huge, headers=headers)
            assert_refused(response, 413, "too_large")

            async def chunks(data: bytes = huge) -> AsyncIterator[bytes]:  # no Content-Length
                for start in range(0, len(data), 8192):
                    yield data[start : start + 8192]

            response = await hostile.send("POST", path, content=chunks(), headers=headers)
            assert_refused(response, 413, "too_large")
        assert hostile.size() == size


def _get_routes(app_openapi: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        (path, operations["get"].get("parameters", []))
        for path, operations in app_openapi["paths"].items()
        if "get" in operations
    ]


@pytest.mark.anyio
async def test_sql_and_path_fragments_in_every_get_parameter_are_harmless(
    hostile: Hostile,
) -> None:
    routes = _get_routes(hostile.client._transport.app.openapi())  # type: ignore[attr-defined]
    assert len(routes) >= 15
    size = hostile.size()
    tried = 0
    for path, parameters in routes:
        for parameter in parameters:
            for value in HOSTILE:
                url, query = path, {}
                for other in parameters:
                    if other is parameter:
                        continue
                    if other["in"] == "path":
                        url = url.replace(f"{{{other['name']}}}", VALID[other["name"]])
                    elif other.get("required"):
                        query[other["name"]] = VALID[other["name"]]
                if parameter["in"] == "path":
                    escaped = quote(value, safe="")
                    url = url.replace(f"{{{parameter['name']}}}", escaped)
                else:
                    query[parameter["name"]] = value
                response = await hostile.send(
                    "GET", url, params=query, headers=hostile.auth("admin")
                )
                tried += 1
                assert response.status_code in (200, 404, 422), (url, query, response.text[:500])
                if response.status_code == 422:
                    error = assert_refused(response, 422, "validation_error")
                    if parameter["in"] == "query":
                        assert error.get("field") == parameter["name"], (url, query, error)
                elif response.status_code == 404:
                    assert_refused(response, 404, "not_found")
                elif parameter["name"] in FILTERS:
                    assert not _rows(response.json()), (url, query, response.text[:500])
    assert tried >= 40 * len(HOSTILE) // 2
    assert hostile.size() == size


def _rows(answer: Any) -> list[Any]:
    """The records a filtered answer holds (audit pages, views)."""
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict):
        for name in ("items", "rows", "decisions", "inferences", "entries", "tranches"):
            if isinstance(answer.get(name), list):
                return list(answer[name])
    return []


FORGED = "plk_{key_id}_" + "A" * 43


@pytest.mark.anyio
async def test_forged_revoked_and_other_tenant_keys_are_refused(hostile: Hostile) -> None:
    size = hostile.size()
    token = hostile.keys["ingest-acme"]
    key_id = token[len("plk_") : len("plk_") + 12]
    forged = FORGED.format(key_id=key_id)
    assert forged != token
    for bad in (
        forged,
        forged.replace("plk_", "PLK_"),
        "plk_" + key_id,
        token + "x",
        "Basic " + token,
    ):
        headers = {"Authorization": f"Bearer {bad}", **JSON}
        for method, path, content in (
            ("POST", "/v1/events", json.dumps(routed(7)).encode()),
            ("POST", "/v1/events:batch", json.dumps({"events": [routed(8)]}).encode()),
            ("GET", "/v1/audit/inferences", None),
            ("GET", "/v1/provenance/req-1", None),
        ):
            response = await hostile.send(method, path, content=content, headers=headers)
            assert_refused(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"] == "Bearer"
            assert bad not in response.text
    # a revoked key, replayed after it worked (so the lean path remembers it)
    viewer = hostile.keys["viewer-acme"]
    ok = await hostile.send("GET", "/v1/provenance/req-1", headers=hostile.auth("viewer-acme"))
    assert ok.status_code == 200
    ingest = hostile.auth("ingest-acme")
    assert (
        await hostile.send("POST", "/v1/events", json=routed(9), headers=ingest)
    ).status_code == 201
    size += 1
    for name in ("viewer-acme", "ingest-acme"):
        record = revoke_key(hostile.services.keys, hostile.keys[name][4:16], now=utc_now())
        assert record.revoked_at is not None
    replay = await hostile.send(
        "GET", "/v1/provenance/req-1", headers={"Authorization": f"Bearer {viewer}"}
    )
    assert_refused(replay, 401, "unauthenticated")
    for path, payload in (
        ("/v1/events", routed(10)),
        ("/v1/events:batch", {"events": [routed(11)]}),
    ):
        replay = await hostile.send("POST", path, json=payload, headers=ingest)
        assert_refused(replay, 401, "unauthenticated")
    # a key of another tenant: writes are 403 naming the field, reads look like nothing is there
    globex = hostile.auth("ingest-globex")
    for path, payload, index in (
        ("/v1/events", routed(12), None),
        ("/v1/events", routed(12), None),  # again: the lean path
        ("/v1/events:batch", {"events": [routed(13, tenant="globex"), routed(14)]}, 1),
    ):
        response = await hostile.send("POST", path, json=payload, headers=globex)
        error = assert_refused(response, 403, "forbidden", field="tenant")
        assert error.get("index") == index
    other = hostile.auth("viewer-globex")
    response = await hostile.send("GET", "/v1/provenance/req-1", headers=other)
    assert_refused(response, 404, "not_found")
    page = await hostile.send(
        "GET", "/v1/audit/inferences", params={"tenant": "acme"}, headers=other
    )
    assert page.status_code == 200
    assert not _rows(page.json())
    assert hostile.size() == size
