"""The scenario's timeline apart from requests: price lists, the capacity fleet from contract
to retirement, SLA credit, benchmarks and an erasure, each with the time it happens.

Five tranches of GB200/GB300 NVL72 racks, one ending in each ``view_tranches`` status, with
the numbers chosen so that pro-rata retirement rounds down once (71.33 GPUs → 71) and a delay
is a fractional number of days (5.5). :func:`fixed_entries` gives them as ``Ledger.append``
takes them, sorted by time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.log.entry import format_time
from tests.domain import price_list

START = datetime(2026, 10, 5, tzinfo=UTC)
SPAN = timedelta(days=10)
PRICES_V2_FROM = START + timedelta(days=5, hours=12)
RATES_V2 = {  # model: (input, output, cached input) per million tokens, USD
    "claude-opus-4-1": ("12", "60", "1.20"),
    "claude-sonnet-4-5": ("2.70", "13.50", "0.27"),
    "claude-haiku-4-5": ("0.80", "4", "0.08"),
}

TRANCHE_STATUSES = ("contracted", "partially_delivered", "delayed", "delivered", "retired")


def stamp(moment: datetime) -> str:
    """The text ``occurred_at`` and payload times are stored in."""
    return format_time(moment)


@dataclass(frozen=True)
class Tranche:
    """One capacity tranche and its whole life, offsets from :data:`START`."""

    tranche_id: str
    tenant: str
    provider: str
    region: str
    rack_family: str
    racks: int
    gpus: int
    power_mw: str
    price_per_gpu_hour: str
    contracted: timedelta
    milestones: tuple[tuple[str, timedelta, int], ...]  # name, due, racks
    deliveries: tuple[tuple[timedelta, int, int, str], ...]  # at, racks, gpus, milestone
    delays: tuple[tuple[timedelta, str, timedelta, timedelta, str], ...] = ()
    retirements: tuple[tuple[timedelta, int, str], ...] = ()  # at, racks, reason
    status: str = "contracted"  # what view_tranches must say at the end

    @property
    def location(self) -> str:
        return f"{self.provider}/{self.region}"

    def serving(self, at: datetime) -> bool:
        """Whether requests at ``at`` may run on it: delivered, not yet wholly retired."""
        if not self.deliveries or at < START + self.deliveries[0][0] + timedelta(minutes=30):
            return False
        delivered = sum(racks for _, racks, _, _ in self.deliveries)
        retired = sum(racks for _, racks, _ in self.retirements)
        return retired < delivered or at < START + self.retirements[-1][0]


def _hours(days: float = 0, hours: float = 0) -> timedelta:
    return timedelta(days=days, hours=hours)


TRANCHES = (
    Tranche(
        "tr-acme-use1-01",
        "acme",
        "aws",
        "us-east-1",
        "gb200-nvl72",
        racks=8,
        gpus=576,
        power_mw="1.056",
        price_per_gpu_hour="3.40",
        contracted=_hours(hours=1),
        milestones=(("m1", _hours(1), 4), ("m2", _hours(3), 4)),
        deliveries=((_hours(0, 20), 4, 288, "m1"), (_hours(3, 2), 4, 288, "m2")),
        status="delivered",
    ),
    Tranche(
        "tr-globex-euw1-01",
        "globex",
        "gcp",
        "europe-west1",
        "gb300-nvl72",
        racks=6,
        gpus=432,
        power_mw="0.84",
        price_per_gpu_hour="4.10",
        contracted=_hours(hours=2),
        milestones=(("m1", _hours(1), 2), ("m2", _hours(4), 4)),
        deliveries=((_hours(1, 6), 2, 144, "m1"),),
        delays=(
            (
                _hours(3, 12),
                "m2",
                _hours(4),
                _hours(9, 12),
                "Liquid-cooling manifolds back-ordered",
            ),
        ),
        status="delayed",
    ),
    Tranche(
        "tr-acme-eus2-01",
        "acme",
        "azure",
        "eastus2",
        "gb200-nvl72",
        racks=4,
        gpus=286,  # two short of 4 × 72; retired two racks at a time: 143 GPUs each
        power_mw="0.528",
        price_per_gpu_hour="3.55",
        contracted=_hours(hours=3),
        milestones=(("m1", _hours(0, 12), 4),),
        deliveries=((_hours(0, 10), 4, 286, "m1"),),
        retirements=(
            (_hours(6), 2, "Power shelf failures on two racks"),
            (_hours(8, 12), 2, "End of the pilot"),
        ),
        status="retired",
    ),
    Tranche(
        "tr-usfed-govw-01",
        "us-federal",
        "aws",
        "us-gov-west-1",
        "gb200-nvl72",
        racks=4,
        gpus=288,
        power_mw="0.528",
        price_per_gpu_hour="4.60",
        contracted=_hours(hours=4),
        milestones=(("m1", _hours(20), 4),),
        deliveries=(),
        status="contracted",
    ),
    Tranche(
        "tr-initech-apne1-01",
        "initech",
        "aws",
        "ap-northeast-1",
        "gb300-nvl72",
        racks=3,
        gpus=214,
        power_mw="0.42",
        price_per_gpu_hour="4.25",
        contracted=_hours(hours=5),
        milestones=(("m1", _hours(2), 3),),
        deliveries=((_hours(1), 2, 143, "m1"),),
        retirements=((_hours(7), 1, "Failed rack taken out of service"),),  # 71 GPUs, floored
        status="partially_delivered",
    ),
)


def tranche_entries(tranche: Tranche) -> list[tuple[datetime, dict[str, Any]]]:
    stream, tenant, tid = f"tranche:{tranche.tranche_id}", tranche.tenant, tranche.tranche_id

    def entry(offset: timedelta, event_type: str, payload: dict[str, Any]) -> tuple[datetime, Any]:
        at = START + offset
        body = {"tranche_id": tid, **payload}
        return at, {
            "type": event_type,
            "stream": stream,
            "tenant": tenant,
            "occurred_at": stamp(at),
            "payload": body,
        }

    committed = Decimal(tranche.gpus) * Decimal(tranche.price_per_gpu_hour) * 24 * 365
    made = [
        entry(
            tranche.contracted,
            "TrancheContracted",
            {
                "provider": tranche.provider,
                "region": tranche.region,
                "rack_family": tranche.rack_family,
                "racks": tranche.racks,
                "gpus": tranche.gpus,
                "power_mw": tranche.power_mw,
                "committed_usd": format(committed, "f"),
                "price_per_gpu_hour": tranche.price_per_gpu_hour,
                "milestones": [
                    {"name": name, "due": stamp(START + due), "racks": racks}
                    for name, due, racks in tranche.milestones
                ],
                "sla": {
                    "reference_workload": "chat-2k-512",
                    "min_tokens_per_s_per_gpu": "1800",
                    "credit_rate": "0.10",
                },
            },
        )
    ]
    for at, racks, gpus, milestone in tranche.deliveries:
        made.append(
            entry(
                at,
                "TrancheDelivered",
                {
                    "racks_delivered": racks,
                    "gpus_delivered": gpus,
                    "delivered_at": stamp(START + at),
                    "milestone": milestone,
                },
            )
        )
    for at, milestone, original, new, reason in tranche.delays:
        made.append(
            entry(
                at,
                "TrancheDelayed",
                {
                    "milestone": milestone,
                    "original_due": stamp(START + original),
                    "new_due": stamp(START + new),
                    "reason": reason,
                },
            )
        )
    for at, racks, reason in tranche.retirements:
        made.append(
            entry(
                at,
                "TrancheRetired",
                {"racks_retired": racks, "retired_at": stamp(START + at), "reason": reason},
            )
        )
    return made


def fixed_entries(erased_request: str, erased_tenant: str) -> list[tuple[datetime, Any]]:
    """Everything that is not a request, with the time it happens, sorted by time; the erasure
    is recorded on ``erased_request``'s stream."""
    at_v2 = START + timedelta(days=4, hours=12)
    v1 = price_list(1, effective_from="2026-01-01T00:00:00Z")
    v2 = price_list(2, effective_from=stamp(PRICES_V2_FROM), rates=RATES_V2)
    fixed: list[tuple[datetime, Any]] = [
        (START, {**v1, "occurred_at": stamp(START)}),
        (at_v2, {**v2, "occurred_at": stamp(at_v2)}),
    ]
    for tranche in TRANCHES:
        fixed.extend(tranche_entries(tranche))
    credit_at = START + timedelta(days=7)
    fixed.append(
        (
            credit_at,
            {
                "type": "TrancheCreditAssessed",
                "stream": "tranche:tr-acme-use1-01",
                "tenant": "acme",
                "occurred_at": stamp(credit_at),
                "payload": {
                    "tranche_id": "tr-acme-use1-01",
                    "period_start": stamp(START + timedelta(days=3)),
                    "period_end": stamp(START + timedelta(days=6)),
                    "expected_tokens_per_s_per_gpu": "1850",
                    "observed_tokens_per_s_per_gpu": "1702",
                    "shortfall": "0.08",
                    "credit_usd": "9216.00",
                },
            },
        )
    )
    for n, (tranche, offset) in enumerate(((TRANCHES[0], 1.1), (TRANCHES[1], 2.0))):
        at = START + timedelta(days=offset)
        fixed.append(
            (
                at,
                {
                    "type": "BenchmarkRecorded",
                    "stream": f"benchmark:bm-{n + 1:03d}",
                    "tenant": tranche.tenant,
                    "occurred_at": stamp(at),
                    "payload": {
                        "benchmark_id": f"bm-{n + 1:03d}",
                        "tranche_id": tranche.tranche_id,
                        "rack_family": tranche.rack_family,
                        "model": "claude-sonnet-4-5",
                        "precision": "fp8",
                        "gpus": 72,
                        "workload": {
                            "name": "chat-2k-512",
                            "input_tokens": 2048,
                            "output_tokens": 512,
                            "scenario": "server",
                        },
                        "measured_tokens_per_s": str(129_600 + 3_600 * n),
                        "harness_digest": f"{n + 1:x}" * 64,
                        "measured_at": stamp(at),
                    },
                },
            )
        )
    erased_at = START + SPAN - timedelta(hours=2)
    fixed.append(
        (
            erased_at,
            {
                "type": "SubjectErased",
                "stream": f"request:{erased_request}",  # about a request by its stream only
                "tenant": erased_tenant,
                "occurred_at": stamp(erased_at),
                "payload": {
                    "subject_ref": "subj-7f3a91",
                    "key_id": "dek-2026-10",
                    "erased_at": stamp(erased_at),
                    "request_ref": erased_request,
                    "reason": "GDPR Art. 17 erasure request",
                },
            },
        )
    )
    fixed.sort(key=lambda item: item[0])
    return fixed
