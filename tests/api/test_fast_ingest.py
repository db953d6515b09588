"""The lean ``POST /v1/events`` path (api/fast_ingest.py) answers exactly as the FastAPI route.

Every case is sent, with the key already remembered by the app's key cache, to the app as it
is served (lean path first) and to a twin over the same ledger built with
``fast_ingest=False`` (the route alone): status, body and ``WWW-Authenticate`` must agree, and
a refusal must leave the head where it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.services import Services, services
from ledger.log.entry import utc_now
from ledger.settings import Settings
from tests.api.conftest import Api, Template
from tests.domain import routed

pytestmark = pytest.mark.anyio

BASE = "http://pactledger.test"


@dataclass
class Twins:
    api: Api  # the app as served: lean path in front of the route
    app: FastAPI
    route_only: httpx.AsyncClient

    def head(self) -> int:
        return self.api.services.ledger.head().size

    async def both(
        self, key: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[httpx.Response, httpx.Response]:
        sent = {
            "Content-Type": "application/json",
            **self.api.auth(key),
            **(headers or {}),
        }
        lean = await self.api.client.post("/v1/events", content=body, headers=sent)
        route = await self.route_only.post("/v1/events", content=body, headers=sent)
        return lean, route


@pytest.fixture
async def twins(api_settings: Settings, api_template: Template) -> AsyncIterator[Twins]:
    lean = create_app(api_settings)
    route = create_app(api_settings, fast_ingest=False)
    async with (
        lean.router.lifespan_context(lean),
        route.router.lifespan_context(route),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=lean), base_url=BASE) as client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url=BASE) as other,
    ):
        api = Api(client, dict(api_template.keys), lean.state.services)
        for name in api.keys:  # one refused request each: the key is now remembered
            response = await client.post("/v1/events", json={}, headers=api.auth(name))
            assert response.status_code in (403, 422), response.text
        yield Twins(api, lean, other)


def same_answer(lean: httpx.Response, route: httpx.Response) -> dict[str, Any]:
    assert lean.status_code == route.status_code, (lean.text, route.text)
    assert lean.json() == route.json()
    assert lean.headers.get("www-authenticate") == route.headers.get("www-authenticate")
    assert lean.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = lean.json()
    return body


def encoded(entry: dict[str, Any]) -> bytes:
    return orjson.dumps(entry)


async def test_a_warm_well_formed_post_never_reaches_the_route(twins: Twins) -> None:
    async def unreachable() -> Services:
        raise AssertionError("the FastAPI route was called")

    twins.app.dependency_overrides[services] = unreachable
    before = twins.head()
    response = await twins.api.post("/v1/events", "ingest-acme", routed(1))
    assert response.status_code == 201, response.text
    assert response.json()["seq"] == before
    assert twins.head() == before + 1
    # A request the lean path hands on does reach the route (and its override).
    with pytest.raises(AssertionError, match="the FastAPI route was called"):
        await twins.api.post("/v1/events", "ingest-globex", routed(2))


REFUSED: dict[str, tuple[str, bytes, dict[str, str]]] = {
    "viewer key": ("viewer-acme", encoded(routed(1)), {}),
    "another tenant": ("ingest-globex", encoded(routed(1)), {}),
    "unknown key": (
        "ingest-acme",
        encoded(routed(1)),
        {"Authorization": "Bearer plk_" + "0" * 12 + "_" + "A" * 43},
    ),
    "malformed key": ("ingest-acme", encoded(routed(1)), {"Authorization": "Bearer nonsense"}),
    "basic scheme": ("ingest-acme", encoded(routed(1)), {"Authorization": "Basic dXNlcjpwdw=="}),
    "invalid json": ("ingest-acme", b'{"type": "InferenceRouted",', {}),
    "not an object": ("ingest-acme", b"[]", {}),
    "unknown field": ("ingest-acme", encoded({**routed(1), "colour": "red"}), {}),
    "missing tenant": (
        "ingest-acme",
        encoded({k: v for k, v in routed(1).items() if k != "tenant"}),
        {},
    ),
    "naive time": ("ingest-acme", encoded(routed(1, occurred_at="2026-11-02T10:00:00")), {}),
    "text content type": ("ingest-acme", encoded(routed(1)), {"Content-Type": "text/plain"}),
    "keys disagree": (
        "ingest-acme",
        encoded({**routed(1), "idempotency_key": "body-key"}),
        {"Idempotency-Key": "header-key"},
    ),
    # Refused by the ledger's admission, after the model accepted the body:
    "unknown type": ("ingest-acme", encoded({**routed(1), "type": "InferenceTeleported"}), {}),
    "missing payload field": (
        "ingest-acme",
        encoded(
            {
                **routed(1),
                "payload": {k: v for k, v in routed(1)["payload"].items() if k != "model"},
            }
        ),
        {},
    ),
    "float tokens": ("ingest-acme", encoded(routed(1, input_tokens=1.5)), {}),
    "stale expected version": ("ingest-acme", encoded({**routed(1), "expected_version": 7}), {}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_refusal_is_the_routes_and_appends_nothing(twins: Twins, case: str) -> None:
    key, body, headers = REFUSED[case]
    before = twins.head()
    lean, route = await twins.both(key, body, headers)
    error = same_answer(lean, route)["error"]
    assert error["status"] >= 400
    assert twins.head() == before


async def test_an_accepted_post_answers_alike(twins: Twins) -> None:
    lean, route = await twins.both("ingest-acme", encoded(routed(1)))
    assert (lean.status_code, route.status_code) == (201, 201), (lean.text, route.text)
    first, second = lean.json(), route.json()
    assert set(first) == set(second)
    assert second["seq"] == first["seq"] + 1
    assert second["stream_version"] == first["stream_version"] + 1  # the same request stream


async def test_an_idempotent_retry_answers_the_same_receipt_on_both_paths(twins: Twins) -> None:
    headers = {"Idempotency-Key": "fast-1"}
    first = await twins.api.client.post(
        "/v1/events",
        content=encoded(routed(1)),
        headers={"Content-Type": "application/json", **twins.api.auth("ingest-acme"), **headers},
    )
    assert first.status_code == 201, first.text
    before = twins.head()
    lean, route = await twins.both("ingest-acme", encoded(routed(1)), headers)
    retry = same_answer(lean, route)
    assert lean.status_code == 200
    assert retry == {**first.json(), "duplicate": True}
    assert twins.head() == before


async def test_a_key_reused_with_other_content_conflicts_on_both_paths(twins: Twins) -> None:
    headers = {"Idempotency-Key": "fast-2"}
    lean, _ = await twins.both("ingest-acme", encoded(routed(1)), headers)
    assert lean.status_code == 201, lean.text
    before = twins.head()
    lean, route = await twins.both("ingest-acme", encoded(routed(2)), headers)
    assert same_answer(lean, route)["error"]["code"] == "idempotency_conflict"
    assert twins.head() == before


async def test_a_key_revoked_through_the_api_process_is_refused_at_once(twins: Twins) -> None:
    found = twins.api.services
    token = twins.api.keys["ingest-acme"]
    key_id = token.split("_")[1]
    assert (await twins.api.post("/v1/events", "ingest-acme", routed(1))).status_code == 201
    found.keys.revoke_key(key_id, utc_now())
    before = twins.head()
    refused = await twins.api.post("/v1/events", "ingest-acme", routed(2))
    assert refused.status_code == 401, refused.text
    assert twins.head() == before
