"""The throughput curve behind one estimate: tokens/s per GPU and TPOT against batch size.

Pure (no I/O, no plotting library): the points ``pactledger estimate --plot`` draws. The
instance size is the one :func:`~ledger.estimator.estimate.estimate` picks, and every point is
computed by the same roofline functions (``build_case``, ``throughput`` in
``ledger/estimator/roofline.py``, docs/estimator.md steps 4–7), evaluated at a fixed batch:

* batches run from 1 to the HBM-bounded maximum B_hbm in geometric steps; the batch the
  estimate chose is one of the points (``chosen``);
* each point's TPOT is the mean decode step per output token of one sequence, B / R(B);
* ``tpot_limit_ms`` is the scenario's p99 TPOT limit (``None`` offline) and
  ``tpot_target_ms`` the share of it a mean step may use (the fitted headroom).

Throughputs include the estimate's software factor (a constant multiplier, so the curve's
shape is the roofline's). Invariants (the roofline's): tokens/s per GPU never falls and TPOT
never falls as the batch grows. The chosen point's throughput is the uncapped roofline R(B);
the estimate may report less in a latency scenario (the load and TTFT bounds of step 8).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ledger.estimator.catalogue import ModelProfile, Rack, Workload
from ledger.estimator.estimate import default_efficiencies, estimate
from ledger.estimator.roofline import Case, Efficiencies, Throughput, build_case, throughput


@dataclass(frozen=True)
class CurvePoint:
    batch: float  # sequences decoded together per instance
    tpot_ms: float  # ms per output token of one sequence
    tokens_per_s_per_gpu: float
    bound: str  # "memory" or "compute"
    chosen: bool  # the estimate's operating point
    tpot_limit_ms: float | None  # the scenario's p99 limit; None offline
    tpot_target_ms: float | None  # headroom · limit, what the estimate's mean step may use


def throughput_curve(
    rack: Rack,
    model: ModelProfile,
    precision: str,
    workload: Workload,
    scenario: str = "offline",
    gpus: int | None = None,
    efficiencies: Efficiencies | None = None,
    points: int = 40,
    *,
    gpus_per_instance: int | None = None,
) -> list[CurvePoint]:
    """``points`` batches from 1 to B_hbm (geometric) plus the estimate's, sorted by batch.

    Raises what :func:`estimate` raises for the same arguments; ``points`` < 2 →
    ``ValueError``.
    """
    if points < 2:
        raise ValueError("points must be at least 2")
    eff = efficiencies or default_efficiencies()
    chosen = estimate(
        rack,
        model,
        precision,
        workload,
        scenario,
        gpus,
        gpus_per_instance=gpus_per_instance,
        efficiencies=efficiencies,
    )
    case = build_case(rack, model, precision, workload, scenario, chosen.gpus_per_instance)
    operating = throughput(case, eff)
    assert operating is not None  # estimate() succeeded with this instance size
    # Per GPU as the estimate counts it: whole instances over all the GPUs given, times the
    # model's software factor.
    per_gpu = chosen.instances / chosen.gpus * chosen.software_factor
    limit = case.tpot_limit_s
    limit_ms = None if limit is None else limit * 1000
    target_ms = None if limit is None else limit * eff.headroom * 1000

    def point(batch: float, is_chosen: bool) -> CurvePoint:
        rate = _rate(case, eff, batch)
        return CurvePoint(
            batch=batch,
            tpot_ms=batch / rate.tokens_per_s * 1000,
            tokens_per_s_per_gpu=rate.tokens_per_s * per_gpu,
            bound=rate.bound,
            chosen=is_chosen,
            tpot_limit_ms=limit_ms,
            tpot_target_ms=target_ms,
        )

    top = case.batch_hbm
    batches = [top ** (i / (points - 1)) for i in range(points)]
    curve = [point(b, False) for b in batches if b != operating.batch]
    curve.append(point(operating.batch, True))
    return sorted(curve, key=lambda p: (p.batch, not p.chosen))


def _rate(case: Case, eff: Efficiencies, batch: float) -> Throughput:
    # ``throughput`` runs at the HBM bound when no TPOT limit applies: setting that bound to
    # ``batch`` evaluates the roofline R(batch) itself, with no second copy of the physics.
    fixed = replace(case, batch_hbm=batch, tpot_limit_s=None, ttft_limit_s=None)
    found = throughput(fixed, eff)
    assert found is not None  # without limits there is always a rate
    return found
