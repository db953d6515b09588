"""Who may call what: every route × every key × tenant, against the real app (DESIGN §8).

The expected status of each (key, route) pair is written out by hand in :data:`EXPECTED`,
from DESIGN §8 and the role table of :mod:`ledger.access`, not computed from the code under
test:

- ingest writes for its tenants only (another tenant's entry → 403, a batch with one → 403
  naming its index) and reads nothing (403);
- viewer, auditor and admin read; readers may not write (403);
- a tenant-scoped reader asking for another tenant's request id gets the 404 of an id that
  does not exist, with the same body;
- ``GET /v1/entries`` (the mirror feed) needs the mirror permission and an all-tenants key:
  auditor-all and admin, everyone else 403;
- the projector views (``GET /v1/views/…``: status, residency, chargeback, tranches) are read
  like the rest: every reader 200 (a tenant-scoped key sees only its tenants' rows), ingest 403;
- no ``Authorization`` header, a malformed key, an unknown key, a wrong secret and a revoked
  key → 401 with ``WWW-Authenticate: Bearer``, and the key never appears in the answer;
- a 401, 403 or 404 writes nothing (the head does not move);
- the caller is checked before the body: no key and a bad body is 401, not 422.

Each cell is its own test (``viewer-acme-POST-events-acme``), on SQLite and PostgreSQL.
Operational routes and the catalogue need no key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ledger.access import revoke_key
from ledger.log.entry import utc_now
from tests.api.conftest import KEYS, Api
from tests.domain import routed

pytestmark = pytest.mark.anyio

ACME_REQUEST = "req-101"  # recorded before each test, tenant acme
GLOBEX_REQUEST = "req-102"  # recorded before each test, tenant globex
UNKNOWN_REQUEST = "req-999"  # never recorded


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: Callable[[], Any] | None = None
    writes: int = 0  # entries appended when the call succeeds


def decision_request() -> dict[str, Any]:
    return {
        "tenant": "acme",
        "data_classes": ["internal"],
        "provider": "aws",
        "region": "eu-central-1",
        "model": "claude-sonnet-4-5",
        "request_id": "req-301",
        "decision_id": "dec-301",
    }


ESTIMATE = {
    "rack": "hgx-h200",
    "model": "llama-2-70b",
    "precision": "fp8",
    "workload": "mlperf-llama2-70b",
}

ROUTES: dict[str, Route] = {
    "POST-events-acme": Route("POST", "/v1/events", lambda: routed(201), writes=1),
    "POST-events-globex": Route(
        "POST", "/v1/events", lambda: routed(202, tenant="globex"), writes=1
    ),
    "POST-events-batch-acme": Route(
        "POST", "/v1/events:batch", lambda: {"events": [routed(203), routed(204)]}, writes=2
    ),
    "POST-events-batch-mixed": Route(
        "POST",
        "/v1/events:batch",
        lambda: {"events": [routed(205), routed(206, tenant="globex")]},
        writes=2,
    ),
    "POST-decisions-residency-acme": Route(
        "POST", "/v1/decisions/residency", decision_request, writes=1
    ),
    "GET-provenance-acme": Route("GET", f"/v1/provenance/{ACME_REQUEST}"),
    "GET-provenance-globex": Route("GET", f"/v1/provenance/{GLOBEX_REQUEST}"),
    "GET-checkpoints-latest": Route("GET", "/v1/checkpoints/latest"),
    "GET-proofs-inclusion": Route("GET", "/v1/proofs/inclusion?seq=0"),
    "GET-proofs-consistency": Route("GET", "/v1/proofs/consistency?first=1"),
    "GET-entries": Route("GET", "/v1/entries"),
    "GET-views-status": Route("GET", "/v1/views/status"),
    "GET-views-residency": Route("GET", "/v1/views/residency"),
    "GET-views-chargeback": Route("GET", "/v1/views/chargeback"),
    "GET-views-tranches": Route("GET", "/v1/views/tranches"),
    "POST-estimates": Route("POST", "/v1/estimates", lambda: dict(ESTIMATE)),
    "GET-estimates-catalogue": Route("GET", "/v1/estimates/catalogue"),
    "GET-reconcile": Route("GET", "/v1/reconcile"),
}

# Keys of the fixture, then credentials that must all be refused with 401.
BAD_CREDENTIALS = ("no-key", "malformed", "unknown-key", "wrong-secret", "revoked")

# fmt: off
COLUMNS = (
    "POST-events-acme", "POST-events-globex", "POST-events-batch-acme",
    "POST-events-batch-mixed", "POST-decisions-residency-acme", "GET-provenance-acme",
    "GET-provenance-globex", "GET-checkpoints-latest", "GET-proofs-inclusion",
    "GET-proofs-consistency", "GET-entries",
    "GET-views-status", "GET-views-residency", "GET-views-chargeback", "GET-views-tranches",
    "POST-estimates", "GET-estimates-catalogue", "GET-reconcile",
)
EXPECTED_ROWS: dict[str, tuple[int, ...]] = {
    #                ev-acme ev-glbx batch  mixed  decide prov-a prov-g ckpt   incl   cons  entries
    #                 v-stat v-res  v-chrg v-tran  estim  catal  recon  (second line)
    "admin":         (201,   201,    201,   201,   200,   200,   200,   200,   200,   200,  200,
                      200,   200,   200,   200,   200,   200,   200),
    "ingest-acme":   (201,   403,    201,   403,   200,   403,   403,   403,   403,   403,  403,
                      403,   403,   403,   403,   403,   403,   403),
    "ingest-globex": (403,   201,    403,   403,   403,   403,   403,   403,   403,   403,  403,
                      403,   403,   403,   403,   403,   403,   403),
    "viewer-acme":   (403,   403,    403,   403,   403,   200,   404,   200,   200,   200,  403,
                      200,   200,   200,   200,   200,   200,   200),
    "viewer-globex": (403,   403,    403,   403,   403,   404,   200,   200,   200,   200,  403,
                      200,   200,   200,   200,   200,   200,   200),
    "auditor-all":   (403,   403,    403,   403,   403,   200,   200,   200,   200,   200,  200,
                      200,   200,   200,   200,   200,   200,   200),
    "auditor-acme":  (403,   403,    403,   403,   403,   200,   404,   200,   200,   200,  403,
                      200,   200,   200,   200,   200,   200,   200),
    "no-key":        (401,   401,    401,   401,   401,   401,   401,   401,   401,   401,  401,
                      401,   401,   401,   401,   401,   401,   401),
    "malformed":     (401,   401,    401,   401,   401,   401,   401,   401,   401,   401,  401,
                      401,   401,   401,   401,   401,   401,   401),
    "unknown-key":   (401,   401,    401,   401,   401,   401,   401,   401,   401,   401,  401,
                      401,   401,   401,   401,   401,   401,   401),
    "wrong-secret":  (401,   401,    401,   401,   401,   401,   401,   401,   401,   401,  401,
                      401,   401,   401,   401,   401,   401,   401),
    "revoked":       (401,   401,    401,   401,   401,   401,   401,   401,   401,   401,  401,
                      401,   401,   401,   401,   401,   401,   401),
}
# fmt: on
EXPECTED: dict[tuple[str, str], int] = {
    (key, route): status
    for key, row in EXPECTED_ROWS.items()
    for route, status in zip(COLUMNS, row, strict=True)
}
CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}


def test_the_table_covers_every_key_and_every_route() -> None:
    assert set(COLUMNS) == set(ROUTES)
    assert set(EXPECTED_ROWS) == set(KEYS) | set(BAD_CREDENTIALS)


def prepare(api: Api) -> None:
    """One request per tenant recorded, and a signed checkpoint over them."""
    api.services.ledger.append([routed(101, tenant="acme"), routed(102, tenant="globex")])
    api.services.ledger.checkpoint()


def credentials(api: Api, key: str) -> tuple[dict[str, str], str | None]:
    """The headers to send as ``key`` and the token in them (None without one)."""
    admin = api.keys["admin"]
    admin_id, admin_secret = admin[4:16], admin[17:]
    if key == "no-key":
        return {}, None
    if key == "malformed":
        token = "not-a-pactledger-key"
    elif key == "unknown-key":
        unknown = "000000000000" if admin_id != "000000000000" else "111111111111"
        token = f"plk_{unknown}_{admin_secret}"
    elif key == "wrong-secret":
        other = "A" * 43 if admin_secret != "A" * 43 else "B" * 43
        token = f"plk_{admin_id}_{other}"
    elif key == "revoked":
        revoke_key(api.services.keys, admin_id, now=utc_now())
        token = admin
    else:
        token = api.keys[key]
    return {"Authorization": f"Bearer {token}"}, token


async def call(api: Api, route: Route, headers: dict[str, str]) -> httpx.Response:
    if route.method == "POST":
        assert route.body is not None
        return await api.client.post(route.path, json=route.body(), headers=headers)
    return await api.client.get(route.path, headers=headers)


@pytest.mark.parametrize(
    ("key", "route_name"),
    [pytest.param(key, route, id=f"{key}-{route}") for key, route in EXPECTED],
)
async def test_access(api: Api, key: str, route_name: str) -> None:
    prepare(api)
    route = ROUTES[route_name]
    headers, token = credentials(api, key)
    before = api.services.ledger.head().size

    response = await call(api, route, headers)

    expected = EXPECTED[key, route_name]
    assert response.status_code == expected, response.text
    after = api.services.ledger.head().size
    if expected >= 400:
        assert after == before, "a refused request wrote something"
        error = response.json()["error"]
        assert error["status"] == expected
        assert error["code"] == CODES[expected]
        if token is not None:
            # plk_<12 hex>_<secret>; the secret itself may hold '_' and '-'.
            secret = token[17:] if token.startswith("plk_") else token
            assert secret not in response.text
    else:
        assert after == before + route.writes
    if expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    else:
        assert "WWW-Authenticate" not in response.headers


async def test_a_mixed_batch_refused_for_one_tenant_names_the_entry(api: Api) -> None:
    before = api.services.ledger.head().size
    body = {"events": [routed(205), routed(206, tenant="globex"), routed(207)]}
    response = await api.post("/v1/events:batch", "ingest-acme", body)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["index"] == 1
    assert error["field"] == "tenant"
    assert "globex" in error["message"]
    assert api.services.ledger.head().size == before


@pytest.mark.parametrize(
    ("key", "other"),
    [
        ("viewer-acme", GLOBEX_REQUEST),
        ("auditor-acme", GLOBEX_REQUEST),
        ("viewer-globex", ACME_REQUEST),
    ],
)
async def test_another_tenants_request_looks_like_one_that_does_not_exist(
    api: Api, key: str, other: str
) -> None:
    prepare(api)
    hidden = await api.get(f"/v1/provenance/{other}", key)
    missing = await api.get(f"/v1/provenance/{UNKNOWN_REQUEST}", key)
    assert hidden.status_code == missing.status_code == 404
    # The same answer, but for the id that was asked about.
    assert hidden.text == missing.text.replace(UNKNOWN_REQUEST, other)
    assert hidden.headers.keys() == missing.headers.keys()
    # The tenant that owns the request is named nowhere.
    assert "globex" not in hidden.text
    assert "acme" not in hidden.text


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
        pytest.param("Bearer", id="scheme-only"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param("plk_000000000000_" + "A" * 43, id="no-scheme"),
    ],
)
async def test_an_authorization_header_that_is_not_a_bearer_key_is_401(
    api: Api, authorization: str
) -> None:
    before = api.services.ledger.head().size
    response = await api.client.post(
        "/v1/events", json=routed(1), headers={"Authorization": authorization}
    )
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthenticated"
    assert api.services.ledger.head().size == before


async def test_a_revoked_key_is_refused_from_the_next_request_on(api: Api) -> None:
    first = await api.post("/v1/events", "ingest-acme", routed(1))
    assert first.status_code == 201, first.text
    revoke_key(api.services.keys, api.keys["ingest-acme"][4:16], now=utc_now())
    before = api.services.ledger.head().size
    second = await api.post("/v1/events", "ingest-acme", routed(2))
    assert second.status_code == 401, second.text
    assert "revoked" in second.json()["error"]["message"]
    assert api.services.ledger.head().size == before
    # Other keys are untouched.
    third = await api.post("/v1/events", "admin", routed(2))
    assert third.status_code == 201, third.text


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/v1/events/types"]
)
async def test_operational_routes_and_the_catalogue_need_no_key(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b"{not json",
            id="not-json",
        ),
        pytest.param(b'{"type": "InferenceRouted"}', id="missing-fields"),
        pytest.param(b'{"events": []}', id="wrong-shape"),
    ],
)
async def test_a_bad_body_without_a_key_is_401_not_422(api: Api, body: bytes) -> None:
    """Who is calling is checked before what they sent: strangers learn nothing of the schema."""
    before = api.services.ledger.head().size
    response = await api.client.post(
        "/v1/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    assert api.services.ledger.head().size == before
