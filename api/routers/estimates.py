"""Throughput-cost estimates over HTTP (docs/estimator.md): ``POST /v1/estimates`` and the
catalogue it draws on, ``GET /v1/estimates/catalogue``.

Read routes (any reader key); they touch no database and write nothing. The shipped
catalogues only: the API reads no file a caller names. Every refusal is a 422 in the one
error shape, ``field`` naming the body field at fault (an unknown rack → ``rack``, a
precision the rack does not publish → ``precision``, a workload without the scenario's
latency limits → ``scenario``). Money is a string on the wire, both ways.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ledger.access import Permission, Principal
from ledger.estimator import (
    CostInputs,
    EstimateError,
    Workload,
    estimate,
    load_models,
    load_racks,
    load_workloads,
    pick,
    shape,
)

from ..auth import principal
from ..errors import ApiError

router = APIRouter(prefix="/v1/estimates", tags=["estimates"])
Reader = Annotated[Principal, Depends(principal(Permission.READ))]

# Bounds keep the physics finite; they are far beyond any real rack or request.
MAX_TOKENS = 10_000_000
MAX_GPUS = 1_000_000
PositiveMoney = Annotated[Decimal | None, Field(default=None, gt=0, le=Decimal("1e12"))]


class EstimateIn(BaseModel):
    """One estimate: rack, model, precision and either a workload preset or token counts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "rack": "hgx-b200",
                    "model": "llama-2-70b",
                    "precision": "fp4",
                    "workload": "mlperf-llama2-70b",
                    "scenario": "server",
                    "price_per_gpu_hour": "3.50",
                }
            ]
        },
    )

    rack: str = Field(min_length=1, max_length=200, description="Rack id, e.g. hgx-b200")
    model: str = Field(min_length=1, max_length=200, description="Model id, e.g. llama-2-70b")
    precision: str = Field(min_length=1, max_length=20, description="bf16, fp8 or fp4")
    workload: str | None = Field(
        default=None, max_length=200, description="Workload preset (or the token counts)"
    )
    input_tokens: float | None = Field(default=None, ge=1, le=MAX_TOKENS)
    output_tokens: float | None = Field(default=None, ge=1, le=MAX_TOKENS)
    scenario: Literal["offline", "server", "interactive"] = "offline"
    gpus: int | None = Field(default=None, ge=1, le=MAX_GPUS, description="Default: the rack")
    price_per_gpu_hour: PositiveMoney = None
    capex_usd: PositiveMoney = None
    amortisation_years: Decimal | None = Field(default=None, gt=0, le=100)
    power_kw: Decimal | None = Field(default=None, gt=0, le=100_000)
    pue: Decimal | None = Field(default=None, ge=1, le=10)
    usd_per_kwh: Decimal | None = Field(default=None, ge=0, le=1000)

    def costs(self) -> CostInputs:
        optional = {
            name: getattr(self, name)
            for name in ("amortisation_years", "power_kw", "pue", "usd_per_kwh")
            if getattr(self, name) is not None
        }
        return CostInputs(
            usd_per_gpu_hour=self.price_per_gpu_hour, capex_usd=self.capex_usd, **optional
        )


def _refuse(exc: EstimateError, field: str | None) -> ApiError:
    return ApiError(422, "validation_error", str(exc), field=field)


def _field_at_fault(exc: EstimateError) -> str | None:
    """The body field an estimator error points at (its own field names a catalogue datum)."""
    field = exc.field or ""
    if field == "precision" or field.startswith("dense_tflops"):
        return "precision"
    if field in ("scenario", "server", "interactive"):
        return "scenario"
    if field == "params_total_b":
        return "model"
    if field == "system_kw_max":
        return "power_kw"
    return None


def _check(body: EstimateIn) -> None:
    """The field combinations a schema cannot say, each refused naming its field."""
    tokens = (body.input_tokens, body.output_tokens)
    if body.workload is not None and any(t is not None for t in tokens):
        raise _invalid(
            "give either workload or input_tokens with output_tokens, not both", "workload"
        )
    if body.workload is None and any(t is None for t in tokens):
        missing = "output_tokens" if body.input_tokens is not None else "input_tokens"
        if body.input_tokens is None and body.output_tokens is None:
            missing = "workload"
        raise _invalid("give workload, or both input_tokens and output_tokens", missing)
    if body.price_per_gpu_hour is not None and body.capex_usd is not None:
        raise _invalid("give either price_per_gpu_hour or capex_usd, not both", "capex_usd")


def _invalid(message: str, field: str) -> ApiError:
    return ApiError(422, "validation_error", message, field=field)


def _workload(body: EstimateIn) -> Workload:
    if body.workload is None:
        assert body.input_tokens is not None  # checked by the model
        assert body.output_tokens is not None
        if body.scenario != "offline":
            raise _invalid(
                f"scenario '{body.scenario}' needs the latency limits of a workload preset; "
                "input_tokens/output_tokens give an offline request shape",
                "scenario",
            )
        return shape(body.input_tokens, body.output_tokens)
    try:
        return pick(load_workloads(), body.workload, "workload")
    except EstimateError as exc:
        raise _refuse(exc, "workload") from None


@router.post("")
def create_estimate(who: Reader, body: EstimateIn) -> dict[str, Any]:
    """Output tokens/s (total, per GPU), the bound, batch size, cost and energy per million
    output tokens, and every assumption used. Nothing is stored."""
    _check(body)
    try:
        rack = pick(load_racks(), body.rack, "rack")
    except EstimateError as exc:
        raise _refuse(exc, "rack") from None
    try:
        model = pick(load_models(), body.model, "model")
    except EstimateError as exc:
        raise _refuse(exc, "model") from None
    work = _workload(body)
    try:
        result = estimate(rack, model, body.precision, work, body.scenario, body.gpus, body.costs())
    except EstimateError as exc:
        raise _refuse(exc, _field_at_fault(exc)) from None
    return result.to_json()


@router.get("/catalogue")
def catalogue(who: Reader) -> dict[str, Any]:
    """The racks, models and workload presets an estimate may name (ids, sizes, flags)."""
    return {
        "racks": [
            {
                "id": r.id,
                "gpu": r.gpu,
                "gpus": r.gpus,
                "precisions": sorted(r.dense_tflops),
                "provisional": r.provisional,
            }
            for r in load_racks().values()
        ],
        "models": [
            {
                "id": m.id,
                "params_total_b": m.params_total_b,
                "params_active_b": m.params_active_b,
                "moe": m.is_moe,
                "assumed_architecture": bool(m.assumptions),
            }
            for m in load_models().values()
        ],
        "workloads": [
            {
                "id": w.id,
                "model": w.model,
                "input_tokens": w.input_tokens,
                "output_tokens": w.output_tokens,
                "scenarios": ["offline"]
                + [s for s in ("server", "interactive") if getattr(w, s) is not None],
                "lengths_assumed": w.lengths_assumed,
            }
            for w in load_workloads().values()
        ],
        "precisions": ["bf16", "fp8", "fp4"],
        "scenarios": ["offline", "server", "interactive"],
    }
