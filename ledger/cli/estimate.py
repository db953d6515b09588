"""``pactledger estimate``: throughput, cost and energy of a model on a rack (docs/estimator.md).

A thin shell over :func:`ledger.estimator.estimate`: it picks the rack, model and workload
from the shipped catalogues (overlaid by the user's ``--racks/--models/--workloads`` files),
builds the cost inputs from the flags and prints the result. No database, no settings.

Exit status: 0 with an estimate; 1 when the data cannot give one (unknown rack, model,
precision or workload, a bad user file, a model that does not fit) with a sentence naming
the culprit; 2 for a usage error (the workload given both ways or neither, a bad number, a
``--plot`` path whose folder does not exist or whose suffix is not an image format).

``--plot FILE`` also draws the estimate's throughput curve (``ledger/cli/plot.py``) and says
``wrote FILE`` on stderr; ``--json`` then carries ``"plot": "FILE"``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ledger.estimator import (
    CostInputs,
    Estimate,
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
from ledger.estimator import estimate as estimate_throughput
from ledger.estimator.curve import CurvePoint, throughput_curve

from .common import JsonFlag, err, fail, out, print_json, run_action
from .plot import PLOT_SUFFIXES, plot_curve

SCENARIOS = ("offline", "server", "interactive")


def _money(text: str) -> Any:
    return typer.Option(show_default=False, help=text, rich_help_panel="Cost and energy")


def _file(kind: str) -> Any:
    return typer.Option(
        show_default=False,
        help=f"A YAML file of your own {kind} (top-level '{kind}:' list); overlays the shipped.",
        rich_help_panel="Your own data",
    )


def _decimal(value: str | None, flag: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        fail(f"{flag}: give a number (got '{value}')", 2)
    if not number.is_finite() or number < 0:
        fail(f"{flag}: give a finite number of at least 0 (got '{value}')", 2)
    return number


def _costs(
    *,
    price: str | None,
    capex: str | None,
    years: str | None,
    power: str | None,
    pue: str | None,
    kwh: str | None,
) -> CostInputs:
    """Cost inputs from the flags; the estimator's defaults for any left out."""
    usd_per_gpu_hour = _decimal(price, "--price-per-gpu-hour")
    capex_usd = _decimal(capex, "--capex-usd")
    if usd_per_gpu_hour is not None and capex_usd is not None:
        fail("give either --price-per-gpu-hour or --capex-usd (with its options), not both", 2)
    given: dict[str, Any] = {}
    for name, value, flag in (
        ("amortisation_years", years, "--amortisation-years"),
        ("power_kw", power, "--power-kw"),
        ("pue", pue, "--pue"),
        ("usd_per_kwh", kwh, "--usd-per-kwh"),
    ):
        number = _decimal(value, flag)
        if number is not None:
            if number == 0 and name != "usd_per_kwh":
                fail(f"{flag}: give a number above 0 (got '{value}')", 2)
            given[name] = number
    return CostInputs(usd_per_gpu_hour=usd_per_gpu_hour, capex_usd=capex_usd, **given)


def _catalogues(
    racks: Path | None, models: Path | None, workloads: Path | None
) -> tuple[dict[str, Rack], dict[str, ModelProfile], dict[str, Workload]]:
    """The shipped catalogues, each overlaid by the user's file where one is given."""

    def load() -> tuple[dict[str, Rack], dict[str, ModelProfile], dict[str, Workload]]:
        return (
            merge(load_racks(), *([load_racks(racks)] if racks else [])),
            merge(load_models(), *([load_models(models)] if models else [])),
            merge(load_workloads(), *([load_workloads(workloads)] if workloads else [])),
        )

    found: tuple[dict[str, Rack], dict[str, ModelProfile], dict[str, Workload]]
    found = run_action(load)
    return found


def estimate(
    rack: Annotated[str, typer.Option(help="Rack id, e.g. hgx-b200, gb200-nvl72.")],
    model: Annotated[str, typer.Option(help="Model id, e.g. llama-2-70b, deepseek-r1.")],
    precision: Annotated[str, typer.Option(help="Weights precision: bf16, fp8 or fp4.")],
    workload: Annotated[
        str | None,
        typer.Option(
            help="An MLPerf workload preset (e.g. mlperf-llama2-70b); or give the token counts.",
            show_default=False,
        ),
    ] = None,
    input_tokens: Annotated[
        float | None,
        typer.Option(
            min=1, help="Mean input tokens per request (instead of --workload).", show_default=False
        ),
    ] = None,
    output_tokens: Annotated[
        float | None,
        typer.Option(
            min=1, help="Mean output tokens per request (with --input-tokens).", show_default=False
        ),
    ] = None,
    scenario: Annotated[
        str,
        typer.Option(
            help="offline (throughput only), server or interactive (the workload's "
            "MLPerf TTFT/TPOT limits; presets only)."
        ),
    ] = "offline",
    gpus: Annotated[
        int | None,
        typer.Option(min=1, help="GPUs to use (default: the whole rack).", show_default=False),
    ] = None,
    price_per_gpu_hour: Annotated[str | None, _money("All-in USD per GPU-hour.")] = None,
    capex_usd: Annotated[str | None, _money("Capital cost of the whole rack, USD.")] = None,
    amortisation_years: Annotated[str | None, _money("Years to amortise (default 4).")] = None,
    power_kw: Annotated[str | None, _money("Rack power, kW (default: the rack's maximum).")] = None,
    pue: Annotated[str | None, _money("Data-centre PUE (default 1.3).")] = None,
    usd_per_kwh: Annotated[str | None, _money("Electricity, USD per kWh (default 0.08).")] = None,
    racks: Annotated[Path | None, _file("racks")] = None,
    models: Annotated[Path | None, _file("models")] = None,
    workloads: Annotated[Path | None, _file("workloads")] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw tokens/s per GPU against batch size and TPOT to this image "
            f"({', '.join(PLOT_SUFFIXES)}).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Estimate output tokens/s, cost and energy per million tokens of a model on a rack (the
    help text people read is :data:`HELP`)."""
    if workload is not None and (input_tokens is not None or output_tokens is not None):
        fail("give either --workload or --input-tokens with --output-tokens, not both", 2)
    if workload is None and (input_tokens is None or output_tokens is None):
        fail(
            "give --workload PRESET, or both --input-tokens N and --output-tokens N "
            "(an offline request shape)",
            2,
        )
    if scenario not in SCENARIOS:
        fail(f"--scenario: choose {', '.join(SCENARIOS)} (got '{scenario}')", 2)
    if workload is None and scenario != "offline":
        fail(
            f"--scenario {scenario} needs the latency limits of a --workload preset; "
            "--input-tokens/--output-tokens give an offline request shape",
            2,
        )
    if plot is not None:
        _check_plot_path(plot)
    costs = _costs(
        price=price_per_gpu_hour, capex=capex_usd, years=amortisation_years,
        power=power_kw, pue=pue, kwh=usd_per_kwh,
    )  # fmt: skip
    rack_catalogue, model_catalogue, workload_catalogue = _catalogues(racks, models, workloads)

    def action() -> Estimate:
        if workload is not None:
            work = pick(workload_catalogue, workload, "workload")
        else:
            assert input_tokens is not None  # checked above
            assert output_tokens is not None
            work = shape(input_tokens, output_tokens)
        chosen = (
            pick(rack_catalogue, rack, "rack"),
            pick(model_catalogue, model, "model"),
            precision,
            work,
            scenario,
            gpus,
        )
        found = estimate_throughput(*chosen, costs)
        if plot is not None:
            _write_plot(plot, throughput_curve(*chosen), found)
        return found

    result: Estimate = run_action(action)
    for warning in result.warnings():
        err.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if as_json:
        data = result.to_json()
        if plot is not None:
            data["plot"] = str(plot)
        print_json(data)
        return
    _print(result)


def _check_plot_path(path: Path) -> None:
    """Usage errors of ``--plot`` before any work: a missing folder or a non-image suffix."""
    folder = path.parent
    if not folder.is_dir():
        fail(f"--plot: folder '{folder}' does not exist (got '{path}')", 2)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        fail(f"--plot: give a {', '.join(PLOT_SUFFIXES)} file (got '{path}')", 2)


def _write_plot(path: Path, points: list[CurvePoint], result: Estimate) -> None:
    try:
        plot_curve(points, result, path)
    except OSError as exc:
        fail(f"--plot: cannot write '{path}': {exc.strerror or exc}")
    err.print(f"wrote {escape(str(path))}")


# Typer's rich help keeps a docstring's line breaks; one string per paragraph reads better.
HELP = "\n\n".join(
    (
        "Estimate output tokens/s, cost and energy per million tokens of a model on a rack.",
        "A calibrated roofline: decode bounded by HBM bandwidth or compute, batch bounded by "
        "HBM capacity and the scenario's latency limit, efficiencies fitted on published "
        "MLPerf Inference results. Prints tokens/s (total and per GPU), the bound, the batch "
        "size, cost and energy per million output tokens, and every assumption used.",
        "[bold]MLPerf preset:[/] pactledger estimate --rack hgx-b200 --model llama-2-70b "
        "--precision fp4 --workload mlperf-llama2-70b --scenario server "
        "--price-per-gpu-hour 3.50",
        "[bold]Your own request shape (offline):[/] pactledger estimate --rack gb200-nvl72 "
        "--model llama-3.1-70b --precision fp8 --input-tokens 2000 --output-tokens 500 "
        "--capex-usd 3500000 --amortisation-years 4 --pue 1.2 --usd-per-kwh 0.10",
        "[bold]Your own catalogue entries:[/] add --racks my-racks.yaml, --models "
        "my-models.yaml or --workloads my-workloads.yaml: YAML with a top-level racks:, "
        "models: or workloads: list of entries with the shipped fields; an entry overlays the "
        "shipped one with the same id.",
        "[bold]Cost:[/] --price-per-gpu-hour (all-in rental), or --capex-usd of the whole rack "
        "amortised over --amortisation-years (default 4) plus power: --power-kw of the rack "
        "(default its published maximum) × --pue (default 1.3) × --usd-per-kwh (default "
        "0.08). Energy needs the rack's published power or --power-kw.",
        "[bold]Plot:[/] --plot curve.png also draws output tokens/s per GPU against the batch "
        "size and against TPOT (ms per output token), with the chosen operating point and the "
        "scenario's TPOT limit.",
        "[bold]Data:[/] racks, models and MLPerf workloads in ledger/estimator/data/; sources, "
        "formulas and known accuracy in docs/estimator.md. A provisional rack (vr-nvl144: "
        "roadmap figures) prints a warning.",
    )
)
estimate.__doc__ = HELP


def _print(result: Estimate) -> None:
    title = (
        f"{result.model} on {result.gpus} × {result.rack} GPUs, {result.precision}, "
        f"{result.workload} ({result.scenario})"
    )
    table = Table(title=escape(title), show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    cost = result.cost_per_mtok_usd
    energy = result.energy_per_mtok_kwh
    rows = (
        ("output_tokens_per_s", f"{result.output_tokens_per_s:,.1f}"),
        ("output_tokens_per_s_per_gpu", f"{result.output_tokens_per_s_per_gpu:,.1f}"),
        ("bound", result.bound),
        ("batch_size", f"{result.batch_size:,} per instance"),
        ("instances", f"{result.instances} × {result.gpus_per_instance} GPU(s)"),
        ("prefill_s", f"{result.prefill_s:.4f}"),
        ("ttft_limit_met", "—" if result.ttft_limit_met is None else str(result.ttft_limit_met)),
        ("cost_per_mtok_usd", "— (give a price or capex)" if cost is None else f"{cost} USD"),
        ("energy_per_mtok_kwh", "— (give --power-kw)" if energy is None else f"{energy:.4f} kWh"),
    )
    for name, value in rows:
        table.add_row(name, escape(value))
    out.print(table)
    assumptions = Table(title="Assumptions", show_header=False)
    assumptions.add_column("", style="bold")
    assumptions.add_column("")
    for key, datum in result.assumptions.items():
        assumptions.add_row(escape(key), escape(_text(datum)))
    out.print(assumptions)
    out.print("Method, sources and known accuracy: docs/estimator.md")


def _text(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
