"""Throughput-cost estimates over HTTP (``POST /v1/estimates``, ``GET /v1/estimates/catalogue``).

Proves that the answer is what :func:`ledger.estimator.estimate` computes (presets in each
scenario, a request shape, rental price and capex, money as a string either way in); that
every bad body is a 422 in the one error shape naming the field at fault; that readers may
call both routes, ingest keys get 403 and strangers 401; that the catalogue lists the ids
with the provisional flag; and that nothing is written.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from api.errors import ledger_error_response
from ledger.estimator import (
    CostInputs,
    Estimate,
    EstimateError,
    estimate,
    load_models,
    load_racks,
    load_workloads,
    shape,
)
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio

REQUIRED = {
    "output_tokens_per_s",
    "output_tokens_per_s_per_gpu",
    "bound",
    "batch_size",
    "cost_per_mtok_usd",
    "energy_per_mtok_kwh",
    "assumptions",
    "warnings",
}
PRESET: dict[str, Any] = {
    "rack": "hgx-b200",
    "model": "llama-2-70b",
    "precision": "fp4",
    "workload": "mlperf-llama2-70b",
}


def assert_matches(data: dict[str, Any], want: Estimate) -> None:
    assert set(data) >= REQUIRED
    assert data["output_tokens_per_s"] == pytest.approx(want.output_tokens_per_s, rel=1e-12)
    assert data["output_tokens_per_s_per_gpu"] == pytest.approx(
        want.output_tokens_per_s_per_gpu, rel=1e-12
    )
    assert data["bound"] == want.bound
    assert data["batch_size"] == want.batch_size
    assert data["gpus"] == want.gpus
    want_cost = None if want.cost_per_mtok_usd is None else str(want.cost_per_mtok_usd)
    assert data["cost_per_mtok_usd"] == want_cost
    assert data["energy_per_mtok_kwh"] == pytest.approx(want.energy_per_mtok_kwh, rel=1e-12)


@pytest.mark.parametrize("scenario", ["offline", "server", "interactive"])
async def test_a_preset_answers_what_the_estimator_computes(api: Api, scenario: str) -> None:
    before = api.services.ledger.head().size
    body = {**PRESET, "scenario": scenario, "price_per_gpu_hour": "3.50"}
    response = await api.post("/v1/estimates", "viewer-acme", body)
    assert response.status_code == 200, response.text
    want = estimate(
        load_racks()["hgx-b200"], load_models()["llama-2-70b"], "fp4",
        load_workloads()["mlperf-llama2-70b"], scenario,
        costs=CostInputs(usd_per_gpu_hour=Decimal("3.50")),
    )  # fmt: skip
    data = response.json()
    assert_matches(data, want)
    assert isinstance(data["cost_per_mtok_usd"], str)
    assert data["warnings"] == []
    assert api.services.ledger.head().size == before  # nothing written


async def test_a_request_shape_with_capex(api: Api) -> None:
    body = {
        "rack": "gb200-nvl72", "model": "llama-3.1-70b", "precision": "fp8",
        "input_tokens": 2000, "output_tokens": 500, "gpus": 16,
        "capex_usd": "3500000", "amortisation_years": 5, "pue": "1.2", "usd_per_kwh": "0.10",
    }  # fmt: skip
    response = await api.post("/v1/estimates", "auditor-all", body)
    assert response.status_code == 200, response.text
    costs = CostInputs(
        capex_usd=Decimal(3_500_000), amortisation_years=Decimal(5), pue=Decimal("1.2"),
        usd_per_kwh=Decimal("0.10"),
    )  # fmt: skip
    want = estimate(
        load_racks()["gb200-nvl72"], load_models()["llama-3.1-70b"], "fp8", shape(2000, 500),
        gpus=16, costs=costs,
    )  # fmt: skip
    assert_matches(response.json(), want)


async def test_a_provisional_rack_says_so(api: Api) -> None:
    body = {**PRESET, "rack": "vr-nvl144"}
    response = await api.post("/v1/estimates", "admin", body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["provisional"] is True
    assert any("provisional" in w for w in data["warnings"])


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"rack": "hgx-a100"}, "rack", "hgx-b200"),
        ({"model": "llama-9-1t"}, "model", "llama-2-70b"),
        ({"precision": "int3"}, "precision", "fp8"),
        ({"rack": "hgx-h100"}, "precision", "fp4"),
        ({"workload": "mlperf-gpt5"}, "workload", "mlperf-llama2-70b"),
        ({"input_tokens": 100}, "workload", "not both"),
        ({"workload": None}, "workload", "input_tokens"),
        ({"workload": None, "input_tokens": 100}, "output_tokens", "output_tokens"),
        ({"workload": None, "input_tokens": 9, "output_tokens": 9, "scenario": "server"},
         "scenario", "offline"),
        ({"scenario": "batch"}, "scenario", ""),
        ({"gpus": 0}, "gpus", ""),
        ({"price_per_gpu_hour": "-1"}, "price_per_gpu_hour", ""),
        ({"price_per_gpu_hour": "2", "capex_usd": "9"}, "capex_usd", "not both"),
        ({"model": "llama-3.1-405b", "rack": "hgx-h100", "precision": "bf16",
          "workload": "mlperf-llama3.1-405b", "gpus": 1}, "model", "does not fit"),
        ({"colour": "blue"}, "colour", ""),
    ],
)  # fmt: skip
async def test_bad_input_is_422_naming_the_field(
    api: Api, change: dict[str, Any], field: str, says: str
) -> None:
    body = {k: v for k, v in {**PRESET, **change}.items() if v is not None}
    response = await api.post("/v1/estimates", "viewer-acme", body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert says in error["message"]


async def test_the_catalogue_lists_the_ids_and_flags(api: Api) -> None:
    response = await api.get("/v1/estimates/catalogue", "viewer-globex")
    assert response.status_code == 200, response.text
    data = response.json()
    racks = {r["id"]: r for r in data["racks"]}
    assert set(racks) == set(load_racks())
    assert racks["vr-nvl144"]["provisional"] is True
    assert racks["vr-nvl144"]["precisions"] == ["fp4"]
    assert racks["hgx-b200"]["provisional"] is False
    assert {m["id"] for m in data["models"]} == set(load_models())
    works = {w["id"]: w for w in data["workloads"]}
    assert set(works) == set(load_workloads())
    assert "server" in works["mlperf-llama2-70b"]["scenarios"]


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/estimates"), ("GET", "/v1/estimates/catalogue")]
)
async def test_strangers_get_401_and_ingest_keys_403(api: Api, method: str, path: str) -> None:
    if method == "POST":
        stranger = await api.client.post(path, json=PRESET)
        ingest = await api.post(path, "ingest-acme", PRESET)
    else:
        stranger = await api.client.get(path)
        ingest = await api.get(path, "ingest-acme")
    assert stranger.status_code == 401, stranger.text
    assert stranger.json()["error"]["code"] == "unauthenticated"
    assert stranger.headers["WWW-Authenticate"] == "Bearer"
    assert ingest.status_code == 403, ingest.text
    assert ingest.json()["error"]["code"] == "forbidden"


def test_an_estimate_error_escaping_a_route_is_a_422_naming_the_field() -> None:
    response = ledger_error_response(
        EstimateError("no such precision", entry="hgx-h100", field="precision")
    )
    assert response.status_code == 422
    body = json.loads(bytes(response.body))
    assert body["error"]["code"] == "estimate_error"
    assert body["error"]["field"] == "precision"
    assert body["error"]["message"] == "no such precision"
