"""``pactledger estimate --plot``: the throughput curve of an estimate as an image.

Two panels from :func:`ledger.estimator.curve.throughput_curve`: output tokens/s per GPU
against batch size (log x) and against TPOT (ms per output token). The estimate's operating
point is marked with the throughput it reports (below the curve when a latency scenario's
load or TTFT bound caps it); the scenario's TPOT limit, and the share of it a mean step may
use, are vertical lines.

matplotlib is imported inside :func:`plot_curve` with the Agg backend (no display), so
importing the CLI stays fast and headless machines work.
"""

from __future__ import annotations

from pathlib import Path

from ledger.estimator import Estimate
from ledger.estimator.curve import CurvePoint

# Formats the Agg backend writes that a reader opens without extra tools.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def plot_curve(points: list[CurvePoint], estimate: Estimate, path: Path) -> None:
    """Draw ``points`` with ``estimate``'s operating point and write the figure to ``path``
    (its suffix picks the format). Raises ``OSError`` when the file cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not points:
        raise ValueError("no points to plot")
    batches = [p.batch for p in points]
    rates = [p.tokens_per_s_per_gpu for p in points]
    tpots = [p.tpot_ms for p in points]
    chosen = next((p for p in points if p.chosen), None)
    fig, (by_batch, by_tpot) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    try:
        for axes, xs in ((by_batch, batches), (by_tpot, tpots)):
            axes.plot(xs, rates, color="tab:blue", label="roofline (calibrated)")
            axes.set_ylabel("output tokens/s per GPU")
            axes.grid(True, which="both", alpha=0.3)
        by_batch.set_xscale("log")
        by_batch.set_xlabel("batch size per instance (sequences)")
        by_tpot.set_xlabel("TPOT (ms per output token)")
        if chosen is not None:
            label = (
                f"estimate: batch {estimate.batch_size:,}, "
                f"{estimate.output_tokens_per_s_per_gpu:,.0f} tok/s/GPU ({estimate.bound})"
            )
            for axes, x in ((by_batch, chosen.batch), (by_tpot, chosen.tpot_ms)):
                axes.plot(
                    [x],
                    [estimate.output_tokens_per_s_per_gpu],
                    "o",
                    color="tab:red",
                    markersize=8,
                    label=label,
                    zorder=3,
                )
            if estimate.output_tokens_per_s_per_gpu < 0.99 * chosen.tokens_per_s_per_gpu:
                for axes, x in ((by_batch, chosen.batch), (by_tpot, chosen.tpot_ms)):
                    axes.plot(
                        [x],
                        [chosen.tokens_per_s_per_gpu],
                        "o",
                        markerfacecolor="none",
                        color="tab:red",
                        markersize=8,
                        label="roofline at that batch (capped by load / TTFT)",
                        zorder=3,
                    )
        limit = points[0].tpot_limit_ms
        target = points[0].tpot_target_ms
        if limit is not None:
            by_tpot.axvline(
                limit, color="tab:orange", linestyle="--", label=f"TPOT limit {limit:g} ms (p99)"
            )
        if target is not None:
            by_tpot.axvline(
                target, color="tab:gray", linestyle=":", label=f"mean-step target {target:.1f} ms"
            )
        by_batch.legend(loc="lower right", fontsize="small")
        by_tpot.legend(loc="lower right", fontsize="small")
        fig.suptitle(
            f"{estimate.model} on {estimate.gpus} × {estimate.rack} "
            f"({estimate.gpus_per_instance} GPU(s) per instance), {estimate.precision}, "
            f"{estimate.workload}, {estimate.scenario}"
        )
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
