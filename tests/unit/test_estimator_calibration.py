"""The calibration fit and its leave-one-out error on the 68 MLPerf rows.

The issue's target is median |error| <= 15 % and no row worse than 40 %. The median is met
(11.0 %); two rows remain beyond 40 % (52.6 % and 43.7 %, both server results that the same
round's other racks contradict; see docs/estimator.md). These tests pin what is achieved so a
regression is caught.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.estimator.calibrate import (
    calibrate,
    leave_one_out,
    load_rows,
    markdown,
    summary,
)
from ledger.estimator.catalogue import load_models, load_racks, load_workloads
from ledger.estimator.estimate import estimate
from ledger.estimator.roofline import Efficiencies

ACHIEVED_MEDIAN = 0.115
ACHIEVED_MAX = 0.53
ACHIEVED_BEYOND_40 = 2


def test_rows_are_the_68_published_results() -> None:
    rows = load_rows()
    assert len(rows) == 68
    assert all(r.per_gpu > 0 for r in rows)


def test_fit_is_deterministic_and_within_bounds() -> None:
    a, b = calibrate(), calibrate()
    assert a == b
    e = a.efficiencies
    assert 0 < e.compute_fp4 <= e.compute_fp8 <= 1
    assert 0 < e.memory <= 1


def test_leave_one_out_error() -> None:
    results = leave_one_out()
    med, worst = summary(results)
    assert med <= ACHIEVED_MEDIAN
    assert worst <= ACHIEVED_MAX
    assert sum(abs(r.error) > 0.40 for r in results) <= ACHIEVED_BEYOND_40
    assert "| row |" in markdown(calibrate(), results)


def test_software_factors_find_the_cross_round_gain() -> None:
    fit = calibrate()
    groups = {(f.model, f.round): f for f in fit.software}
    assert sum(f.rows for f in fit.software) == 68
    # deepseek-r1 on the same racks served ~1.75x more in v6.0 than in v5.1 (software).
    assert groups["deepseek-r1", "v6.0"].factor > 1.4 * groups["deepseek-r1", "v5.1"].factor
    newest = fit.software_for("deepseek-r1")
    assert newest is not None
    assert newest.round == "v6.0"
    assert fit.software_for("mixtral-8x7b") is None


def test_estimate_applies_the_newest_software_factor() -> None:
    rack, model = load_racks()["hgx-b200"], load_models()["deepseek-r1"]
    work = load_workloads()["mlperf-deepseek-r1"]
    fitted = estimate(rack, model, "fp4", work)
    factor = calibrate().software_for("deepseek-r1")
    assert factor is not None
    assert fitted.software_factor == factor.factor
    assert "v6.0" in str(fitted.assumptions["software_factor"])
    plain = estimate(rack, model, "fp4", work, efficiencies=calibrate().efficiencies)
    assert plain.software_factor == 1.0
    assert fitted.output_tokens_per_s == plain.output_tokens_per_s * factor.factor
    assert fitted.batch_size == plain.batch_size
    assert fitted.to_json()["software_factor"] == factor.factor


def test_a_left_out_row_does_not_set_its_own_software_factor() -> None:
    # Triple one llama-2-70b row: were the row inside its own group's factor, the LOO error
    # would shrink towards 0; left out, it stays near 1/3 - 1.
    rows = [r for r in load_rows() if r.model == "llama-2-70b" and r.round in {"v5.0", "v5.1"}]
    honest = {r.row.label: r.error for r in leave_one_out(rows)}
    boosted = [replace(rows[0], per_gpu=rows[0].per_gpu * 3), *rows[1:]]
    results = {r.row.label: r.error for r in leave_one_out(boosted)}
    target = rows[0].label
    assert (1 + results[target]) == pytest.approx((1 + honest[target]) / 3, rel=0.1)


def test_explicit_efficiencies_are_used_as_given() -> None:
    eff = Efficiencies(0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0)
    rack, model = load_racks()["hgx-h200"], load_models()["llama-3.1-70b"]
    work = load_workloads()["mlperf-llama2-70b"]
    assert estimate(rack, model, "fp8", work, efficiencies=eff).assumptions["efficiencies"] == {
        "memory": 0.5,
        "compute_fp8": 0.5,
        "compute_fp4": 0.5,
        "moe": 0.5,
        "headroom": 0.5,
        "server_load": 1.0,
        "interactive_load": 1.0,
        "ttft_queue": 0.0,
    }
