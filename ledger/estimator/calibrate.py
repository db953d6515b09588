"""Fit the roofline's efficiencies to published MLPerf Inference results, with leave-one-out.

Guarantees:

* Deterministic: a coordinate search (golden section on a log scale, fixed passes and
  bounds) with no randomness and no third-party optimiser; the same rows give the same fit.
* The only data read is the packaged ``data/mlperf-calibration.csv`` (a copy of
  ``shared/reference/mlperf-calibration.csv``, every row citing its MLCommons result) or
  rows handed in.
* ``leave_one_out`` refits without each row in turn and reports that row's error, so the
  table in ``docs/estimator.md`` is out-of-sample: the left-out row takes part neither in the
  efficiencies nor in its software factor.
* Software factors: MLPerf rounds are software releases, and the same rack serving the same
  model gains from round to round (deepseek-r1 on ``hgx-b200``: ×1.75 from v5.1 to v6.0).
  Each (model, round) gets a throughput multiplier, shrunk towards 1 by a prior worth
  ``SOFTWARE_PRIOR_ROWS`` rows at factor 1 (ridge on the log): with ``r_i`` the log errors of
  the group's rows, ``log s = −Σ r_i / (n + prior)``. It is closed-form, so the efficiencies
  are searched on the loss with the factors profiled out.

Run ``python -m ledger.estimator.calibrate --markdown`` to print the fit and the LOO table.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from importlib import resources

from ledger.estimator.catalogue import (
    ModelProfile,
    Rack,
    Workload,
    load_models,
    load_racks,
    load_workloads,
    pick,
)
from ledger.estimator.roofline import Case, Efficiencies, build_case, group_sizes, throughput

# Search bounds of each efficiency (fractions of peak / of the TPOT limit).
BOUNDS: dict[str, tuple[float, float]] = {
    "memory": (0.2, 1.0),
    "compute_fp8": (0.05, 1.0),
    "compute_fp4": (0.05, 1.0),
    "moe": (0.02, 1.0),
    "headroom": (0.05, 1.0),
    "server_load": (0.2, 1.0),
    "interactive_load": (0.2, 1.0),
    "ttft_queue": (0.05, 20.0),
}
_START = Efficiencies(0.7, 0.5, 0.4, 0.3, 0.5, 0.8, 0.6, 2.0)
_PASSES = 5
_GOLDEN_STEPS = 24
_MISS = 1e-9  # a row whose latency limit cannot be met predicts ~0 (a huge log error)
# Weight of the prior that a (model, round) runs the generic software level (factor 1), in rows.
SOFTWARE_PRIOR_ROWS = 1.0


@dataclass(frozen=True)
class CalibrationRow:
    """One published MLPerf result: output tokens/s per GPU for a system/model/scenario."""

    round: str
    system: str
    gpus: int
    model: str
    scenario: str
    precision: str
    per_gpu: float
    result_id: str

    @property
    def label(self) -> str:
        rid = f" {self.result_id}" if self.result_id else ""
        return (
            f"{self.round} {self.system} x{self.gpus} {self.model} "
            f"{self.scenario} {self.precision}{rid}"
        )


@dataclass(frozen=True)
class SoftwareFactor:
    """The fitted throughput multiplier of one model's software in one MLPerf round."""

    model: str
    round: str
    factor: float
    rows: int


@dataclass(frozen=True)
class Fit:
    efficiencies: Efficiencies
    rows: int
    rms_log_error: float
    software: tuple[SoftwareFactor, ...] = ()

    def software_for(self, model: str) -> SoftwareFactor | None:
        """The factor of ``model``'s newest calibrated round (what a buyer runs today)."""
        own = [f for f in self.software if f.model == model]
        return max(own, key=lambda f: _round_order(f.round)) if own else None


def _round_order(name: str) -> tuple[int, ...]:
    """``"v5.1"`` → ``(5, 1)``: MLPerf rounds in release order."""
    return tuple(int(part) for part in name.lstrip("v").split(".") if part.isdigit())


@dataclass(frozen=True)
class LooResult:
    row: CalibrationRow
    predicted_per_gpu: float
    error: float  # predicted / published − 1


def load_rows(text: str | None = None) -> list[CalibrationRow]:
    """The packaged calibration rows (or those of ``text``, same CSV columns)."""
    if text is None:
        text = (
            resources.files("ledger.estimator")
            .joinpath("data", "mlperf-calibration.csv")
            .read_text("utf-8")
        )
    return [
        CalibrationRow(
            round=r["round"],
            system=r["system"],
            gpus=int(r["gpus"]),
            model=r["model"],
            scenario=r["scenario"],
            precision=r["precision"],
            per_gpu=float(r["output_tokens_per_s_total"]) / int(r["gpus"]),
            result_id=r["result_id"],
        )
        for r in csv.DictReader(io.StringIO(text))
    ]


def preset_for(model: str, workloads: dict[str, Workload]) -> Workload:
    """The MLPerf preset whose model is ``model``."""
    for w in workloads.values():
        if w.model == model and w.id.startswith("mlperf-"):
            return w
    return pick(workloads, f"mlperf-{model}", "workload")


@dataclass(frozen=True)
class _Prepared:
    row: CalibrationRow
    cases: tuple[tuple[Case, int], ...]  # (case, instances) per candidate instance size


def _prepare(
    rows: Sequence[CalibrationRow],
    racks: dict[str, Rack],
    models: dict[str, ModelProfile],
    workloads: dict[str, Workload],
) -> list[_Prepared]:
    out = []
    for row in rows:
        rack = pick(racks, row.system, "rack")
        model = pick(models, row.model, "model")
        work = preset_for(row.model, workloads)
        cases = tuple(
            (build_case(rack, model, row.precision, work, row.scenario, g), row.gpus // g)
            for g in group_sizes(rack, model, row.precision, row.gpus)
        )
        out.append(_Prepared(row, cases))
    return out


def _predict(prep: _Prepared, eff: Efficiencies) -> float:
    for case, instances in prep.cases:
        t = throughput(case, eff)
        if t is not None:
            return t.tokens_per_s * instances / prep.row.gpus
    return _MISS


def _group(row: CalibrationRow) -> tuple[str, str]:
    return row.model, row.round


def _log_errors(
    preps: Sequence[_Prepared], eff: Efficiencies
) -> dict[tuple[str, str], list[float]]:
    """log(predicted / published) of every row, by (model, round), before software factors."""
    groups: dict[tuple[str, str], list[float]] = {}
    for p in preps:
        groups.setdefault(_group(p.row), []).append(math.log(_predict(p, eff) / p.row.per_gpu))
    return groups


def _log_factor(errors: Sequence[float]) -> float:
    """The ridge estimate of a group's log software factor (0 with no rows)."""
    return -sum(errors) / (len(errors) + SOFTWARE_PRIOR_ROWS)


def _loss(preps: Sequence[_Prepared], eff: Efficiencies) -> float:
    """Σ (r_i + log s_g)² + prior · Σ (log s_g)², with each s_g at its optimum.

    Per group that minimum is Σ r² − (Σ r)² / (n + prior).
    """
    return sum(
        sum(r * r for r in errors) - sum(errors) ** 2 / (len(errors) + SOFTWARE_PRIOR_ROWS)
        for errors in _log_errors(preps, eff).values()
    )


def _software(preps: Sequence[_Prepared], eff: Efficiencies) -> tuple[SoftwareFactor, ...]:
    return tuple(
        SoftwareFactor(model, round_, math.exp(_log_factor(errors)), len(errors))
        for (model, round_), errors in sorted(
            _log_errors(preps, eff).items(), key=lambda kv: (kv[0][0], _round_order(kv[0][1]))
        )
    )


def _golden(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Minimise f on [lo, hi] in log space (golden-section search)."""
    a, b = math.log(lo), math.log(hi)
    r = (math.sqrt(5) - 1) / 2
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(math.exp(c)), f(math.exp(d))
    for _ in range(_GOLDEN_STEPS):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = f(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = f(math.exp(d))
    return math.exp((a + b) / 2)


def _search(preps: Sequence[_Prepared], start: Efficiencies, passes: int) -> Efficiencies:
    eff = start
    names = [f.name for f in fields(Efficiencies)]
    for _ in range(passes):
        for name in names:
            lo, hi = BOUNDS[name]

            def f(x: float, name: str = name, base: Efficiencies = eff) -> float:
                return _loss(preps, replace(base, **{name: x}))

            eff = replace(eff, **{name: _golden(f, lo, hi)})
    return eff


def _catalogues() -> tuple[dict[str, Rack], dict[str, ModelProfile], dict[str, Workload]]:
    return load_racks(), load_models(), load_workloads()


def calibrate(rows: Sequence[CalibrationRow] | None = None) -> Fit:
    """Fit the efficiencies to ``rows`` (default: the packaged MLPerf rows)."""
    rows = load_rows() if rows is None else rows
    preps = _prepare(rows, *_catalogues())
    eff = _search(preps, _START, _PASSES)
    return Fit(eff, len(rows), math.sqrt(_loss(preps, eff) / len(preps)), _software(preps, eff))


def leave_one_out(rows: Sequence[CalibrationRow] | None = None) -> list[LooResult]:
    """Each row predicted by a fit on all the other rows (warm-started from the full fit)."""
    rows = load_rows() if rows is None else rows
    preps = _prepare(rows, *_catalogues())
    full = _search(preps, _START, _PASSES)
    out = []
    for i, prep in enumerate(preps):
        others = [p for j, p in enumerate(preps) if j != i]
        eff = _search(others, full, 2)
        peers = _log_errors(others, eff).get(_group(prep.row), [])
        pred = _predict(prep, eff) * math.exp(_log_factor(peers))
        out.append(LooResult(prep.row, pred, pred / prep.row.per_gpu - 1))
    return out


def summary(results: Sequence[LooResult]) -> tuple[float, float]:
    """(median, max) absolute LOO error as fractions."""
    errs = [abs(r.error) for r in results]
    return statistics.median(errs), max(errs)


def markdown(fit: Fit, results: Sequence[LooResult]) -> str:
    """The fit and the LOO table as Markdown (pasted into docs/estimator.md)."""
    e = fit.efficiencies
    med, worst = summary(results)
    lines = [
        f"Fit on {fit.rows} rows (RMS log error {fit.rms_log_error:.3f}):",
        "",
        "| parameter | value |",
        "|---|---|",
        *(f"| {f.name} | {getattr(e, f.name):.3f} |" for f in fields(Efficiencies)),
        "",
        "| software factor | MLPerf round | rows | factor |",
        "|---|---|---:|---:|",
        *(f"| {f.model} | {f.round} | {f.rows} | {f.factor:.3f} |" for f in fit.software),
        "",
        f"Leave-one-out: median |error| {med:.1%}, max |error| {worst:.1%}.",
        "",
        "| row | published tok/s/GPU | LOO predicted | error |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.row.label} | {r.row.per_gpu:,.1f} | {r.predicted_per_gpu:,.1f} | {r.error:+.1%} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fit = calibrate()
    results = leave_one_out()
    if "--markdown" in argv:
        sys.stdout.write(markdown(fit, results))
    else:
        med, worst = summary(results)
        sys.stdout.write(f"{fit}\nLOO median {med:.1%} max {worst:.1%}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
