"""``pactledger estimate --plot`` and the curve behind it (``ledger/estimator/curve.py``).

Proves that the curve follows the roofline (tokens/s per GPU never falls and TPOT rises with
the batch, from 1 to the HBM bound), that the estimate's operating point lies on it (and
under it when a latency scenario caps the rate), that the TPOT limit travels with it; that
``--plot`` writes a real PNG, says so on stderr and in ``--json``; and that a missing folder
or a non-image suffix is a usage error (exit 2) naming the option, with nothing written.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from ledger.estimator import estimate, load_models, load_racks, load_workloads
from ledger.estimator.curve import CurvePoint, throughput_curve
from tests.cli.test_cli import run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ARGS = ("--rack", "hgx-b200", "--model", "llama-2-70b", "--precision", "fp4")
WORKLOAD = ("--workload", "mlperf-llama2-70b")


def curve(model: str, workload: str, scenario: str, points: int = 40) -> list[CurvePoint]:
    return throughput_curve(
        load_racks()["hgx-b200"],
        load_models()[model],
        "fp4",
        load_workloads()[workload],
        scenario,
        points=points,
    )


def chosen(points: list[CurvePoint]) -> CurvePoint:
    (found,) = [p for p in points if p.chosen]
    return found


@pytest.mark.parametrize(
    ("model", "workload"),
    [("llama-2-70b", "mlperf-llama2-70b"), ("deepseek-r1", "mlperf-deepseek-r1")],
)
def test_curve_rises_with_batch(model: str, workload: str) -> None:
    points = curve(model, workload, "offline")
    assert points[0].batch == pytest.approx(1.0)
    assert len(points) == 40  # the chosen offline batch is the HBM bound, the last point
    batches = [p.batch for p in points]
    assert batches == sorted(batches)
    rates = [p.tokens_per_s_per_gpu for p in points]
    tpots = [p.tpot_ms for p in points]
    assert all(b >= a * (1 - 1e-12) for a, b in pairwise(rates))
    assert all(b > a for a, b in pairwise(tpots))
    assert {p.bound for p in points} <= {"memory", "compute"}
    assert points[0].bound == "memory"  # one sequence reads all the weights per token
    assert all(p.tpot_limit_ms is None for p in points)


@pytest.mark.parametrize("scenario", ["offline", "server"])
def test_chosen_point_is_the_estimate(scenario: str) -> None:
    rack, model = load_racks()["hgx-b200"], load_models()["llama-2-70b"]
    want = estimate(rack, model, "fp4", load_workloads()["mlperf-llama2-70b"], scenario)
    point = chosen(curve("llama-2-70b", "mlperf-llama2-70b", scenario))
    assert int(point.batch) == want.batch_size
    assert point.bound == want.bound
    if scenario == "offline":
        assert point.tokens_per_s_per_gpu == pytest.approx(want.output_tokens_per_s_per_gpu)
    else:  # the curve is the roofline R(B); the estimate may stop below it (the load bound)
        assert point.tokens_per_s_per_gpu >= want.output_tokens_per_s_per_gpu * (1 - 1e-9)


def test_latency_scenario_carries_its_limit() -> None:
    points = curve("llama-2-70b", "mlperf-llama2-70b", "interactive", points=8)
    limit = load_workloads()["mlperf-llama2-70b"].limits("interactive")
    assert limit is not None
    assert {p.tpot_limit_ms for p in points} == {limit.tpot_ms}
    point = chosen(points)
    assert point.tpot_target_ms is not None
    assert point.tpot_ms <= point.tpot_target_ms * (1 + 1e-9) < limit.tpot_ms
    # The estimate reports at most the roofline: the load bound may cap it below the curve.
    want = estimate(
        load_racks()["hgx-b200"],
        load_models()["llama-2-70b"],
        "fp4",
        load_workloads()["mlperf-llama2-70b"],
        "interactive",
    )
    assert want.output_tokens_per_s_per_gpu <= point.tokens_per_s_per_gpu * (1 + 1e-9)


def test_too_few_points_is_misuse() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        curve("llama-2-70b", "mlperf-llama2-70b", "offline", points=1)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "curve.png"
    result = run("estimate", *ARGS, *WORKLOAD, "--scenario", "server", "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert f"wrote {path}" in result.stderr
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000  # two panels of lines and text, not an empty canvas


def test_plot_in_json(tmp_path: Path) -> None:
    path = tmp_path / "curve.png"
    result = run(
        "estimate", *ARGS, "--input-tokens", "2000", "--output-tokens", "500",
        "--plot", str(path), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plot"] == str(path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_without_plot_json_has_no_plot_key() -> None:
    result = run("estimate", *ARGS, *WORKLOAD, "--json")
    assert result.exit_code == 0, result.output
    assert "plot" not in json.loads(result.stdout)


@pytest.mark.parametrize(
    ("name", "says"),
    [("missing/curve.png", "does not exist"), ("curve.txt", ".png")],
)
def test_bad_plot_path_is_a_usage_error(tmp_path: Path, name: str, says: str) -> None:
    path = tmp_path / name
    result = run("estimate", *ARGS, *WORKLOAD, "--plot", str(path))
    assert result.exit_code == 2
    assert "--plot" in result.stderr
    assert says in result.stderr
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
