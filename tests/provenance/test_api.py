"""``GET /v1/provenance/{id}?format=prov`` over the real app: a PROV-JSON document (media type
``application/json``) that the ``prov`` library parses, tied to the same entries and checkpoint
as the default JSON answer, without personal fields; ``format=json`` is the default answer
unchanged; another tenant's request stays a 404, the same as a missing one; a format the route
does not know is a 422 naming the parameter; OpenAPI documents the parameter."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prov.model import ProvDocument

from tests.api.conftest import Api
from tests.provenance.scenario import DECISION, REQUEST, decision_line, routed_line

pytestmark = pytest.mark.anyio
PL = "pactledger:"


async def record(api: Api) -> None:
    for line in (decision_line(), routed_line()):
        posted = await api.post("/v1/events", "ingest-acme", line)
        assert posted.status_code == 201, posted.text
    api.services.ledger.checkpoint()


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status
    assert error["code"] == code
    return error


def attributes(doc: ProvDocument, name: str) -> dict[str, Any]:
    (record_,) = [r for r in doc.get_records() if str(r.identifier) == name]
    return {str(k): v for k, v in record_.attributes}


async def test_format_prov_is_prov_json_of_the_same_entries(api: Api) -> None:
    await record(api)
    plain = await api.get(f"/v1/provenance/{REQUEST}", "viewer-acme")
    prov = await api.get(f"/v1/provenance/{REQUEST}", "viewer-acme", params={"format": "prov"})
    assert prov.status_code == 200, prov.text
    assert prov.headers["content-type"] == "application/json"
    assert "end_user" not in prov.text
    doc = ProvDocument.deserialize(content=prov.text, format="json")
    body = plain.json()
    checkpoint = body["checkpoint"]
    for entry in body["entries"]:
        values = attributes(doc, f"{PL}entry/{entry['seq']}")
        assert values[PL + "leaf_hash"] == entry["leaf_hash"]
        assert values[PL + "seq"] == entry["seq"]
        assert values[PL + "checkpoint_root"] == checkpoint["root_hash"]
        assert values[PL + "checkpoint_tree_size"] == checkpoint["tree_size"]
    decision = attributes(doc, f"{PL}decision/{DECISION}")
    assert decision[PL + "seq"] == body["entries"][0]["seq"]
    again = await api.get(f"/v1/provenance/{REQUEST}", "auditor-acme", params={"format": "prov"})
    assert again.text == prov.text


async def test_format_json_is_the_default_answer(api: Api) -> None:
    await record(api)
    plain = await api.get(f"/v1/provenance/{REQUEST}", "viewer-acme")
    explicit = await api.get(f"/v1/provenance/{REQUEST}", "viewer-acme", params={"format": "json"})
    assert explicit.status_code == plain.status_code == 200
    assert explicit.json() == plain.json()
    assert set(plain.json()) == {"request_id", "checkpoint", "entries"}


async def test_another_tenants_request_is_still_a_404(api: Api) -> None:
    await record(api)
    hidden = await api.get(f"/v1/provenance/{REQUEST}", "viewer-globex", params={"format": "prov"})
    missing = await api.get("/v1/provenance/req-404", "viewer-globex", params={"format": "prov"})
    hidden_error = error_of(hidden, 404, "not_found")
    missing_error = error_of(missing, 404, "not_found")
    assert hidden_error["message"] == missing_error["message"].replace("req-404", REQUEST)


async def test_a_format_it_does_not_know_is_a_422(api: Api) -> None:
    await record(api)
    response = await api.get(f"/v1/provenance/{REQUEST}", "viewer-acme", params={"format": "xml"})
    error = error_of(response, 422, "validation_error")
    assert error.get("field") == "format"


async def test_openapi_documents_the_format_parameter(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/provenance/{request_id}"]["get"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert parameter["in"] == "query"
    assert parameter["schema"]["enum"] == ["json", "prov"]
    assert parameter["schema"]["default"] == "json"
