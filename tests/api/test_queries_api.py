"""The read and decide side of the API over the real app: residency decisions, provenance with
inclusion proofs against the signed checkpoint, checkpoints, proofs, the mirror feed, health,
readiness, metrics and the OpenAPI document.

Proofs are not trusted on sight: each one is verified with ``ledger.integrity.merkle`` and its
root compared with a checkpoint note opened with the ledger's own verifier.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import APIRouter
from fastapi.routing import APIRoute

from api import routers
from api.app import create_app
from ledger.access import Role, create_key
from ledger.integrity.checkpoint import open_checkpoint
from ledger.integrity.merkle import ConsistencyProof, InclusionProof, leaf_hash
from ledger.log.entry import utc_now
from ledger.settings import Settings
from tests.api.conftest import Api, serve
from tests.conftest import ORIGIN, open_sql_store
from tests.domain import delivered, routed

pytestmark = pytest.mark.anyio

ERROR_KEYS = {"status", "code", "message", "field", "index"}
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/pactledger"
V1_ROUTES = {  # at least these; every /v1 route of api/routers must be documented
    ("post", "/v1/events"),
    ("post", "/v1/events:batch"),
    ("get", "/v1/events/types"),
    ("get", "/v1/events/types/{event_type}/schema"),
    ("post", "/v1/decisions/residency"),
    ("get", "/v1/provenance/{request_id}"),
    ("get", "/v1/checkpoints/latest"),
    ("get", "/v1/proofs/inclusion"),
    ("get", "/v1/proofs/consistency"),
    ("get", "/v1/entries"),
}


# --- helpers ---------------------------------------------------------------------------------


@asynccontextmanager
async def bare_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app over ``settings`` that may not even reach its database."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pactledger.test") as client,
    ):
        yield client


def error_of(
    response: httpx.Response, status: int, code: str, *, field: str | None = None
) -> dict[str, Any]:
    """The error object of ``response``, checked against the one stable error shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) <= ERROR_KEYS, error
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


def size(api: Api) -> int:
    return api.services.ledger.head().size


def decision_request(request_id: str, **fields: Any) -> dict[str, Any]:
    """EU personal data headed for a US region: the shipped policies reroute it."""
    body: dict[str, Any] = {
        "tenant": "acme",
        "data_classes": ["eu_personal"],
        "provider": "aws",
        "region": "us-east-1",
        "model": "claude-sonnet-4-5",
        "request_id": request_id,
    }
    body.update(fields)
    return body


def signing_key(path: Path) -> Path:
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    path.chmod(0o600)  # load_signer refuses a key others can read
    return path


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus exposition text."""
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match is not None, f"no sample {name}{{{labels}}} in:\n{text}"
    return float(match.group(1))


def check_entry(entry: dict[str, Any], api: Api) -> None:
    """An entry as the API shows it agrees with its own canonical bytes and the stored row."""
    canonical = entry["canonical"]
    data = json.loads(canonical)
    assert data["payload"] == entry["payload"]
    for name in ("seq", "type", "schema_version", "stream", "tenant"):
        assert data[name] == entry[name], name
    assert data["occurred_at"] == entry["occurred_at"]
    assert data["recorded_at"] == entry["recorded_at"]
    assert leaf_hash(canonical.encode()).hex() == entry["leaf_hash"]
    assert hashlib.sha256(b"\x00" + canonical.encode()).hexdigest() == entry["leaf_hash"]
    sealed = api.services.ledger.entry(entry["seq"])
    assert sealed.entry_bytes == canonical.encode()
    assert sealed.chain_hash.hex() == entry["chain_hash"]


# --- residency decisions ---------------------------------------------------------------------


async def test_eu_personal_data_bound_for_the_us_is_rerouted_and_recorded(api: Api) -> None:
    before = size(api)
    response = await api.post("/v1/decisions/residency", "ingest-acme", decision_request("r-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "reroute"
    assert body["request_id"] == "r-1"
    assert body["candidate"] == {"provider": "aws", "region": "us-east-1"}
    assert body["model_tier"] == "sonnet"
    chosen = body["chosen"]
    region = api.services.published_policies().region(chosen["provider"], chosen["region"])
    assert region is not None
    assert region.jurisdiction in ("eu", "eea")
    assert "eu-data-boundary/keep-in-boundary" in body["matched_rules"]
    assert {p["policy_id"] for p in body["policies"]} >= {"eu-data-boundary", "default-residency"}

    recorded = body["recorded"]
    assert recorded["seq"] == before
    assert recorded["tree_size"] == before + 1 == size(api)
    sealed = api.services.ledger.entry(recorded["seq"])
    assert sealed.type == "ResidencyDecided"
    assert sealed.stream == "request:r-1"
    assert sealed.tenant == "acme"
    payload = json.loads(sealed.entry_bytes)["payload"]
    assert payload["decision_id"] == body["decision_id"]
    assert payload["outcome"] == "reroute"
    assert payload["chosen_region"] == chosen["region"]


async def test_a_capability_is_routed_to_a_tier(api: Api) -> None:
    response = await api.post(
        "/v1/decisions/residency",
        "ingest-acme",
        decision_request("r-2", model=None, capability="deep_reasoning", region="eu-central-1"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["model_tier"] == "opus"
    assert response.json()["outcome"] == "allow"


async def test_a_denial_is_a_recorded_200(api: Api) -> None:
    token, _ = create_key(
        api.services.keys,
        role=Role.INGEST,
        tenants=["us-federal"],
        all_tenants=False,
        name="ingest-us-federal",
        now=utc_now(),
    )
    before = size(api)
    response = await api.client.post(
        "/v1/decisions/residency",
        json=decision_request("fed-1", tenant="us-federal", data_classes=["public"]),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "deny"
    assert body["chosen"] is None
    assert "sovereign-government/outside-sovereign" in body["matched_rules"]
    assert body["recorded"]["seq"] == before
    sealed = api.services.ledger.entry(before)
    assert (sealed.type, sealed.stream, sealed.tenant) == (
        "ResidencyDecided",
        "request:fed-1",
        "us-federal",
    )


async def test_a_retried_decision_id_appends_nothing(api: Api) -> None:
    request = decision_request("r-3", decision_id="dec-r-3")
    first = await api.post("/v1/decisions/residency", "ingest-acme", request)
    assert first.status_code == 200, first.text
    before = size(api)
    retry = await api.post("/v1/decisions/residency", "ingest-acme", request)
    assert retry.status_code == 200, retry.text
    assert retry.json()["decision_id"] == "dec-r-3"
    assert retry.json()["recorded"]["seq"] == first.json()["recorded"]["seq"]
    assert size(api) == before


async def test_a_decision_id_reused_for_other_facts_is_a_conflict(api: Api) -> None:
    first = await api.post(
        "/v1/decisions/residency", "ingest-acme", decision_request("r-4", decision_id="dec-4")
    )
    assert first.status_code == 200, first.text
    before = size(api)
    other = await api.post(
        "/v1/decisions/residency",
        "ingest-acme",
        decision_request("r-4", decision_id="dec-4", region="eu-central-1"),
    )
    error_of(other, 409, "idempotency_conflict")
    assert size(api) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"model": None, "capability": "juggling"}, "capability", id="capability"),
        pytest.param({"capability": "agentic"}, "capability", id="model-and-capability"),
        pytest.param({"model": "gpt-9"}, "model", id="model-without-tier"),
        pytest.param({"data_classes": []}, "data_classes", id="no-data-classes"),
        pytest.param({"transfer_basis": "handshake"}, "transfer_basis", id="transfer-basis"),
        pytest.param({"request_id": None}, "request_id", id="no-request-id"),
        pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    ],
)
async def test_a_bad_decision_request_is_refused(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    before = size(api)
    request = {k: v for k, v in {**decision_request("r-5"), **fields}.items() if v is not None}
    response = await api.post("/v1/decisions/residency", "ingest-acme", request)
    error_of(response, 422, "validation_error", field=field)
    assert size(api) == before


async def test_a_decision_for_another_tenant_or_by_a_reader_is_forbidden(api: Api) -> None:
    before = size(api)
    foreign = await api.post("/v1/decisions/residency", "ingest-globex", decision_request("r-6"))
    error_of(foreign, 403, "forbidden", field="tenant")
    reader = await api.post("/v1/decisions/residency", "viewer-acme", decision_request("r-6"))
    error_of(reader, 403, "forbidden")
    assert size(api) == before


async def test_deciding_without_published_policies_says_how_to_publish(
    sqlite_url: str, tmp_path: Path
) -> None:
    open_sql_store(sqlite_url).engine.dispose()  # a ledger with nothing published
    bare = Settings(database_url=sqlite_url, signing_key=tmp_path / "none.pem", origin=ORIGIN)
    async with serve(bare, publish=False) as api:
        before = size(api)
        response = await api.post("/v1/decisions/residency", "ingest-acme", decision_request("r"))
        error = error_of(response, 422, "policy_error")
        assert "pactledger policy publish" in error["message"]
        assert size(api) == before


# --- provenance ------------------------------------------------------------------------------


async def test_provenance_lists_a_requests_entries_with_proofs(api: Api) -> None:
    decided = await api.post("/v1/decisions/residency", "ingest-acme", decision_request("req-5"))
    assert decided.status_code == 200, decided.text
    other = await api.post("/v1/events", "ingest-acme", routed(6))  # another request's entry
    assert other.status_code == 201, other.text
    routed_ = await api.post("/v1/events", "ingest-acme", routed(5))
    assert routed_.status_code == 201, routed_.text
    record = api.services.ledger.checkpoint()

    response = await api.get("/v1/provenance/req-5", "viewer-acme")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == "req-5"
    entries = body["entries"]
    assert [e["seq"] for e in entries] == [
        decided.json()["recorded"]["seq"],
        routed_.json()["seq"],
    ]
    assert [e["type"] for e in entries] == ["ResidencyDecided", "InferenceRouted"]
    assert all(e["stream"] == "request:req-5" for e in entries)

    latest = await api.get("/v1/checkpoints/latest", "viewer-acme")
    assert body["checkpoint"]["note"] == latest.text == record.note
    assert body["checkpoint"]["tree_size"] == record.tree_size
    assert body["checkpoint"]["root_hash"] == record.root_hash.hex()
    assert api.services.ledger.signer is not None
    signed = open_checkpoint(latest.text, [api.services.ledger.signer.verifier], origin=ORIGIN)
    assert signed.size == record.tree_size

    for entry in entries:
        check_entry(entry, api)
        proof = InclusionProof.from_json(entry["inclusion_proof"])
        proof.verify()
        assert proof.leaf_index == entry["seq"]
        assert proof.leaf_hash.hex() == entry["leaf_hash"]
        assert proof.tree_size == signed.size
        assert proof.root_hash == signed.root_hash


async def test_an_entry_newer_than_the_checkpoint_has_no_proof_yet(api: Api) -> None:
    first = await api.post("/v1/events", "ingest-acme", routed(5))
    assert first.status_code == 201, first.text
    api.services.ledger.checkpoint()
    later = await api.post("/v1/events", "ingest-acme", routed(5, input_tokens=9))
    assert later.status_code == 201, later.text

    body = (await api.get("/v1/provenance/req-5", "auditor-acme")).json()
    proofs = {e["seq"]: e["inclusion_proof"] for e in body["entries"]}
    assert proofs[later.json()["seq"]] is None
    InclusionProof.from_json(proofs[first.json()["seq"]]).verify()


async def test_provenance_before_any_checkpoint_has_no_proofs(api: Api) -> None:
    posted = await api.post("/v1/events", "ingest-acme", routed(5))
    assert posted.status_code == 201, posted.text
    body = (await api.get("/v1/provenance/req-5", "viewer-acme")).json()
    assert body["checkpoint"] is None
    assert [e["inclusion_proof"] for e in body["entries"]] == [None]


async def test_another_tenants_request_is_not_told_apart_from_a_missing_one(api: Api) -> None:
    posted = await api.post("/v1/events", "ingest-acme", routed(5))
    assert posted.status_code == 201, posted.text
    api.services.ledger.checkpoint()
    hidden = await api.get("/v1/provenance/req-5", "viewer-globex")
    missing = await api.get("/v1/provenance/req-404", "viewer-globex")
    hidden_error = error_of(hidden, 404, "not_found")
    missing_error = error_of(missing, 404, "not_found")
    assert hidden_error == {
        **missing_error,
        "message": missing_error["message"].replace("req-404", "req-5"),
    }
    assert hidden.headers.get("content-type") == missing.headers.get("content-type")
    seen = await api.get("/v1/provenance/req-5", "viewer-acme")
    assert seen.status_code == 200, seen.text


async def test_provenance_needs_a_reading_key(api: Api) -> None:
    error_of(await api.client.get("/v1/provenance/req-5"), 401, "unauthenticated")
    error_of(await api.get("/v1/provenance/req-5", "ingest-acme"), 403, "forbidden")


# --- checkpoints and proofs ------------------------------------------------------------------


async def test_the_latest_checkpoint_is_404_until_one_is_signed(api: Api) -> None:
    missing = await api.get("/v1/checkpoints/latest", "viewer-acme")
    error = error_of(missing, 404, "not_found")
    assert "pactledger checkpoint" in error["message"]

    record = api.services.ledger.checkpoint()
    found = await api.get("/v1/checkpoints/latest", "viewer-acme")
    assert found.status_code == 200, found.text
    assert found.headers["content-type"].startswith("text/plain")
    assert found.text == record.note
    lines = found.text.split("\n")
    assert lines[:2] == [ORIGIN, str(size(api))]
    assert api.services.ledger.signer is not None
    opened = open_checkpoint(found.text, [api.services.ledger.signer.verifier], origin=ORIGIN)
    assert opened.root_hash == api.services.ledger.head().root_hash

    await api.post("/v1/events", "ingest-acme", routed(1))
    newer = api.services.ledger.checkpoint()
    again = await api.get("/v1/checkpoints/latest", "viewer-acme")
    assert again.text == newer.note != record.note


async def test_inclusion_proofs_verify_for_every_entry(api: Api) -> None:
    posted = await api.post(
        "/v1/events:batch", "admin", {"events": [delivered(n) for n in range(12)]}
    )
    assert posted.status_code == 201, posted.text
    head = api.services.ledger.head()
    for seq in range(head.size):
        response = await api.get("/v1/proofs/inclusion", "viewer-acme", params={"seq": seq})
        assert response.status_code == 200, response.text
        proof = InclusionProof.from_json(response.json())
        proof.verify()
        assert proof.tree_size == head.size
        assert proof.root_hash == head.root_hash
        assert proof.leaf_hash == api.services.ledger.entry(seq).leaf_hash

    record = api.services.ledger.checkpoint()
    older = await api.get("/v1/proofs/inclusion", "viewer-acme", params={"seq": 3, "tree_size": 7})
    assert older.status_code == 200, older.text
    proof = InclusionProof.from_json(older.json())
    proof.verify()
    assert proof.tree_size == 7
    assert record.tree_size == head.size


async def test_consistency_proofs_verify(api: Api) -> None:
    first = api.services.ledger.checkpoint()
    posted = await api.post(
        "/v1/events:batch", "admin", {"events": [delivered(n) for n in range(9)]}
    )
    assert posted.status_code == 201, posted.text
    second = api.services.ledger.checkpoint()
    response = await api.get(
        "/v1/proofs/consistency",
        "viewer-acme",
        params={"first": first.tree_size, "second": second.tree_size},
    )
    assert response.status_code == 200, response.text
    proof = ConsistencyProof.from_json(response.json())
    proof.verify()
    assert proof.first_root == first.root_hash
    assert proof.second_root == second.root_hash

    for start in range(second.tree_size + 1):
        default = await api.get("/v1/proofs/consistency", "viewer-acme", params={"first": start})
        assert default.status_code == 200, default.text
        proof = ConsistencyProof.from_json(default.json())
        proof.verify()
        assert proof.second_size == second.tree_size


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "field"),
    [
        pytest.param("inclusion", {"seq": 999}, 404, "not_found", None, id="seq-beyond-size"),
        pytest.param("inclusion", {"seq": -1}, 422, "validation_error", "seq", id="negative-seq"),
        pytest.param("inclusion", {}, 422, "validation_error", "seq", id="no-seq"),
        pytest.param("inclusion", {"seq": "x"}, 422, "validation_error", "seq", id="text-seq"),
        pytest.param(
            "inclusion",
            {"seq": 0, "tree_size": 0},
            422,
            "validation_error",
            "tree_size",
            id="size-0",
        ),
        pytest.param(
            "inclusion", {"seq": 3, "tree_size": 2}, 404, "not_found", None, id="seq-beyond-tree"
        ),
        pytest.param(
            "inclusion", {"seq": 0, "tree_size": 999}, 422, "validation_error", None, id="big-tree"
        ),
        pytest.param(
            "consistency", {"first": 4, "second": 2}, 422, "validation_error", "first", id="down"
        ),
        pytest.param(
            "consistency", {"first": -1}, 422, "validation_error", "first", id="negative-first"
        ),
        pytest.param(
            "consistency",
            {"first": 1, "second": -1},
            422,
            "validation_error",
            "second",
            id="negative-second",
        ),
        pytest.param("consistency", {"first": 999}, 422, "validation_error", "first", id="big"),
        pytest.param(
            "consistency", {"first": 1, "second": 999}, 422, "validation_error", None, id="big-2nd"
        ),
        pytest.param("consistency", {}, 422, "validation_error", "first", id="no-first"),
    ],
)
async def test_bad_proof_parameters_are_refused(
    api: Api,
    path: str,
    params: dict[str, Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = await api.get(f"/v1/proofs/{path}", "viewer-acme", params=params)
    error_of(response, status, code, field=field)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        pytest.param("inclusion", {"seq": 0, "tree_size": 999}, "tree_size", id="inclusion"),
        pytest.param("consistency", {"first": 1, "second": 999}, "second", id="consistency"),
    ],
)
async def test_a_tree_size_beyond_the_log_names_the_query_parameter(
    api: Api, path: str, params: dict[str, Any], field: str
) -> None:
    response = await api.get(f"/v1/proofs/{path}", "viewer-acme", params=params)
    error_of(response, 422, "validation_error", field=field)


# --- the mirror feed -------------------------------------------------------------------------


async def test_entry_pages_cover_the_log_exactly_once(api: Api) -> None:
    posted = await api.post(
        "/v1/events:batch", "admin", {"events": [routed(n) for n in range(5)] + [delivered(1)]}
    )
    assert posted.status_code == 201, posted.text
    total = size(api)
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        params: dict[str, int] = {"limit": 4} if after is None else {"limit": 4, "after": after}
        response = await api.get("/v1/entries", "auditor-all", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert page["tree_size"] == total
        assert 1 <= len(page["entries"]) <= 4
        for entry in page["entries"]:
            check_entry(entry, api)
        seen.extend(e["seq"] for e in page["entries"])
        after = page["next_after"]
        if after is None:
            break
        assert after == page["entries"][-1]["seq"]
    assert seen == list(range(total))
    assert pages == -(-total // 4)


async def test_a_page_that_ends_at_the_log_end_has_no_next(api: Api) -> None:
    total = size(api)
    whole = (await api.get("/v1/entries", "auditor-all", params={"limit": total})).json()
    assert [e["seq"] for e in whole["entries"]] == list(range(total))
    assert whole["next_after"] is None
    tail = (await api.get("/v1/entries", "auditor-all", params={"after": total - 1})).json()
    assert tail["entries"] == []
    assert tail["next_after"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"limit": 0}, "limit", id="limit-0"),
        pytest.param({"limit": 1001}, "limit", id="limit-1001"),
        pytest.param({"after": -2}, "after", id="after-2"),
    ],
)
async def test_bad_page_parameters_are_refused(
    api: Api, params: dict[str, int], field: str
) -> None:
    response = await api.get("/v1/entries", "auditor-all", params=params)
    error_of(response, 422, "validation_error", field=field)


@pytest.mark.parametrize("key", ["auditor-acme", "viewer-acme", "ingest-acme"])
async def test_the_mirror_feed_needs_an_all_tenants_reader(api: Api, key: str) -> None:
    error_of(await api.get("/v1/entries", key), 403, "forbidden")


# --- operations ------------------------------------------------------------------------------


async def test_healthz_and_readyz(api: Api) -> None:
    health = await api.client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "tree_size": size(api)}


async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        database_url=UNREACHABLE_POSTGRES, signing_key=tmp_path / "absent.pem", origin=ORIGIN
    )
    async with bare_client(settings) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.headers["retry-after"]
        body = ready.json()
        assert body["status"] == "not ready"
        assert body["problems"]
        assert any("database" in problem for problem in body["problems"])
        assert "127.0.0.1" not in ready.text  # no driver details


async def test_writes_are_503_with_retry_after_when_the_database_is_unreachable(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url=UNREACHABLE_POSTGRES, signing_key=tmp_path / "absent.pem", origin=ORIGIN
    )
    token = "plk_0123456789ab_" + "A" * 43  # well formed: the key store must be asked
    async with bare_client(settings) as client:
        response = await client.post(
            "/v1/events", json=routed(1), headers={"Authorization": f"Bearer {token}"}
        )
        error = error_of(response, 503, "unavailable")
        assert response.headers["retry-after"]
        assert "127.0.0.1" not in error["message"]


async def test_an_app_with_a_signing_key_is_created_without_a_database(tmp_path: Path) -> None:
    settings = Settings(
        database_url=UNREACHABLE_POSTGRES,
        signing_key=signing_key(tmp_path / "signing-key.pem"),
        origin=ORIGIN,
    )
    async with bare_client(settings) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text


async def test_readyz_is_503_when_the_schema_is_not_migrated(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/empty.db",
        signing_key=tmp_path / "absent.pem",
        origin=ORIGIN,
    )
    async with bare_client(settings) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert any("pactledger init" in p for p in ready.json()["problems"])


async def test_metrics_are_prometheus_text(api: Api) -> None:
    before = await api.client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert metric(before.text, "pactledger_checkpoint_age_seconds") == -1

    posted = await api.post("/v1/events", "ingest-acme", routed(1))
    assert posted.status_code == 201, posted.text
    batch = await api.post("/v1/events:batch", "ingest-acme", {"events": [routed(2), routed(3)]})
    assert batch.status_code == 201, batch.text
    api.services.ledger.checkpoint()

    text = (await api.client.get("/metrics")).text
    assert "# TYPE pactledger_ledger_entries gauge" in text
    assert "# TYPE pactledger_append_seconds histogram" in text
    assert metric(text, "pactledger_ledger_entries") == size(api)
    assert metric(text, "pactledger_append_seconds_count", 'path="single"') == 1
    assert metric(text, "pactledger_append_seconds_count", 'path="batch"') == 1
    assert metric(text, "pactledger_append_batch_entries_sum", 'path="batch"') == 2
    assert metric(text, "pactledger_entries_appended_total") == 3
    assert metric(text, "pactledger_checkpoint_age_seconds") >= 0


# --- the OpenAPI document --------------------------------------------------------------------


async def test_openapi_lists_every_v1_route(api_settings: Settings) -> None:
    routes = set()
    for info in pkgutil.iter_modules(routers.__path__):
        module = importlib.import_module(f"{routers.__name__}.{info.name}")
        for route in getattr(module, "router", APIRouter()).routes:
            if isinstance(route, APIRoute) and route.path.startswith("/v1"):
                routes.update((method.lower(), route.path) for method in route.methods)
    assert routes >= V1_ROUTES
    async with serve(api_settings) as api:
        response = await api.client.get("/openapi.json")
        assert response.status_code == 200, response.text
        document = response.json()
        listed = {
            (method, path)
            for path, operations in document["paths"].items()
            if path.startswith("/v1")
            for method in operations
        }
        assert listed == routes
        assert {"/healthz", "/readyz", "/metrics"} <= set(document["paths"])
        assert "HTTPBearer" in document["components"]["securitySchemes"]

        docs = await api.client.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
