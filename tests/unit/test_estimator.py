"""The estimator: physics sanity, catalogues and user files, cost and energy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.estimator import (
    CostInputs,
    EstimateError,
    LatencyLimits,
    cost_per_mtok,
    energy_per_mtok,
    estimate,
    load_models,
    load_racks,
    load_workloads,
    pick,
    shape,
)
from ledger.estimator.roofline import HBM_USABLE, ttft_share

RACKS = load_racks()
MODELS = load_models()
WORKLOADS = load_workloads()


def est(rack: str, model: str, precision: str, workload: str, scenario: str = "offline", **kw):  # type: ignore[no-untyped-def]
    return estimate(RACKS[rack], MODELS[model], precision, WORKLOADS[workload], scenario, **kw)


def test_catalogues_hold_the_issue_entries() -> None:
    assert set(RACKS) == {
        "hgx-h100",
        "hgx-h200",
        "hgx-b200",
        "hgx-b300",
        "gb200-nvl72",
        "gb300-nvl72",
        "vr-nvl144",
    }
    assert set(MODELS) == {
        "llama-2-70b",
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "mixtral-8x7b",
        "deepseek-r1",
        "gpt-oss-120b",
    }
    assert {w for w in WORKLOADS if w.startswith("mlperf-")} == {
        "mlperf-llama2-70b",
        "mlperf-llama3.1-8b",
        "mlperf-llama3.1-405b",
        "mlperf-mixtral-8x7b",
        "mlperf-deepseek-r1",
        "mlperf-gpt-oss-120b",
    }
    assert all(r.source for r in RACKS.values())
    assert all(m.source for m in MODELS.values())
    for w in WORKLOADS.values():
        assert w.model in MODELS
        assert w.lengths_source
        assert w.server is not None


def test_kv_bytes_per_token_match_models_csv() -> None:
    assert MODELS["llama-2-70b"].kv_bytes_per_token(2) == 327_680
    assert MODELS["llama-3.1-8b"].kv_bytes_per_token(2) == 131_072
    assert MODELS["llama-3.1-405b"].kv_bytes_per_token(2) == 516_096
    assert MODELS["deepseek-r1"].kv_bytes_per_token(2) == 70_272  # MLA latent, not K and V


def test_mlperf_latency_limits_from_mlperf_conf() -> None:
    w = WORKLOADS["mlperf-llama2-70b"]
    assert w.server == LatencyLimits(ttft_ms=2000, tpot_ms=200)
    assert w.interactive == LatencyLimits(ttft_ms=450, tpot_ms=40)
    assert WORKLOADS["mlperf-llama3.1-405b"].server == LatencyLimits(ttft_ms=6000, tpot_ms=175)


def test_more_hbm_bandwidth_gives_more_decode_throughput() -> None:
    slow = RACKS["hgx-h200"]
    fast = slow.model_copy(update={"hbm_tbps_per_gpu": slow.hbm_tbps_per_gpu * 2})
    work = shape(20_000, 2000)
    a = estimate(slow, MODELS["llama-3.1-70b"], "fp8", work)
    b = estimate(fast, MODELS["llama-3.1-70b"], "fp8", work)
    assert a.bound == "memory"
    assert b.output_tokens_per_s > a.output_tokens_per_s * 1.2


@pytest.mark.parametrize("rack", ["hgx-b200", "hgx-b300", "gb200-nvl72", "gb300-nvl72"])
@pytest.mark.parametrize(
    ("model", "workload"),
    [("llama-2-70b", "mlperf-llama2-70b"), ("deepseek-r1", "mlperf-deepseek-r1")],
)
def test_fp4_at_least_fp8(rack: str, model: str, workload: str) -> None:
    fp4 = est(rack, model, "fp4", workload)
    fp8 = est(rack, model, "fp8", workload)
    assert fp4.output_tokens_per_s_per_gpu >= fp8.output_tokens_per_s_per_gpu


def test_a_model_too_big_for_one_gpu_needs_tensor_parallelism() -> None:
    e = est("hgx-h100", "llama-3.1-405b", "fp8", "mlperf-llama3.1-405b")
    assert e.gpus_per_instance > 1
    assert e.instances * e.gpus_per_instance <= e.gpus
    small = est("hgx-b200", "llama-3.1-8b", "fp8", "mlperf-llama3.1-8b")
    assert small.gpus_per_instance == 1
    assert small.instances == 8


def test_a_larger_instance_may_be_asked_for() -> None:
    e = est("hgx-b200", "llama-2-70b", "fp4", "mlperf-llama2-70b", gpus_per_instance=4)
    assert (e.gpus_per_instance, e.instances) == (4, 2)


def test_huge_context_lowers_the_batch() -> None:
    short = estimate(RACKS["hgx-h200"], MODELS["llama-3.1-70b"], "fp8", shape(1000, 500))
    long = estimate(RACKS["hgx-h200"], MODELS["llama-3.1-70b"], "fp8", shape(100_000, 500))
    assert long.batch_size < short.batch_size / 20
    # The batch never needs more KV cache than the HBM left after the weights.
    kv = MODELS["llama-3.1-70b"].kv_bytes_per_token(1) * 100_500
    free = long.gpus_per_instance * 141e9 * HBM_USABLE - 70.55e9
    assert long.batch_size * kv <= free


def test_a_context_that_cannot_fit_is_an_error() -> None:
    with pytest.raises(EstimateError, match="leaves room"):
        estimate(RACKS["hgx-h100"], MODELS["llama-3.1-405b"], "fp8", shape(3_000_000, 10))


@pytest.mark.parametrize(
    ("rack", "model", "precision", "workload"),
    [
        ("hgx-h200", "llama-2-70b", "fp8", "mlperf-llama2-70b"),
        ("hgx-b200", "llama-3.1-405b", "fp4", "mlperf-llama3.1-405b"),
        ("gb200-nvl72", "deepseek-r1", "fp4", "mlperf-deepseek-r1"),
        ("hgx-h100", "llama-3.1-8b", "fp8", "mlperf-llama3.1-8b"),
    ],
)
def test_interactive_le_server_le_offline(
    rack: str, model: str, precision: str, workload: str
) -> None:
    off = est(rack, model, precision, workload, "offline")
    srv = est(rack, model, precision, workload, "server")
    assert srv.output_tokens_per_s <= off.output_tokens_per_s
    if WORKLOADS[workload].interactive is not None:
        inter = est(rack, model, precision, workload, "interactive")
        assert inter.output_tokens_per_s <= srv.output_tokens_per_s


def test_ttft_share_bounds_prefill_utilisation() -> None:
    # q · s / (1 − ρ) ≤ TTFT  ⇒  ρ ≤ 1 − q · s / TTFT
    assert ttft_share(0.5, 6.0, 3.0) == pytest.approx(0.75)
    assert ttft_share(0.001, 2.0, 3.0) == pytest.approx(1.0, abs=0.01)
    assert ttft_share(2.5, 6.0, 3.0) == 0.0  # no load meets the limit


def test_long_prefills_lower_the_server_to_offline_ratio() -> None:
    # llama-3.1-405b's ~9k-token prefills queue against the TTFT limit; llama-2-70b's do not.
    def ratio(model: str, workload: str) -> float:
        off = est("hgx-h200", model, "fp8", workload, "offline")
        srv = est("hgx-h200", model, "fp8", workload, "server")
        return srv.output_tokens_per_s / off.output_tokens_per_s

    assert ratio("llama-3.1-405b", "mlperf-llama3.1-405b") < 0.8
    assert ratio("llama-2-70b", "mlperf-llama2-70b") > 0.9


def test_every_preset_runs_on_a_b200() -> None:
    for w in WORKLOADS.values():
        assert w.model is not None
        e = est("gb200-nvl72", w.model, "fp4", w.id, "server")
        assert e.output_tokens_per_s > 0


def test_vr_nvl144_is_provisional_and_fp4_only() -> None:
    e = est("vr-nvl144", "llama-3.1-405b", "fp4", "mlperf-llama3.1-405b")
    assert e.provisional
    assert "rack" in e.assumptions
    with pytest.raises(EstimateError, match=r"vr-nvl144.*fp8"):
        est("vr-nvl144", "llama-3.1-405b", "fp8", "mlperf-llama3.1-405b")


def test_assumptions_list_the_efficiencies_and_assumed_lengths() -> None:
    e = est("hgx-b200", "deepseek-r1", "fp4", "mlperf-deepseek-r1", "server")
    assert set(e.assumptions["efficiencies"]) >= {"memory", "compute_fp8", "headroom"}  # type: ignore[arg-type]
    assert "input mean 800 is an assumption" in str(e.assumptions["workload_lengths"])
    # Sourced lengths are not called assumptions.
    sourced = est("hgx-h200", "llama-2-70b", "fp8", "mlperf-llama2-70b", "server")
    assert "workload_lengths" not in sourced.assumptions
    assert sourced.assumptions["input_tokens"] == 222.33


def test_unknown_names_are_errors_naming_them() -> None:
    with pytest.raises(EstimateError, match="unknown rack 'hgx-a100'"):
        pick(RACKS, "hgx-a100", "rack")
    with pytest.raises(EstimateError, match="unknown model 'gpt-5'"):
        pick(MODELS, "gpt-5", "model")
    with pytest.raises(EstimateError, match="unknown precision 'int3'"):
        est("hgx-h100", "llama-2-70b", "int3", "mlperf-llama2-70b")
    with pytest.raises(EstimateError, match=r"hgx-h100.*fp4"):
        est("hgx-h100", "llama-2-70b", "fp4", "mlperf-llama2-70b")
    with pytest.raises(EstimateError, match="unknown scenario 'batch'"):
        est("hgx-h100", "llama-2-70b", "fp8", "mlperf-llama2-70b", "batch")
    with pytest.raises(EstimateError, match="no interactive latency limits"):
        est("hgx-h100", "mixtral-8x7b", "fp8", "mlperf-mixtral-8x7b", "interactive")
    with pytest.raises(ValueError, match="gpus must be positive"):
        est("hgx-h100", "llama-2-70b", "fp8", "mlperf-llama2-70b", gpus=0)


def test_weights_too_big_for_the_nvlink_domain() -> None:
    with pytest.raises(EstimateError, match="does not fit"):
        est("hgx-h100", "deepseek-r1", "bf16", "mlperf-deepseek-r1")


# -- user files --------------------------------------------------------------------------

USER_MODEL = """
models:
  - id: claude-tier-assumed
    layers: 100
    hidden: 12288
    q_heads: 96
    kv_heads: 8
    head_dim: 128
    params_total_b: 300
    params_active_b: 300
    attention: gqa
    source: none published
    assumptions: architecture entirely assumed for planning
"""


def test_user_model_file_loads_and_estimates(tmp_path: Path) -> None:
    p = tmp_path / "models.yaml"
    p.write_text(USER_MODEL)
    models = load_models(p)
    e = estimate(RACKS["hgx-b200"], models["claude-tier-assumed"], "fp8", shape(2000, 500))
    assert e.output_tokens_per_s > 0
    assert e.assumptions["model"] == "architecture entirely assumed for planning"


def test_user_rack_file_loads(tmp_path: Path) -> None:
    p = tmp_path / "racks.yaml"
    p.write_text(
        "racks:\n  - id: my-h200\n    gpu: H200\n    gpus: 8\n    nvlink_domain: 8\n"
        "    hbm_gb_per_gpu: 141\n    hbm_tbps_per_gpu: 4.8\n    dense_tflops: {fp8: 1979}\n"
        "    source: datasheet\n"
    )
    assert load_racks(p)["my-h200"].dense_tflops == {"fp8": 1979}


@pytest.mark.parametrize(
    ("text", "entry", "field"),
    [
        (USER_MODEL.replace("kv_heads: 8", "kv_heads: -1"), "claude-tier-assumed", "kv_heads"),
        (USER_MODEL.replace("    source: none published\n", ""), "claude-tier-assumed", "source"),
        (USER_MODEL.replace("layers: 100", "layers: many"), "claude-tier-assumed", "layers"),
        (
            USER_MODEL.replace("params_active_b: 300", "params_active_b: 400"),
            "claude-tier-assumed",
            None,
        ),
        (
            USER_MODEL.replace("    hidden: 12288\n", "    hidden: 1\n    colour: red\n"),
            "claude-tier-assumed",
            "colour",
        ),
        (USER_MODEL.replace("  - id: claude-tier-assumed\n", "  - \n"), "#1", None),
    ],
)
def test_user_file_errors_name_file_entry_and_field(
    tmp_path: Path, text: str, entry: str, field: str | None
) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(EstimateError) as info:
        load_models(p)
    assert info.value.file == str(p)
    assert str(p) in str(info.value)
    assert info.value.entry == entry
    if field is not None:
        assert info.value.field == field
        assert f"field '{field}'" in str(info.value)


def test_user_file_structural_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(EstimateError, match="cannot read"):
        load_racks(missing)
    p = tmp_path / "x.yaml"
    p.write_text("racks: {}\n")
    with pytest.raises(EstimateError, match="top-level 'racks:' list"):
        load_racks(p)
    p.write_text("racks: [\n")
    with pytest.raises(EstimateError, match="not valid YAML"):
        load_racks(p)
    p.write_text(USER_MODEL + USER_MODEL.split("models:")[1])
    with pytest.raises(EstimateError, match="duplicate id") as info:
        load_models(p)
    assert info.value.entry == "claude-tier-assumed"


# -- cost and energy ---------------------------------------------------------------------


def test_cost_per_gpu_hour() -> None:
    assert cost_per_mtok(Decimal("2.0"), 1000.0) == Decimal("0.5556")


def test_energy_formula() -> None:
    # 1 kW per GPU at PUE 1.5 making 1,000 tok/s: 1.5 kWh per 3.6 M tokens.
    assert energy_per_mtok(1.0, 1.5, 1000.0) == pytest.approx(1.5 / 3.6)


def test_estimate_cost_and_energy() -> None:
    e = est(
        "hgx-h200",
        "llama-2-70b",
        "fp8",
        "mlperf-llama2-70b",
        costs=CostInputs(usd_per_gpu_hour=Decimal("2.0"), pue=Decimal("1.2")),
    )
    assert e.cost_per_mtok_usd == cost_per_mtok(Decimal("2.0"), e.output_tokens_per_s_per_gpu)
    assert e.energy_per_mtok_kwh == pytest.approx(
        energy_per_mtok(10.2 / 8, 1.2, e.output_tokens_per_s_per_gpu)
    )
    capex = est(
        "hgx-h200",
        "llama-2-70b",
        "fp8",
        "mlperf-llama2-70b",
        costs=CostInputs(
            capex_usd=Decimal(350_000),
            amortisation_years=Decimal(4),
            pue=Decimal("1.25"),
            usd_per_kwh=Decimal("0.10"),
        ),
    )
    hourly = Decimal(350_000) / (4 * 8760 * 8) + Decimal("10.2") / 8 * Decimal("1.25") * Decimal(
        "0.10"
    )
    assert capex.cost_per_mtok_usd == cost_per_mtok(hourly, capex.output_tokens_per_s_per_gpu)


def test_capex_cost_needs_power_for_vr_nvl144() -> None:
    with pytest.raises(EstimateError, match="publishes no power"):
        est(
            "vr-nvl144",
            "llama-2-70b",
            "fp4",
            "mlperf-llama2-70b",
            costs=CostInputs(capex_usd=Decimal(4_000_000)),
        )
    e = est(
        "vr-nvl144",
        "llama-2-70b",
        "fp4",
        "mlperf-llama2-70b",
        costs=CostInputs(capex_usd=Decimal(4_000_000), power_kw=Decimal(200)),
    )
    assert e.cost_per_mtok_usd is not None
    assert e.energy_per_mtok_kwh is not None
