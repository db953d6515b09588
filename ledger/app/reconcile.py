"""Reconciliation of capacity tranches: observed throughput against the estimator (issue 6).

For each tranche and period ``[start, end)`` two independent comparisons are made, and kept
apart on purpose:

* **Usage** (``view_tranches`` + ``view_rack_usage``): output tokens served per GPU-hour *in
  service* (delivered less retired GPUs, idle hours included), the observed tokens/s/GPU that
  gives, ``utilisation`` = observed ÷ the estimator's capacity for the SLA's reference workload
  (its preset names the model; the precision is that of the tranche's newest benchmark, else
  fp8), and the effective $/Mtok (period charge ÷ output Mtok) against the estimate's $/Mtok at
  the tranche's price. Usage says how much of the capacity was *used*; it never decides
  whether the capacity was *delivered*: low utilisation is reported as ``low_utilisation``
  (below ``low_utilisation`` of the estimate), never as under-delivery.
* **Benchmarks** (``BenchmarkRecorded`` of the tranche measured in the period): measured
  tokens/s per GPU = ``measured_tokens_per_s / gpus``, against the estimate for the same rack,
  model, precision, GPU count and workload shape (the benchmark's input/output tokens, with the
  latency limits of the preset it names or, failing that, of the preset for its model). A
  benchmark above ``estimate × (1 + band)`` is ``over_reporting``: it claims more than the
  hardware can do (default band 0.40, the estimator's accuracy target of no row worse than
  40 %). A benchmark without an estimate (unknown rack or model, a precision the rack does not
  publish) is reported with its reason and counted as credible.

Verdict (from benchmarks only): ``no_contract`` (no ``TrancheContracted`` seen), ``no_benchmark``,
``over_reporting`` (every benchmark of the period is over-reporting: the SLA is unverified),
``below_sla`` (the *best* credible benchmark measures below the SLA's
``min_tokens_per_s_per_gpu``), else ``meets_sla``.

A ``below_sla`` tranche gets a proposed ``TrancheCreditAssessed``: ``shortfall`` = 1 −
best ÷ min; ``credit_usd`` = the period's charge (GPU-hours in service × price per GPU-hour)
× the SLA's ``credit_rate`` — a flat fraction, as ``SlaTerms`` defines it, not scaled by the
shortfall; ``evidence`` = the seq ranges of the credible benchmark entries and of the
``TrancheContracted`` entry whose SLA terms set the minimum and the credit rate (usage entries
are not evidence: they measure utilisation, never delivery);
``checkpoint_size`` = the tree size of the newest signed checkpoint. The period of a proposal
starts at ``start`` or, without one, at the tranche's first delivery (else its contract).
:func:`credit_entry` turns a proposal into an entry with the idempotency key
``credit:<tranche>:<start>:<end>``; a credit already recorded for the same tranche and period
is reported (``recorded_seq``) and not proposed again.

Guarantees: money is ``Decimal`` (decimal text in the result), times are UTC; no I/O besides
the views and the store handed in; results are JSON-able dicts in ``tranche_id`` order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.app.audit_queries import utc_instant
from ledger.app.published import read_event
from ledger.app.views import ViewRows, rack_usage, tranches
from ledger.errors import ValidationError
from ledger.estimator import (
    EstimateError,
    ModelProfile,
    Rack,
    Workload,
    cost_per_mtok,
    estimate,
    load_models,
    load_racks,
    load_workloads,
    pick,
    shape,
)
from ledger.events import (
    BenchmarkRecorded,
    Catalogue,
    Event,
    TrancheContracted,
    TrancheCreditAssessed,
    default_catalogue,
)
from ledger.log.entry import SealedEntry, format_time
from ledger.log.ports import LogStore
from ledger.projections.chargeback import decimal_text

DEFAULT_BAND = Decimal("0.40")
LOW_UTILISATION = Decimal("0.5")
_PAGE = 500
_RATE = Decimal("0.001")
_CENT = Decimal("0.01")
_RATIO = Decimal("0.0001")


class Catalogues:
    """The estimator's racks, models and workloads (the shipped ones unless given)."""

    def __init__(
        self,
        racks: Mapping[str, Rack] | None = None,
        models: Mapping[str, ModelProfile] | None = None,
        workloads: Mapping[str, Workload] | None = None,
    ) -> None:
        self.racks = racks if racks is not None else load_racks()
        self.models = models if models is not None else load_models()
        self.workloads = workloads if workloads is not None else load_workloads()

    def capacity(
        self,
        *,
        rack: str,
        model: str,
        precision: str,
        workload: Workload,
        scenario: str,
        gpus: int | None = None,
    ) -> tuple[Decimal | None, str | None]:
        """Estimated output tokens/s per GPU, or ``None`` and the reason there is none."""
        try:
            found = estimate(
                pick(self.racks, rack, "rack"),
                pick(self.models, model, "model"),
                precision,
                workload,
                scenario,
                gpus,
            )
        except EstimateError as exc:
            return None, str(exc)
        return Decimal(repr(found.output_tokens_per_s_per_gpu)).quantize(_RATE), None

    def preset_for(self, name: str | None, model: str | None) -> Workload | None:
        if name is not None and name in self.workloads:
            return self.workloads[name]
        for workload in self.workloads.values():
            if model is not None and workload.model == model:
                return workload
        return None


def reconcile(
    views: ViewRows,
    store: LogStore,
    *,
    end: datetime,
    start: datetime | None = None,
    tranche_id: str | None = None,
    band: Decimal = DEFAULT_BAND,
    catalogue: Catalogue | None = None,
    catalogues: Catalogues | None = None,
) -> list[dict[str, Any]]:
    """One report per tranche (only ``tranche_id`` if given) for the period ``[start, end)``."""
    end = _utc(end, "to")
    start = None if start is None else _utc(start, "from")
    if start is not None and start >= end:
        raise ValidationError("must be after 'from'", field="to")
    if band < 0:
        raise ValidationError("must be at least 0", field="band")
    catalogue = catalogue or default_catalogue()
    catalogues = catalogues or Catalogues()
    at_end = {t["tranche_id"]: t for t in tranches(views, as_of=end)}
    if tranche_id is not None:
        if tranche_id not in at_end:
            raise ValidationError(
                f"no tranche '{tranche_id}' in the capacity view", field="tranche"
            )
        at_end = {tranche_id: at_end[tranche_id]}
    at_start = (
        {t["tranche_id"]: t for t in tranches(views, as_of=start)} if start is not None else {}
    )
    contracts: dict[str, tuple[int, TrancheContracted]] = {}
    for entry, event in _events(store, catalogue, "TrancheContracted"):
        assert isinstance(event, TrancheContracted)
        contracts[event.tranche_id] = entry.seq, event  # the latest by seq wins, as in the view
    benchmarks: dict[str, list[tuple[SealedEntry, BenchmarkRecorded]]] = {}
    for entry, event in _events(store, catalogue, "BenchmarkRecorded"):
        assert isinstance(event, BenchmarkRecorded)
        if (start is None or event.measured_at >= start) and event.measured_at < end:
            benchmarks.setdefault(event.tranche_id, []).append((entry, event))
    credits: dict[tuple[str, str, str], int] = {}
    for entry, event in _events(store, catalogue, "TrancheCreditAssessed"):
        assert isinstance(event, TrancheCreditAssessed)
        key = (event.tranche_id, format_time(event.period_start), format_time(event.period_end))
        credits[key] = entry.seq
    latest = store.latest_checkpoint()
    usage = _usage(views, list(at_end), start, end)
    reports = []
    for tid, row in sorted(at_end.items()):
        report = _Tranche(
            row=row,
            before=at_start.get(tid),
            contract=contracts.get(tid),
            benchmarks=benchmarks.get(tid, []),
            output_tokens=usage.get(tid, (0, 0))[0],
            usage_hours=usage.get(tid, (0, 0))[1],
            catalogues=catalogues,
            band=band,
        ).report(start, end)
        proposal = report["credit"]
        if proposal is not None:
            proposal["checkpoint_size"] = None if latest is None else latest.tree_size
            recorded = credits.get(
                (tid, proposal["period_start"], proposal["period_end"])  # same text form
            )
            report["recorded_seq"] = recorded
        reports.append(report)
    return reports


def credit_entry(report: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TrancheCreditAssessed`` entry a ``below_sla`` report proposes, keyed so that it
    is appended once."""
    proposal = report["credit"]
    if proposal is None:
        raise ValueError(f"tranche {report['tranche_id']} has no credit proposal")
    return {
        "type": TrancheCreditAssessed.TYPE,
        "stream": f"tranche:{report['tranche_id']}",
        "tenant": report["tenant"],
        "idempotency_key": (
            f"credit:{report['tranche_id']}:{proposal['period_start']}:{proposal['period_end']}"
        ),
        "payload": {"tranche_id": report["tranche_id"], **proposal},
    }


class _Tranche:
    def __init__(
        self,
        *,
        row: Mapping[str, Any],
        before: Mapping[str, Any] | None,
        contract: tuple[int, TrancheContracted] | None,
        benchmarks: list[tuple[SealedEntry, BenchmarkRecorded]],
        output_tokens: int,
        usage_hours: int,
        catalogues: Catalogues,
        band: Decimal,
    ) -> None:
        self.row, self.before = row, before
        self.contract_seq: int | None = None if contract is None else contract[0]
        self.contract: TrancheContracted | None = None if contract is None else contract[1]
        self.benchmarks, self.catalogues, self.band = benchmarks, catalogues, band
        self.output_tokens, self.usage_hours = output_tokens, usage_hours

    def report(self, start: datetime | None, end: datetime) -> dict[str, Any]:
        gpu_hours = _difference(self.row, self.before, "gpu_hours")
        charge = _difference(self.row, self.before, "accrued_usd")
        rows = [self._benchmark(entry, event) for entry, event in self.benchmarks]
        usage = self._usage(gpu_hours, charge)
        verdict, credit = self._verdict(rows, charge, start, end)
        return {
            "tranche_id": self.row["tranche_id"],
            "tenant": self.row["tenant"],
            "rack_family": self.row["rack_family"],
            "period_start": None if start is None else format_time(start),
            "period_end": format_time(end),
            "contract_seq": self.contract_seq,
            "usage": usage,
            "benchmarks": rows,
            "verdict": verdict,
            "credit": credit,
            "recorded_seq": None,
        }

    # --- usage --------------------------------------------------------------------------

    def _usage(self, gpu_hours: Decimal, charge: Decimal | None) -> dict[str, Any]:
        estimated, note = self._usage_capacity()
        observed = (
            (Decimal(self.output_tokens) / gpu_hours / 3600).quantize(_RATE) if gpu_hours else None
        )
        utilisation = (
            (observed / estimated).quantize(_RATIO) if observed is not None and estimated else None
        )
        if not self.output_tokens:
            status = "no_usage"
        elif utilisation is None:
            status = "no_estimate"
        elif utilisation < LOW_UTILISATION:
            status = "low_utilisation"
        elif utilisation > 1 + self.band:
            status = "above_estimate"
        else:
            status = "in_band"
        price = self.row["price_per_gpu_hour"]
        return {
            "gpu_hours": decimal_text(gpu_hours),
            "charge_usd": None if charge is None else decimal_text(charge.quantize(_CENT)),
            "usage_hours": self.usage_hours,
            "output_tokens": self.output_tokens,
            "tokens_per_gpu_hour": (
                decimal_text((Decimal(self.output_tokens) / gpu_hours).quantize(_RATE))
                if gpu_hours
                else None
            ),
            "observed_tokens_per_s_per_gpu": _text(observed),
            "estimated_tokens_per_s_per_gpu": _text(estimated),
            "estimate_note": note,
            "utilisation": _text(utilisation),
            "effective_usd_per_mtok": (
                decimal_text((charge * 1_000_000 / self.output_tokens).quantize(_RATIO))
                if charge is not None and self.output_tokens
                else None
            ),
            "estimated_usd_per_mtok": (
                decimal_text(cost_per_mtok(Decimal(price), float(estimated)))
                if price is not None and estimated
                else None
            ),
            "status": status,
        }

    def _usage_capacity(self) -> tuple[Decimal | None, str | None]:
        if self.contract is None:
            return None, "no TrancheContracted seen"
        name = self.contract.sla.reference_workload
        preset = self.catalogues.workloads.get(name)
        if preset is None or preset.model is None:
            return None, f"reference workload '{name}' is not an estimator preset with a model"
        precision = self.benchmarks[-1][1].precision if self.benchmarks else "fp8"
        scenario = "server" if preset.server is not None else "offline"
        return self.catalogues.capacity(
            rack=self.contract.rack_family,
            model=preset.model,
            precision=precision,
            workload=preset,
            scenario=scenario,
        )

    # --- benchmarks ---------------------------------------------------------------------

    def _benchmark(self, entry: SealedEntry, event: BenchmarkRecorded) -> dict[str, Any]:
        measured = (event.measured_tokens_per_s / event.gpus).quantize(_RATE)
        work = event.workload
        preset = self.catalogues.preset_for(work.name, event.model)
        limits = (
            {} if preset is None else {"server": preset.server, "interactive": preset.interactive}
        )
        workload = shape(  # tokens are positive by the catalogue, so this cannot fail
            work.input_tokens,
            work.output_tokens,
            **{k: v for k, v in limits.items() if v is not None},
        )
        estimated, note = self.catalogues.capacity(
            rack=event.rack_family,
            model=event.model,
            precision=event.precision,
            workload=workload,
            scenario=work.scenario,
            gpus=event.gpus,
        )
        ratio = (measured / estimated).quantize(_RATIO) if estimated else None
        if ratio is None:
            status = "no_estimate"
        elif ratio > 1 + self.band:
            status = "over_reporting"
        elif ratio < 1 - self.band:
            status = "below_estimate"
        else:
            status = "in_band"
        return {
            "seq": entry.seq,
            "benchmark_id": event.benchmark_id,
            "model": event.model,
            "precision": event.precision,
            "workload": work.name,
            "scenario": work.scenario,
            "gpus": event.gpus,
            "measured_at": format_time(event.measured_at),
            "measured_tokens_per_s_per_gpu": decimal_text(measured),
            "estimated_tokens_per_s_per_gpu": _text(estimated),
            "estimate_note": note,
            "ratio": _text(ratio),
            "band": decimal_text(self.band),
            "status": status,
        }

    def _verdict(
        self,
        rows: list[dict[str, Any]],
        charge: Decimal | None,
        start: datetime | None,
        end: datetime,
    ) -> tuple[str, dict[str, Any] | None]:
        if self.contract is None or self.contract_seq is None:  # both set, or neither
            return "no_contract", None
        contract_seq = self.contract_seq
        if not rows:
            return "no_benchmark", None
        credible = [r for r in rows if r["status"] != "over_reporting"]
        if not credible:
            return "over_reporting", None
        best = max(Decimal(r["measured_tokens_per_s_per_gpu"]) for r in credible)
        minimum = self.contract.sla.min_tokens_per_s_per_gpu
        if best >= minimum:
            return "meets_sla", None
        shortfall = (1 - best / minimum).quantize(_RATIO)
        credit = ((charge or Decimal(0)) * self.contract.sla.credit_rate).quantize(_CENT)
        period_start = start or _first_service(self.row, rows)
        return "below_sla", {
            "period_start": format_time(period_start),
            "period_end": format_time(end),
            "expected_tokens_per_s_per_gpu": decimal_text(minimum),
            "observed_tokens_per_s_per_gpu": decimal_text(best),
            "shortfall": decimal_text(shortfall),
            "credit_usd": decimal_text(credit),
            "evidence": _ranges(sorted([contract_seq, *(r["seq"] for r in credible)])),
            "checkpoint_size": None,
        }


def _events(
    store: LogStore, catalogue: Catalogue, event_type: str
) -> Iterator[tuple[SealedEntry, Event]]:
    after = -1
    while True:
        chunk = store.find_entries(event_type=event_type, after=after, limit=_PAGE)
        for entry in chunk:
            yield entry, read_event(catalogue, entry)
        if len(chunk) < _PAGE:
            return
        after = chunk[-1].seq


def _usage(
    views: ViewRows, ids: list[str], start: datetime | None, end: datetime
) -> dict[str, tuple[int, int]]:
    """Output tokens and hours with usage per tranche, over the hours that begin in the period."""
    totals: dict[str, tuple[int, int]] = {}
    if not ids:
        return totals
    for row in rack_usage(views, tranche_ids=ids):
        hour = _parse(row["hour"])
        if (start is None or hour >= start) and hour < end:
            tokens, hours = totals.get(row["tranche_id"], (0, 0))
            totals[row["tranche_id"]] = (tokens + row["output_tokens"], hours + 1)
    return totals


def _difference(row: Mapping[str, Any], before: Mapping[str, Any] | None, column: str) -> Decimal:
    if row[column] is None:
        return Decimal(0)
    earlier = before[column] if before is not None and before[column] is not None else "0"
    return max(Decimal(row[column]) - Decimal(earlier), Decimal(0))


def _first_service(row: Mapping[str, Any], benchmarks: list[dict[str, Any]]) -> datetime:
    """The tranche's first delivery, else its contract, else its first benchmark."""
    for column in ("first_delivered_at", "contracted_at"):
        if row.get(column):
            return _parse(row[column])
    return min(_parse(b["measured_at"]) for b in benchmarks)


def _ranges(seqs: list[int]) -> list[dict[str, int]]:
    ranges: list[dict[str, int]] = []
    for seq in seqs:
        if ranges and ranges[-1]["last"] + 1 == seq:
            ranges[-1]["last"] = seq
        else:
            ranges.append({"first": seq, "last": seq})
    return ranges


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _utc(moment: datetime, field: str) -> datetime:
    return utc_instant(moment, field) or moment


def _text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)
