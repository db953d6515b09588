"""``pactledger estimate`` (docs/estimator.md) through Typer's CliRunner; no database.

Proves that the command prints what :func:`ledger.estimator.estimate` computes (a preset in
each scenario, a free request shape, rental price and capex), as a table and as ``--json``
with the keys issue 6 asks for and money as a string; that ``--racks/--models/--workloads``
files add to (and overlay) the shipped catalogues; that a provisional rack warns; that an
unknown rack, model, precision or workload and a bad user file fail with exit 1 naming the
culprit (and the known ids), and usage errors with exit 2 saying what to give; and that
``--help`` teaches the modes and where the data comes from.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.estimator import (
    CostInputs,
    Estimate,
    estimate,
    load_models,
    load_racks,
    load_workloads,
    shape,
)
from tests.cli.test_cli import run, run_json

REQUIRED = {
    "output_tokens_per_s",
    "output_tokens_per_s_per_gpu",
    "bound",
    "batch_size",
    "cost_per_mtok_usd",
    "energy_per_mtok_kwh",
    "assumptions",
}
PRESET = ("--rack", "hgx-b200", "--model", "llama-2-70b", "--precision", "fp4")


def expected(
    rack: str,
    model: str,
    precision: str,
    workload: str | tuple[float, float],
    scenario: str = "offline",
    costs: CostInputs | None = None,
    gpus: int | None = None,
) -> Estimate:
    work = shape(*workload) if isinstance(workload, tuple) else load_workloads()[workload]
    return estimate(
        load_racks()[rack],
        load_models()[model],
        precision,
        work,
        scenario,
        gpus,
        costs or CostInputs(),
    )


def assert_matches(data: dict[str, Any], want: Estimate) -> None:
    assert set(data) >= REQUIRED
    assert data["output_tokens_per_s"] == pytest.approx(want.output_tokens_per_s, rel=1e-12)
    assert data["output_tokens_per_s_per_gpu"] == pytest.approx(
        want.output_tokens_per_s_per_gpu, rel=1e-12
    )
    assert data["bound"] == want.bound in ("memory", "compute")
    assert data["batch_size"] == want.batch_size
    assert data["gpus"] == want.gpus
    assert data["gpus_per_instance"] == want.gpus_per_instance
    want_cost = None if want.cost_per_mtok_usd is None else str(want.cost_per_mtok_usd)
    assert data["cost_per_mtok_usd"] == want_cost
    if want.energy_per_mtok_kwh is None:
        assert data["energy_per_mtok_kwh"] is None
    else:
        assert data["energy_per_mtok_kwh"] == pytest.approx(want.energy_per_mtok_kwh, rel=1e-12)
    assert data["assumptions"] == json.loads(json.dumps(want.assumptions))


@pytest.mark.parametrize("scenario", ["offline", "server", "interactive"])
def test_a_preset_prints_what_the_estimator_computes(scenario: str) -> None:
    data = run_json(
        "estimate", *PRESET, "--workload", "mlperf-llama2-70b", "--scenario", scenario,
        "--price-per-gpu-hour", "3.50",
    )  # fmt: skip
    want = expected(
        "hgx-b200", "llama-2-70b", "fp4", "mlperf-llama2-70b", scenario,
        CostInputs(usd_per_gpu_hour=Decimal("3.50")),
    )  # fmt: skip
    assert_matches(data, want)
    assert isinstance(data["cost_per_mtok_usd"], str)
    assert Decimal(data["cost_per_mtok_usd"]) > 0
    assert data["scenario"] == scenario
    assert data["warnings"] == []
    assert data["assumptions"]["usd_per_gpu_hour"] == 3.5


def test_a_request_shape_with_capex_and_gpus() -> None:
    data = run_json(
        "estimate", "--rack", "gb200-nvl72", "--model", "llama-3.1-70b", "--precision", "fp8",
        "--input-tokens", "2000", "--output-tokens", "500", "--gpus", "16",
        "--capex-usd", "3500000", "--amortisation-years", "5", "--pue", "1.2",
        "--usd-per-kwh", "0.10", "--power-kw", "130",
    )  # fmt: skip
    costs = CostInputs(
        capex_usd=Decimal(3_500_000), amortisation_years=Decimal(5), pue=Decimal("1.2"),
        usd_per_kwh=Decimal("0.10"), power_kw=Decimal(130),
    )  # fmt: skip
    want = expected("gb200-nvl72", "llama-3.1-70b", "fp8", (2000, 500), costs=costs, gpus=16)
    assert_matches(data, want)
    assert data["gpus"] == 16
    assert data["workload"] == want.workload
    assert data["assumptions"]["input_tokens"] == 2000


def test_without_cost_flags_energy_comes_from_the_rack_power_and_cost_is_absent() -> None:
    data = run_json("estimate", *PRESET, "--workload", "mlperf-llama2-70b")
    assert data["cost_per_mtok_usd"] is None
    assert data["energy_per_mtok_kwh"] == pytest.approx(
        expected("hgx-b200", "llama-2-70b", "fp4", "mlperf-llama2-70b").energy_per_mtok_kwh
    )


def test_the_table_shows_the_figures_and_the_assumptions() -> None:
    result = run(
        "estimate", *PRESET, "--workload", "mlperf-llama2-70b", "--scenario", "server",
        "--price-per-gpu-hour", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    want = expected(
        "hgx-b200", "llama-2-70b", "fp4", "mlperf-llama2-70b", "server",
        CostInputs(usd_per_gpu_hour=Decimal(2)),
    )  # fmt: skip
    text = result.stdout
    for name in (*REQUIRED - {"assumptions"}, "Assumptions", "efficiencies", "software_factor"):
        assert name in text
    assert f"{want.output_tokens_per_s_per_gpu:,.1f}" in text
    assert f"{want.cost_per_mtok_usd} USD" in text
    assert want.bound in text
    assert "docs/estimator.md" in text
    assert "warning" not in result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_a_provisional_rack_warns(as_json: bool) -> None:
    args = ["estimate", "--rack", "vr-nvl144", "--model", "llama-2-70b", "--precision", "fp4"]
    args += ["--workload", "mlperf-llama2-70b"] + (["--json"] if as_json else [])
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr
    assert "provisional" in result.stderr
    if as_json:
        data = json.loads(result.stdout)
        assert data["provisional"] is True
        assert any("provisional" in w for w in data["warnings"])
        assert "rack" in data["assumptions"]


@pytest.mark.parametrize(
    ("flag", "value", "known"),
    [
        ("--rack", "hgx-a100", "hgx-b200"),
        ("--model", "llama-9-1t", "llama-2-70b"),
        ("--workload", "mlperf-gpt5", "mlperf-llama2-70b"),
        ("--precision", "int3", "fp8"),
    ],
)
def test_an_unknown_name_fails_naming_it_and_the_known_ones(
    flag: str, value: str, known: str
) -> None:
    args = {
        "--rack": "hgx-b200",
        "--model": "llama-2-70b",
        "--precision": "fp4",
        "--workload": "mlperf-llama2-70b",
    }
    args[flag] = value
    result = run("estimate", *[part for pair in args.items() for part in pair])
    assert result.exit_code == 1, result.output
    assert value in result.stderr
    assert known in result.stderr
    assert result.stdout == ""


def test_a_precision_the_rack_does_not_publish_fails() -> None:
    result = run(
        "estimate", "--rack", "hgx-h100", "--model", "llama-2-70b", "--precision", "fp4",
        "--workload", "mlperf-llama2-70b",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "fp4" in result.stderr
    assert "bf16, fp8" in result.stderr


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ((), "give --workload"),
        (("--input-tokens", "100"), "--output-tokens"),
        (("--workload", "mlperf-llama2-70b", "--input-tokens", "100"), "not both"),
        (("--input-tokens", "100", "--output-tokens", "10", "--scenario", "server"), "offline"),
        (("--workload", "mlperf-llama2-70b", "--scenario", "batch"), "--scenario"),
        (("--workload", "mlperf-llama2-70b", "--price-per-gpu-hour", "two"), "give a number"),
        (("--workload", "mlperf-llama2-70b", "--pue", "0"), "--pue"),
        (
            ("--workload", "mlperf-llama2-70b", "--price-per-gpu-hour", "2", "--capex-usd", "9"),
            "not both",
        ),
        (("--workload", "mlperf-llama2-70b", "--gpus", "0"), "--gpus"),
    ],
)
def test_usage_errors_exit_2_saying_what_to_give(extra: tuple[str, ...], says: str) -> None:
    result = run("estimate", *PRESET, *extra)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert result.stdout == ""


def write_yaml(path: Path, key: str, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({key: entries}), "utf-8")
    return path


def test_user_files_add_entries_to_the_shipped_catalogues(tmp_path: Path) -> None:
    rack = load_racks()["hgx-b200"].model_copy(update={"id": "my-b200", "hbm_gb_per_gpu": 141.0})
    model = load_models()["llama-3.1-70b"].model_copy(
        update={"id": "house-70b", "assumptions": "assumed: a Llama-3.1-70B shape"}
    )
    work = load_workloads()["mlperf-llama2-70b"].model_copy(update={"id": "chat", "model": None})
    racks = write_yaml(tmp_path / "racks.yaml", "racks", [rack.model_dump(exclude_none=True)])
    models = write_yaml(tmp_path / "models.yaml", "models", [model.model_dump(exclude_none=True)])
    works = write_yaml(tmp_path / "w.yaml", "workloads", [work.model_dump(exclude_none=True)])

    data = run_json(
        "estimate", "--rack", "my-b200", "--model", "house-70b", "--precision", "fp8",
        "--workload", "chat", "--scenario", "server", "--racks", str(racks),
        "--models", str(models), "--workloads", str(works),
    )  # fmt: skip
    assert_matches(data, estimate(rack, model, "fp8", work, "server", costs=CostInputs()))
    assert data["assumptions"]["model"] == "assumed: a Llama-3.1-70B shape"
    # The shipped entries are still there beside the user's.
    shipped = run_json(
        "estimate", *PRESET, "--workload", "mlperf-llama2-70b", "--racks", str(racks)
    )
    assert_matches(shipped, expected("hgx-b200", "llama-2-70b", "fp4", "mlperf-llama2-70b"))


def test_a_user_entry_overlays_the_shipped_one_with_its_id(tmp_path: Path) -> None:
    shipped_rack = load_racks()["hgx-b200"]
    slower = {k: v / 2 for k, v in shipped_rack.dense_tflops.items()}
    rack = shipped_rack.model_copy(update={"dense_tflops": slower, "hbm_tbps_per_gpu": 4.0})
    racks = write_yaml(tmp_path / "racks.yaml", "racks", [rack.model_dump(exclude_none=True)])
    data = run_json("estimate", *PRESET, "--workload", "mlperf-llama2-70b", "--racks", str(racks))
    want = estimate(
        rack, load_models()["llama-2-70b"], "fp4", load_workloads()["mlperf-llama2-70b"],
        costs=CostInputs(),
    )  # fmt: skip
    assert_matches(data, want)
    shipped = expected("hgx-b200", "llama-2-70b", "fp4", "mlperf-llama2-70b")
    assert data["output_tokens_per_s"] != shipped.output_tokens_per_s


@pytest.mark.parametrize(
    ("flag", "key", "entry", "field"),
    [
        ("--racks", "racks", {"id": "bad-rack", "gpus": 0}, "gpus"),
        ("--models", "models", {"id": "bad-model", "layers": -1}, "layers"),
        ("--workloads", "workloads", {"id": "bad-work", "input_tokens": 0}, "input_tokens"),
    ],
)
def test_a_bad_user_file_names_file_entry_and_field(
    tmp_path: Path, flag: str, key: str, entry: dict[str, Any], field: str
) -> None:
    shipped = {
        "racks": load_racks()["hgx-b200"],
        "models": load_models()["llama-2-70b"],
        "workloads": load_workloads()["mlperf-llama2-70b"],
    }[key]
    good = shipped.model_dump(exclude_none=True)
    path = write_yaml(tmp_path / f"{key}.yaml", key, [good, {**good, **entry}])
    result = run("estimate", *PRESET, "--workload", "mlperf-llama2-70b", flag, str(path))
    assert result.exit_code == 1, result.output
    assert str(path) in result.stderr.replace("\n", "")
    assert f"entry '{entry['id']}'" in result.stderr
    assert f"field '{field}'" in result.stderr
    assert result.stdout == ""


def test_a_missing_or_malformed_user_file_fails_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run("estimate", *PRESET, "--workload", "mlperf-llama2-70b", "--racks", str(missing))
    assert result.exit_code == 1, result.output
    assert "nope.yaml" in result.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("models: []\n", "utf-8")
    result = run("estimate", *PRESET, "--workload", "mlperf-llama2-70b", "--racks", str(wrong))
    assert result.exit_code == 1, result.output
    assert "racks:" in result.stderr


def test_help_teaches_the_modes_and_the_data() -> None:
    result = run("estimate", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for needle in (
        "--workload mlperf-llama2-70b",
        "--input-tokens 2000 --output-tokens 500",
        "--capex-usd",
        "--price-per-gpu-hour",
        "--racks",
        "docs/estimator.md",
        "vr-nvl144",
    ):
        assert needle in text, needle
    assert "estimate" in run("--help").stdout
