"""``estimate``: throughput, cost and energy of one model on one rack for one workload.

Guarantees:

* Pure: catalogue records and numbers in, an :class:`Estimate` out; the efficiencies come
  from the calibration fit (computed once per process from packaged data) or are passed in.
* Software: with the fitted efficiencies, the throughput is multiplied by the model's
  software factor of its newest calibrated MLPerf round (1 for a model without MLPerf rows,
  and whenever efficiencies are passed in); batch, TPOT and bound are the roofline's.
* Every number the result depends on that is not a sourced datum (efficiencies, HBM share,
  KV precision, assumed workload lengths, provisional rack) is listed in ``assumptions``.
* Money is ``Decimal`` (rounded to 1e-4 USD); physics is float.
* Errors: unknown precision or one the rack does not publish, a workload without the
  scenario's limits, weights that do not fit the NVLink domain, a latency limit no instance
  meets → :class:`EstimateError`. Non-positive ``gpus`` → ``ValueError``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ledger.estimator.calibrate import Fit, calibrate
from ledger.estimator.catalogue import ModelProfile, Rack, Workload
from ledger.estimator.errors import EstimateError
from ledger.estimator.roofline import (
    BYTES_PER_WEIGHT,
    HBM_USABLE,
    KV_BYTES_PER_VALUE,
    Efficiencies,
    build_case,
    group_sizes,
    peak_tflops,
    throughput,
)

HOURS_PER_YEAR = Decimal(8760)
_CENT = Decimal("0.0001")


@dataclass(frozen=True)
class CostInputs:
    """Either ``usd_per_gpu_hour`` (all-in rental price), or rack capex amortised over
    ``amortisation_years`` plus electricity (``power_kw`` · ``pue`` · ``usd_per_kwh``).
    ``power_kw`` defaults to the rack's published maximum; energy needs one of the two."""

    usd_per_gpu_hour: Decimal | None = None
    capex_usd: Decimal | None = None
    amortisation_years: Decimal = Decimal(4)
    power_kw: Decimal | None = None
    pue: Decimal = Decimal("1.3")
    usd_per_kwh: Decimal = Decimal("0.08")


@dataclass(frozen=True)
class Estimate:
    rack: str
    model: str
    precision: str
    workload: str
    scenario: str
    gpus: int
    gpus_per_instance: int
    instances: int
    batch_size: int
    bound: str
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    prefill_s: float
    ttft_limit_met: bool | None
    provisional: bool
    cost_per_mtok_usd: Decimal | None
    energy_per_mtok_kwh: float | None
    assumptions: dict[str, object]
    software_factor: float = 1.0

    def warnings(self) -> list[str]:
        """What a reader must know before relying on the figures."""
        found = []
        if self.provisional:
            found.append(
                f"rack '{self.rack}' is provisional (roadmap figures, not a shipped product): "
                "use this estimate for scenario planning only"
            )
        if self.ttft_limit_met is False:
            found.append(f"one request's prefill alone exceeds the {self.scenario} TTFT limit")
        return found

    def to_json(self) -> dict[str, Any]:
        """The estimate as JSON data (Decimals as strings), with its ``warnings``."""
        data: dict[str, Any] = _plain(asdict(self))
        data["warnings"] = self.warnings()
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@lru_cache(maxsize=1)
def default_fit() -> Fit:
    """The fit on the packaged MLPerf rows (computed once per process)."""
    return calibrate()


def default_efficiencies() -> Efficiencies:
    """The efficiencies fitted on the packaged MLPerf rows."""
    return default_fit().efficiencies


def software_factor(model: ModelProfile) -> tuple[float, str]:
    """The fitted software factor for ``model`` and where it comes from."""
    found = default_fit().software_for(model.id)
    if found is None:
        return 1.0, f"1 (no MLPerf rows for '{model.id}': the generic software level)"
    return found.factor, (
        f"fitted on the {found.rows} MLPerf {found.round} rows of '{model.id}' "
        "(the newest round: current software)"
    )


def estimate(
    rack: Rack,
    model: ModelProfile,
    precision: str,
    workload: Workload,
    scenario: str = "offline",
    gpus: int | None = None,
    costs: CostInputs | None = None,
    *,
    gpus_per_instance: int | None = None,
    efficiencies: Efficiencies | None = None,
) -> Estimate:
    """Estimate output throughput (and cost, energy) of ``model`` on ``gpus`` of ``rack``."""
    gpus = rack.gpus if gpus is None else gpus
    if gpus <= 0:
        raise ValueError("gpus must be positive")
    peak_tflops(rack, precision)  # unknown / unpublished precision → EstimateError first
    if efficiencies is None:
        eff = default_efficiencies()
        software, software_source = software_factor(model)
    else:
        eff, software, software_source = efficiencies, 1.0, "1 (efficiencies passed in)"
    sizes = group_sizes(rack, model, precision, gpus)
    if gpus_per_instance is not None:
        if gpus_per_instance not in sizes and gpus_per_instance <= min(rack.nvlink_domain, gpus):
            sizes = [gpus_per_instance]
        elif gpus_per_instance not in sizes:
            raise EstimateError(
                f"{gpus_per_instance} GPUs per instance exceed the NVLink domain "
                f"({rack.nvlink_domain}) or the {gpus} GPUs given",
                entry=rack.id,
                field="gpus_per_instance",
            )
        else:
            sizes = [gpus_per_instance]
    if not sizes:
        raise EstimateError(
            f"model '{model.id}' at {precision} ({model.params_total_b:g}B parameters) does not "
            f"fit in {min(rack.nvlink_domain, gpus)} GPU(s) of '{rack.id}' (the NVLink domain)",
            entry=model.id,
            field="params_total_b",
        )
    for g in sizes:
        case = build_case(rack, model, precision, workload, scenario, g)
        result = throughput(case, eff)
        if result is not None:
            break
    else:
        raise EstimateError(
            f"no instance of '{rack.id}' meets the {scenario} TPOT/TTFT limits of workload "
            f"'{workload.id}' for model '{model.id}' at {precision}",
            field="scenario",
        )
    instances = gpus // g
    total = result.tokens_per_s * instances * software
    per_gpu = total / gpus
    ttft_ok = None if case.ttft_limit_s is None else result.prefill_s <= case.ttft_limit_s
    assumptions: dict[str, object] = {
        "efficiencies": asdict(eff),
        "software_factor": {"value": software, "source": software_source},
        "hbm_usable_share": HBM_USABLE,
        "bytes_per_weight": BYTES_PER_WEIGHT[precision],
        "kv_bytes_per_value": KV_BYTES_PER_VALUE[precision],
        "input_tokens": workload.input_tokens,
        "output_tokens": workload.output_tokens,
    }
    if workload.lengths_assumed:
        assumptions["workload_lengths"] = f"assumed: {workload.lengths_source}"
    if workload.latency_assumed and scenario != "offline":
        assumptions["latency_limits"] = f"assumed: {workload.latency_source}"
    if rack.provisional:
        assumptions["rack"] = f"provisional: {rack.source}"
    if model.assumptions:
        assumptions["model"] = model.assumptions
    cost, energy = _cost_and_energy(rack, gpus, per_gpu, costs, assumptions)
    return Estimate(
        rack=rack.id,
        model=model.id,
        precision=precision,
        workload=workload.id,
        scenario=scenario,
        gpus=gpus,
        gpus_per_instance=g,
        instances=instances,
        batch_size=int(result.batch),
        bound=result.bound,
        output_tokens_per_s=total,
        output_tokens_per_s_per_gpu=per_gpu,
        prefill_s=result.prefill_s,
        ttft_limit_met=ttft_ok,
        provisional=rack.provisional,
        cost_per_mtok_usd=cost,
        energy_per_mtok_kwh=energy,
        assumptions=assumptions,
        software_factor=software,
    )


def cost_per_mtok(usd_per_gpu_hour: Decimal, tokens_per_s_per_gpu: float) -> Decimal:
    """USD per million output tokens: $/GPU-h ÷ (tokens/s/GPU · 3600) · 1e6."""
    tokens_per_hour = Decimal(repr(tokens_per_s_per_gpu)) * 3600
    return (usd_per_gpu_hour * Decimal(1_000_000) / tokens_per_hour).quantize(_CENT)


def energy_per_mtok(kw_per_gpu: float, pue: float, tokens_per_s_per_gpu: float) -> float:
    """kWh per million output tokens: kW/GPU · PUE ÷ (tokens/s/GPU · 3600) · 1e6."""
    return kw_per_gpu * pue * 1e6 / (tokens_per_s_per_gpu * 3600)


def _cost_and_energy(
    rack: Rack, gpus: int, per_gpu: float, costs: CostInputs | None, notes: dict[str, object]
) -> tuple[Decimal | None, float | None]:
    if costs is None:
        return None, None
    rack_kw = costs.power_kw
    if rack_kw is None and rack.system_kw_max is not None:
        rack_kw = Decimal(repr(rack.system_kw_max))
    kw_per_gpu = rack_kw / rack.gpus if rack_kw is not None else None
    energy = (
        energy_per_mtok(float(kw_per_gpu), float(costs.pue), per_gpu)
        if kw_per_gpu is not None
        else None
    )
    if kw_per_gpu is not None:
        notes["power_kw_per_gpu"] = float(kw_per_gpu)
        notes["pue"] = float(costs.pue)
    if costs.usd_per_gpu_hour is not None:
        hourly = costs.usd_per_gpu_hour
    elif costs.capex_usd is not None:
        if kw_per_gpu is None:
            raise EstimateError(
                f"rack '{rack.id}' publishes no power; give CostInputs.power_kw",
                entry=rack.id,
                field="system_kw_max",
            )
        capex_hourly = costs.capex_usd / (costs.amortisation_years * HOURS_PER_YEAR * rack.gpus)
        hourly = capex_hourly + kw_per_gpu * costs.pue * costs.usd_per_kwh
        notes["amortisation_years"] = float(costs.amortisation_years)
        notes["usd_per_kwh"] = float(costs.usd_per_kwh)
    else:
        return None, energy
    notes["usd_per_gpu_hour"] = float(hourly)
    return cost_per_mtok(hourly, per_gpu), energy
