"""``pactledger reconcile``, end to end on SQLite through Typer's CliRunner.

Four gb200-nvl72 tranches of one rack (72 GPUs, $3.00/GPU-h, SLA 9,000 tokens/s/GPU on
mlperf-llama2-70b, credit rate 0.10), delivered at the start of a two-hour period:

* ``t-on``: a benchmark at the estimate and busy racks → meets its SLA, usage in band;
* ``t-under``: a benchmark at 6,000 tokens/s/GPU → below its SLA; the proposed credit is the
  period's charge (144 GPU-h × $3.00) × 0.10 = 43.20 USD with shortfall 1/3 and the
  contract's and the benchmark's seqs as evidence; ``--record`` appends it once, a rerun
  appends nothing;
* ``t-over``: a benchmark at three times the estimate → over-reporting, no credit;
* ``t-idle``: a good benchmark and almost no usage → low utilisation, never under-delivery.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger.estimator import estimate, load_models, load_racks, load_workloads, pick, shape
from tests.cli import test_cli
from tests.cli.test_cli import Env, run, run_json, write_lines
from tests.domain import price_list, routed

env = test_cli.env
ready = test_cli.ready

START, END = "2026-11-02T00:00:00Z", "2026-11-02T02:00:00Z"
PERIOD = ("--from", START, "--to", END)
GPUS = 72
PRESET = pick(load_workloads(), "mlperf-llama2-70b", "workload")


def capacity(preset: bool = False) -> Decimal:
    """The estimator's tokens/s/GPU (llama-2-70b fp4 server) for the benchmarks' shape, or
    for the SLA's reference workload (the preset itself), which usage is held against."""
    found = estimate(
        pick(load_racks(), "gb200-nvl72", "rack"),
        pick(load_models(), "llama-2-70b", "model"),
        "fp4",
        PRESET if preset else shape(294, 294, server=PRESET.server, interactive=PRESET.interactive),  # type: ignore[arg-type]
        "server",
        GPUS,
    )
    return Decimal(repr(found.output_tokens_per_s_per_gpu))


def tranche(tid: str) -> list[dict[str, Any]]:
    stream = {"stream": f"tranche:{tid}", "tenant": "acme"}
    contract = {
        "tranche_id": tid,
        "provider": "aws",
        "region": "us-east-1",
        "rack_family": "gb200-nvl72",
        "racks": 1,
        "gpus": GPUS,
        "power_mw": "0.13",
        "committed_usd": "1000000",
        "price_per_gpu_hour": "3.00",
        "sla": {
            "reference_workload": "mlperf-llama2-70b",
            "min_tokens_per_s_per_gpu": "9000",
            "credit_rate": "0.10",
        },
    }
    delivery = {
        "tranche_id": tid,
        "racks_delivered": 1,
        "gpus_delivered": GPUS,
        "delivered_at": START,
    }
    return [
        {"type": "TrancheContracted", **stream, "payload": contract},
        {"type": "TrancheDelivered", **stream, "payload": delivery},
    ]


def benchmark(tid: str, per_gpu: Decimal) -> dict[str, Any]:
    return {
        "type": "BenchmarkRecorded",
        "stream": f"benchmark:bm-{tid}",
        "tenant": "acme",
        "payload": {
            "benchmark_id": f"bm-{tid}",
            "tranche_id": tid,
            "rack_family": "gb200-nvl72",
            "model": "llama-2-70b",
            "precision": "fp4",
            "gpus": GPUS,
            "workload": {
                "name": "mlperf-llama2-70b",
                "input_tokens": 294,
                "output_tokens": 294,
                "scenario": "server",
            },
            "measured_tokens_per_s": str((per_gpu * GPUS).quantize(Decimal("0.1"))),
            "harness_digest": "a" * 64,
            "measured_at": "2026-11-02T01:00:00Z",
        },
    }


def served(n: int, tid: str, tokens: int) -> dict[str, Any]:
    return routed(n, occurred_at="2026-11-02T00:30:00Z", tranche_id=tid, output_tokens=tokens)


@pytest.fixture
def tranches(ready: Env) -> Env:
    rate = capacity()
    busy = int(capacity(preset=True) * GPUS * 7200 * Decimal("0.8"))  # 80 % of two hours
    lines: list[dict[str, Any]] = [price_list()]
    for tid in ("t-idle", "t-on", "t-over", "t-under"):
        lines += tranche(tid)
    lines += [
        benchmark("t-on", rate),
        benchmark("t-under", Decimal(6000)),
        benchmark("t-over", rate * 3),
        benchmark("t-idle", rate * Decimal("0.95")),
        served(1, "t-on", busy),
        served(2, "t-under", busy),
        served(3, "t-idle", 1000),
    ]
    result = run("append", str(write_lines(ready.tmp / "tranches.jsonl", lines)))
    assert result.exit_code == 0, result.output
    assert run("checkpoint").exit_code == 0
    return ready


def report(*args: str) -> dict[str, dict[str, Any]]:
    return {r["tranche_id"]: r for r in run_json("reconcile", *PERIOD, *args)}


def test_on_target_meets_its_sla_with_usage_in_band(tranches: Env) -> None:
    on = report()["t-on"]
    assert on["verdict"] == "meets_sla"
    assert on["credit"] is None
    [bench] = on["benchmarks"]
    assert bench["status"] == "in_band"
    assert Decimal(bench["ratio"]) == pytest.approx(Decimal(1), abs=Decimal("0.001"))
    usage = on["usage"]
    assert usage["status"] == "in_band"
    assert usage["gpu_hours"] == "144"
    assert usage["charge_usd"] == "432"
    assert Decimal(usage["utilisation"]) == pytest.approx(Decimal("0.8"), abs=Decimal("0.001"))
    effective, estimated = (
        Decimal(usage["effective_usd_per_mtok"]),
        Decimal(usage["estimated_usd_per_mtok"]),
    )
    assert effective == pytest.approx(estimated / Decimal("0.8"), rel=Decimal("0.001"))


def test_under_delivering_tranche_gets_a_credit_from_its_sla_terms(tranches: Env) -> None:
    under = report()["t-under"]
    assert under["verdict"] == "below_sla"
    credit = under["credit"]
    seq = under["benchmarks"][0]["seq"]
    assert credit == {
        "period_start": "2026-11-02T00:00:00.000000Z",
        "period_end": "2026-11-02T02:00:00.000000Z",
        "expected_tokens_per_s_per_gpu": "9000",
        "observed_tokens_per_s_per_gpu": "6000",
        "shortfall": "0.3333",
        "credit_usd": "43.2",
        "evidence": [
            {"first": under["contract_seq"], "last": under["contract_seq"]},  # the SLA terms
            {"first": seq, "last": seq},  # the benchmark that measured the shortfall
        ],
        "checkpoint_size": test_cli.head_size(),
    }
    assert under["contract_seq"] < seq
    assert under["recorded_seq"] is None
    # Proposing appends nothing.
    by_id = {t["tranche_id"]: t for t in run_json("tranches", "--as-of", END)}
    assert by_id["t-under"]["credits"] == 0


def test_record_appends_the_credit_once(tranches: Env) -> None:
    size = test_cli.head_size()
    first = report("--record")["t-under"]
    assert first["recorded_now"] is True
    assert test_cli.head_size() == size + 1
    appended = run_json("show", str(size))["entry"]
    assert appended["type"] == "TrancheCreditAssessed"
    assert appended["payload"]["credit_usd"] == "43.2"
    again = report("--record")["t-under"]
    assert again["recorded_seq"] == first["recorded_seq"] == size
    assert "recorded_now" not in again
    assert test_cli.head_size() == size + 1
    by_id = {t["tranche_id"]: t for t in run_json("tranches", "--as-of", END)}
    assert by_id["t-under"]["credits"] == 1
    assert sum(t["credits"] for t in by_id.values()) == 1


def test_over_reporting_benchmark_is_flagged_and_earns_no_credit(tranches: Env) -> None:
    over = report()["t-over"]
    assert over["verdict"] == "over_reporting"
    assert over["benchmarks"][0]["status"] == "over_reporting"
    assert Decimal(over["benchmarks"][0]["ratio"]) > Decimal("2.9")
    assert over["credit"] is None


def test_low_usage_is_low_utilisation_not_under_delivery(tranches: Env) -> None:
    idle = report()["t-idle"]
    assert idle["usage"]["status"] == "low_utilisation"
    assert Decimal(idle["usage"]["utilisation"]) < Decimal("0.001")
    assert idle["verdict"] == "meets_sla"
    assert idle["credit"] is None


def test_one_tranche_and_the_table(tranches: Env) -> None:
    assert list(report("--tranche", "t-under")) == ["t-under"]
    result = run("reconcile", *PERIOD, "--tranche", "t-under")
    assert result.exit_code == 0, result.output
    assert "below_sla" in result.stdout
    assert "43.2" in result.stdout


def test_benchmark_outside_the_period_is_not_counted(tranches: Env) -> None:
    late = report("--tranche", "t-under")  # sanity: inside
    assert late["t-under"]["benchmarks"]
    early = run_json("reconcile", "--from", START, "--to", "2026-11-02T00:45:00Z")
    assert all(not r["benchmarks"] for r in early)
    assert {r["verdict"] for r in early} == {"no_benchmark"}


def test_usage_errors_exit_2_and_write_nothing(tranches: Env) -> None:
    size = test_cli.head_size()
    assert run("reconcile", "--record").exit_code == 2
    assert run("reconcile", "--band", "wide").exit_code == 2
    assert run("reconcile", "--from", "yesterday").exit_code == 2
    unknown = run("reconcile", "--tranche", "nope")
    assert unknown.exit_code == 1
    assert "nope" in unknown.output
    assert test_cli.head_size() == size


def test_a_benchmark_the_estimator_cannot_model_is_reported_without_an_estimate(
    tranches: Env,
) -> None:
    unknown = benchmark("t-on", Decimal(9500))
    unknown["stream"] = "benchmark:bm-claude"
    unknown["payload"].update(benchmark_id="bm-claude", model="claude-sonnet-4-5")
    appended = run("append", str(write_lines(tranches.tmp / "more.jsonl", [unknown])))
    assert appended.exit_code == 0, appended.output
    on = report("--tranche", "t-on")["t-on"]
    row = next(b for b in on["benchmarks"] if b["benchmark_id"] == "bm-claude")
    assert row["status"] == "no_estimate"
    assert row["estimated_tokens_per_s_per_gpu"] is None
    assert "claude-sonnet-4-5" in row["estimate_note"]
    assert on["verdict"] == "meets_sla"
