"""Throughput, cost and energy estimates for LLM inference on NVIDIA racks (pure core).

A calibrated roofline (see ``docs/estimator.md``): prefill compute-bound, decode bounded by
HBM bandwidth or compute, batch bounded by HBM capacity and the scenario's TPOT limit,
efficiencies fitted on published MLPerf Inference results. No I/O besides reading this
package's data files and paths handed in.

    rack = pick(load_racks(), "hgx-b200", "rack")
    model = pick(load_models(), "llama-2-70b", "model")
    work = pick(load_workloads(), "mlperf-llama2-70b", "workload")
    estimate(rack, model, "fp4", work, "server")
"""

from ledger.estimator.calibrate import CalibrationRow, Fit, LooResult, calibrate, leave_one_out
from ledger.estimator.catalogue import (
    LatencyLimits,
    ModelProfile,
    Rack,
    Workload,
    load_models,
    load_racks,
    load_workloads,
    merge,
    pick,
    shape,
)
from ledger.estimator.errors import EstimateError
from ledger.estimator.estimate import (
    CostInputs,
    Estimate,
    cost_per_mtok,
    default_efficiencies,
    energy_per_mtok,
    estimate,
)
from ledger.estimator.roofline import Efficiencies

__all__ = [
    "CalibrationRow",
    "CostInputs",
    "Efficiencies",
    "Estimate",
    "EstimateError",
    "Fit",
    "LatencyLimits",
    "LooResult",
    "ModelProfile",
    "Rack",
    "Workload",
    "calibrate",
    "cost_per_mtok",
    "default_efficiencies",
    "energy_per_mtok",
    "estimate",
    "leave_one_out",
    "load_models",
    "load_racks",
    "load_workloads",
    "merge",
    "pick",
    "shape",
]
