"""Personal data through the API: POST /v1/events and OTLP spans (``user.id``, ``user.email``)
are stored encrypted when a key-encryption key is configured, refused (422, nothing written)
when none is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.otlp import decode_traces, map_spans
from ledger.app.keys import create_kek, load_signer
from ledger.app.personal_data import erase_subject
from ledger.settings import Settings
from tests.api.conftest import Api, serve
from tests.api.test_otlp import dumps, json_document, one, span
from tests.conftest import ORIGIN
from tests.domain import routed

pytestmark = pytest.mark.anyio

ALICE = {"end_user_id": "alice-4711", "end_user_email": "alice@example.eu"}


@pytest.fixture
def with_kek(api_settings: Settings, tmp_path: Path) -> Settings:
    kek = tmp_path / "kek.key"
    create_kek(kek)
    return api_settings.model_copy(update={"kek": kek})


def stored_payload(api: Api, request_id: str) -> dict[str, Any]:
    (entry,) = api.services.ledger.store.stream_entries(f"request:{request_id}")
    payload: dict[str, Any] = json.loads(entry.entry_bytes)["payload"]
    return payload


async def test_personal_fields_are_stored_encrypted(with_kek: Settings) -> None:
    async with serve(with_kek) as api:
        response = await api.post("/v1/events", "ingest-acme", routed(501, **ALICE))
        assert response.status_code == 201, response.text
        payload = stored_payload(api, "req-501")
        assert payload["end_user_id"].startswith("pdk1:")
        assert "alice" not in json.dumps(payload)


async def test_without_a_kek_personal_data_is_a_422_naming_the_field(
    api_settings: Settings,
) -> None:
    async with serve(api_settings.model_copy(update={"kek": Path("/nonexistent/kek")})) as api:
        before = api.services.ledger.head().size
        response = await api.post("/v1/events", "ingest-acme", routed(502, **ALICE))
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["field"] == "payload.end_user_id"
        assert "pactledger init" in error["message"]
        assert api.services.ledger.head().size == before


def test_otlp_user_attributes_map_to_the_personal_fields() -> None:
    attributes = {**span()["attributes"], "user.id": "alice-4711", "user.email": "a@x.eu"}
    body = dumps(json_document(one(span(attributes=attributes))))
    (entry,) = map_spans(decode_traces(body, "application/json"), default_tenant="acme").entries
    assert entry["payload"]["end_user_id"] == "alice-4711"
    assert entry["payload"]["end_user_email"] == "a@x.eu"
    legacy = {**span()["attributes"], "enduser.id": "bob"}
    body = dumps(json_document(one(span(attributes=legacy))))
    (entry,) = map_spans(decode_traces(body, "application/json"), default_tenant="acme").entries
    assert entry["payload"]["end_user_id"] == "bob"


async def test_otlp_spans_with_a_user_are_stored_encrypted(with_kek: Settings) -> None:
    attributes = {**span()["attributes"], "user.id": "alice-4711"}
    body = dumps(json_document(one(span(attributes=attributes))))
    async with serve(with_kek) as api:
        response = await api.client.post(
            "/v1/otlp/v1/traces",
            content=body,
            headers={**api.auth("ingest-acme"), "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert response.json().get("partialSuccess", {}).get("rejectedSpans", 0) == 0
        payload = stored_payload(api, "req-7")
        assert payload["end_user_id"].startswith("pdk1:")


async def test_provenance_shows_personal_fields_in_clear_then_erased(with_kek: Settings) -> None:
    async with serve(with_kek) as api:
        response = await api.post("/v1/events", "ingest-acme", routed(503, **ALICE))
        assert response.status_code == 201, response.text
        api.services.ledger.signer = load_signer(with_kek.signing_key, ORIGIN)
        api.services.ledger.checkpoint()
        found = (await api.get("/v1/provenance/req-503", "auditor-all")).json()
        (entry,) = found["entries"]
        assert entry["personal"] == ALICE
        assert entry["payload"]["end_user_id"].startswith("pdk1:")
        erase_subject(api.services.ledger, "alice-4711", request_ref="DSR-9", retention_days=183)
        again = (await api.get("/v1/provenance/req-503", "auditor-all")).json()
        (entry_after,) = again["entries"]
        assert entry_after["personal"] == dict.fromkeys(ALICE, "[erased]")
        assert entry_after["leaf_hash"] == entry["leaf_hash"]
        assert entry_after["inclusion_proof"] == entry["inclusion_proof"]
        prov = (await api.get("/v1/provenance/req-503?format=prov", "auditor-all")).text
        assert "alice" not in prov
        assert "end_user" not in prov
