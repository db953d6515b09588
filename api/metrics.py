"""Prometheus metrics of one API process, in a registry of its own (no global state).

* ``pactledger_append_seconds{path}`` — time to make a batch durable (``single`` = a group
  commit of coalesced single-event POSTs, ``batch`` = one ``events:batch`` POST);
* ``pactledger_append_batch_entries{path}`` — entries per transaction;
* ``pactledger_entries_appended_total`` — entries this process appended (duplicates excluded);
* ``pactledger_ledger_entries`` and ``pactledger_checkpoint_age_seconds`` — read at scrape time;
* ``pactledger_otlp_spans_total{outcome}`` — spans recorded, ignored (not GenAI) or rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ledger.app.service import Ledger

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class Metrics:
    def __init__(self, ledger: Ledger, clock: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry()
        self._ledger, self._clock = ledger, clock
        self.append_seconds = Histogram(
            "pactledger_append_seconds",
            "Seconds to make one append transaction durable",
            ["path"],
            registry=self.registry,
        )
        self.batch_entries = Histogram(
            "pactledger_append_batch_entries",
            "Entries per append transaction",
            ["path"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.appended = Counter(
            "pactledger_entries_appended",
            "Entries appended by this process (idempotent duplicates excluded)",
            registry=self.registry,
        )
        self.otlp_spans = Counter(
            "pactledger_otlp_spans",
            "OTLP spans received, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.ledger_entries = Gauge(
            "pactledger_ledger_entries", "Entries in the ledger", registry=self.registry
        )
        self.checkpoint_age = Gauge(
            "pactledger_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint (-1: none yet)",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The exposition text, with the ledger gauges read now."""
        self.ledger_entries.set(self._ledger.head().size)
        latest = self._ledger.latest_checkpoint()
        age = (self._clock() - latest.created_at).total_seconds() if latest else -1.0
        self.checkpoint_age.set(age)
        return generate_latest(self.registry)
