"""The API answers end to end: one entry in, its provenance out with a proof."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.domain import routed

pytestmark = pytest.mark.anyio


async def test_an_entry_goes_in_and_its_provenance_comes_out(api: Api) -> None:
    posted = await api.post("/v1/events", "ingest-acme", routed(1))
    assert posted.status_code == 201, posted.text
    api.services.ledger.checkpoint()
    found = await api.get("/v1/provenance/req-1", "viewer-acme")
    assert found.status_code == 200, found.text
    body = found.json()
    assert [e["seq"] for e in body["entries"]] == [posted.json()["seq"]]
    assert body["entries"][0]["inclusion_proof"]["root_hash"] == body["checkpoint"]["root_hash"]
    hidden = await api.get("/v1/provenance/req-1", "viewer-globex")
    assert hidden.status_code == 404
