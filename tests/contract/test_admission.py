"""Admission over every store: what ``Ledger.append`` refuses (naming the field and the batch
position, writing nothing) and how it prices ``InferenceRouted`` from the published price lists
(exact decimals, the list in force at ``occurred_at``, region lines before ``*`` lines)."""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ledger.app import governance
from ledger.app.governance import publish_policies
from ledger.app.service import Ledger
from ledger.errors import IdempotencyConflictError, ValidationError
from ledger.events import PolicyPublished
from ledger.log.ports import LogStore
from ledger.policy import Facts, digest_of, load_policy_set
from tests.conftest import TickingClock
from tests.domain import delivered, price_list, routed

Entry = dict[str, Any]
SHIPPED = load_policy_set()


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def ledger(store: LogStore, clock: TickingClock) -> Ledger:
    return Ledger(store=store, clock=clock)


@pytest.fixture
def governed(ledger: Ledger) -> Ledger:
    """A ledger holding price list v1 and every shipped policy document (seqs 0 to 5)."""
    ledger.append([price_list(), *(policy_entry(s.ref.policy_id) for s in SHIPPED.sources)])
    return ledger


# --- builders -------------------------------------------------------------------------------


def policy_entry(shipped_id: str, /, **overrides: Any) -> Entry:
    """A PolicyPublished entry for a shipped document; ``text`` overrides also fix the digest."""
    (source,) = [s for s in SHIPPED.sources if s.ref.policy_id == shipped_id]
    payload = PolicyPublished(
        policy_id=source.ref.policy_id,
        version=source.ref.version,
        kind=source.document.kind,
        text=source.text,
        digest=source.digest,
    ).payload()
    payload.update(overrides)
    if "text" in overrides:
        payload["digest"] = digest_of(overrides["text"])
    return {
        "type": "PolicyPublished",
        "stream": f"policy:{payload['policy_id']}",
        "tenant": "governance",
        "payload": payload,
    }


def decision_entry(citations: list[dict[str, Any]]) -> Entry:
    return {
        "type": "ResidencyDecided",
        "stream": "request:req-d1",
        "tenant": "acme",
        "payload": {
            "decision_id": "dec-1",
            "request_id": "req-d1",
            "data_classes": ["eu_personal"],
            "candidate_provider": "aws",
            "candidate_region": "eu-central-1",
            "outcome": "allow",
            "chosen_provider": "aws",
            "chosen_region": "eu-central-1",
            "matched_rules": ["eu-data-boundary/inside-boundary"],
            "reasons": ["EU personal data is processed inside the EU/EEA."],
            "policies": citations,
        },
    }


def shipped_citations() -> list[dict[str, Any]]:
    return [
        {"policy_id": r.policy_id, "version": r.version, "digest": r.digest} for r in SHIPPED.refs
    ]


def where(exc: ValidationError) -> tuple[str | None, int | None]:
    """The refused field and the refused entry's position in its batch."""
    return exc.field, getattr(exc, "index", None)


def stored_payload(ledger: Ledger, seq: int) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(ledger.entry(seq).entry_bytes)["payload"]
    return payload


def with_payload(entry: Entry, **changes: Any) -> Entry:
    return {**entry, "payload": {**entry["payload"], **changes}}


def without(entry: Entry, name: str) -> Entry:
    return {**entry, "payload": {k: v for k, v in entry["payload"].items() if k != name}}


def eu_text(old: str, new: str) -> str:
    (source,) = [s for s in SHIPPED.sources if s.ref.policy_id == "eu-data-boundary"]
    assert old in source.text
    return source.text.replace(old, new)


def float_rate() -> Entry:
    entry = price_list(2, effective_from="2026-06-01T00:00:00Z")
    entry["payload"]["prices"][0]["input_per_million"] = 0.8
    return entry


def changed_price_list() -> Entry:
    entry = price_list()
    entry["payload"]["prices"][0]["input_per_million"] = "16"
    return entry


# --- refusals -------------------------------------------------------------------------------

REFUSALS: dict[str, tuple[Callable[[], Entry], str]] = {
    "unknown type": (lambda: {**delivered(1), "type": "TrancheTeleported"}, "type"),
    "unknown schema version": (lambda: {**delivered(1), "schema_version": 7}, "schema_version"),
    "missing payload field": (
        lambda: without(delivered(1), "racks_delivered"),
        "payload.racks_delivered",
    ),
    "wrong type": (
        lambda: with_payload(delivered(1), racks_delivered="two"),
        "payload.racks_delivered",
    ),
    "unknown payload field": (
        lambda: with_payload(delivered(1), colour="blue"),
        "payload.colour",
    ),
    "naive datetime": (
        lambda: with_payload(delivered(1), delivered_at="2026-11-01T00:00:00"),
        "payload.delivered_at",
    ),
    "float where money goes": (float_rate, "payload.prices.0.input_per_million"),
    "int where a time goes": (
        lambda: with_payload(delivered(1), delivered_at=1_762_000_000),
        "payload.delivered_at",
    ),
    "policy on the wrong stream": (
        lambda: {**policy_entry("eu-data-boundary"), "stream": "policy:default-residency"},
        "stream",
    ),
    "policy text is not a policy document": (
        lambda: policy_entry("eu-data-boundary", text="kind: residency\nid: eu-data-boundary\n"),
        "payload.text",
    ),
    "policy text is not YAML": (
        lambda: policy_entry("eu-data-boundary", text="kind: [unclosed\n"),
        "payload.text",
    ),
    "policy id disagrees with the text": (
        lambda: policy_entry("eu-data-boundary", policy_id="uk-data-boundary"),
        "payload.text",
    ),
    "policy version disagrees with the text": (
        lambda: policy_entry("eu-data-boundary", version=2),
        "payload.text",
    ),
    "policy kind disagrees with the text": (
        lambda: policy_entry("eu-data-boundary", kind="routing"),
        "payload.text",
    ),
    "policy version re-published with other text": (
        lambda: policy_entry(
            "eu-data-boundary", text=eu_text("stays in the EU/EEA", "remains in the EU/EEA")
        ),
        "payload.text",
    ),
    "price list version re-published with other content": (changed_price_list, "payload.version"),
    "price list on the wrong stream": (
        lambda: {**price_list(2), "stream": "price-list:list-2027"},
        "stream",
    ),
    "decision cites an unpublished policy": (
        lambda: decision_entry(
            [
                {"policy_id": "eu-data-boundary", "version": 2, "digest": "0" * 64},
                *shipped_citations(),
            ]
        ),
        "payload.policies.0",
    ),
    "decision cites a published version with another digest": (
        lambda: decision_entry(
            [{"policy_id": "eu-data-boundary", "version": 1, "digest": "0" * 64}]
        ),
        "payload.policies.0",
    ),
    "request with no price list in force": (
        lambda: routed(1, occurred_at="2025-12-31T23:59:59Z"),
        "payload.model",
    ),
    "request for a model no list prices": (
        lambda: routed(1, provider="anthropic", region="us", model="claude-opus-4-1"),
        "payload.model",
    ),
    "request names a price list that does not exist": (
        lambda: routed(1, price_list_id="list-1999"),
        "payload.model",
    ),
    "client cost disagrees": (lambda: routed(1, cost="0.006"), "payload.cost"),
    "client price list version disagrees": (
        lambda: routed(1, price_list_version=2),
        "payload.price_list_version",
    ),
    "client currency disagrees": (lambda: routed(1, currency="EUR"), "payload.currency"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_entry_names_its_field_and_position_and_nothing_is_written(
    governed: Ledger, case: str
) -> None:
    build, field = REFUSALS[case]
    before = governed.head()
    with pytest.raises(ValidationError) as refused:
        governed.append([delivered(0), build()])
    assert where(refused.value) == (field, 1)
    after = governed.head()
    assert (after.size, after.root_hash) == (before.size, before.root_hash)


def test_a_valid_entry_after_a_refused_one_is_not_written_either(governed: Ledger) -> None:
    before = governed.head()
    with pytest.raises(ValidationError) as refused:
        governed.append([delivered(0), routed(1, cost="1"), routed(2)])
    assert where(refused.value) == ("payload.cost", 1)
    assert governed.head() == before


def test_refusals_say_what_to_do(governed: Ledger) -> None:
    with pytest.raises(ValidationError, match=r"publish the change as version 2"):
        governed.append([REFUSALS["policy version re-published with other text"][0]()])
    with pytest.raises(ValidationError, match=r"pactledger policy publish"):
        governed.append([REFUSALS["decision cites an unpublished policy"][0]()])
    with pytest.raises(ValidationError, match=r"gives 0\.006003; omit it"):
        governed.append([routed(1, cost="0.006")])
    with pytest.raises(ValidationError, match=r"publish a PriceListPublished"):
        governed.append([routed(1, occurred_at="2025-12-31T23:59:59Z")])


def test_a_policy_version_published_twice_in_one_batch_with_two_texts_is_refused(
    ledger: Ledger,
) -> None:
    changed = eu_text("stays in the EU/EEA", "remains in the EU/EEA")
    with pytest.raises(ValidationError, match="earlier in this batch") as refused:
        ledger.append(
            [policy_entry("eu-data-boundary"), policy_entry("eu-data-boundary", text=changed)]
        )
    assert where(refused.value) == ("payload.text", 1)
    assert ledger.head().size == 0


def test_republishing_unchanged_content_is_harmless(governed: Ledger) -> None:
    size = governed.head().size
    governed.append([price_list(), policy_entry("eu-data-boundary")])
    assert governed.head().size == size + 2
    (receipt,) = governed.append([routed(1)])
    assert stored_payload(governed, receipt.seq)["price_list_version"] == 1


def test_a_decision_citing_published_policies_is_admitted(governed: Ledger) -> None:
    (receipt,) = governed.append([decision_entry(shipped_citations())])
    assert stored_payload(governed, receipt.seq)["policies"] == shipped_citations()


def test_policies_published_earlier_in_the_batch_can_be_cited(ledger: Ledger) -> None:
    receipts = ledger.append(
        [
            *(policy_entry(s.ref.policy_id) for s in SHIPPED.sources),
            decision_entry(shipped_citations()),
        ]
    )
    assert [r.seq for r in receipts] == list(range(6))


# --- pricing --------------------------------------------------------------------------------


def test_a_routed_inference_is_priced_from_the_list_in_force(ledger: Ledger) -> None:
    ledger.append([price_list()])
    (receipt,) = ledger.append(
        [routed(1, input_tokens=1_234_567, output_tokens=89_012, cached_tokens=345_678)]
    )
    payload = stored_payload(ledger, receipt.seq)
    # sonnet: 3 in, 15 out, 0.30 cached per million tokens
    expected = (
        Decimal(1_234_567) * Decimal("3")
        + Decimal(345_678) * Decimal("0.30")
        + Decimal(89_012) * Decimal("15")
    ) / Decimal(1_000_000)
    assert payload["cost"] == "5.1425844"
    assert Decimal(payload["cost"]) == expected
    assert payload["currency"] == "USD"
    assert payload["price_list_id"] == "list-2026"
    assert payload["price_list_version"] == 1


@pytest.mark.parametrize(
    ("model", "tokens", "cost"),
    [
        ("claude-opus-4-1", (1, 0, 0), "0.000015"),  # 15 per million
        ("claude-opus-4-1", (0, 1, 0), "0.000075"),
        ("claude-opus-4-1", (0, 0, 1), "0.0000015"),  # cached 1.50 per million
        ("claude-haiku-4-5", (1_000_000, 1_000_000, 1_000_000), "6.1"),
        ("claude-haiku-4-5", (0, 0, 0), "0"),
        ("claude-sonnet-4-5", (333, 777, 10), "0.012657"),
    ],
)
def test_input_output_and_cached_tokens_are_priced_at_their_own_rates(
    ledger: Ledger, model: str, tokens: tuple[int, int, int], cost: str
) -> None:
    ledger.append([price_list()])
    input_tokens, output_tokens, cached_tokens = tokens
    (receipt,) = ledger.append(
        [
            routed(
                1,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_tokens=cached_tokens,
            )
        ]
    )
    assert stored_payload(ledger, receipt.seq)["cost"] == cost


def test_cached_tokens_cost_the_input_rate_when_the_line_has_no_cached_rate(
    ledger: Ledger,
) -> None:
    entry = price_list()
    for line in entry["payload"]["prices"]:
        del line["cached_input_per_million"]
    ledger.append([entry])
    (receipt,) = ledger.append([routed(1, input_tokens=0, output_tokens=0, cached_tokens=1000)])
    assert stored_payload(ledger, receipt.seq)["cost"] == "0.003"


def test_client_price_fields_equal_to_the_computed_ones_are_accepted(ledger: Ledger) -> None:
    ledger.append([price_list()])
    (receipt,) = ledger.append(
        [routed(1, price_list_id="list-2026", price_list_version=1, currency="USD")]
    )
    payload = stored_payload(ledger, receipt.seq)
    assert (payload["price_list_version"], payload["cost"]) == (1, "0.006003")


def test_a_client_cost_equal_to_the_computed_one_is_accepted(ledger: Ledger) -> None:
    ledger.append([price_list()])
    # 1001 * 3 + 200 * 15 = 6003 per million tokens; 1002 * 3 + 3000 = 6006
    receipts = ledger.append(
        [
            routed(1, cost="0.006003"),
            routed(2, cost="0.0060060"),  # a trailing zero: the same amount
        ]
    )
    assert stored_payload(ledger, receipts[0].seq)["cost"] == "0.006003"
    assert stored_payload(ledger, receipts[1].seq)["cost"] == "0.006006"


def test_requests_are_priced_by_the_version_in_force_at_occurred_at(ledger: Ledger) -> None:
    later = {"claude-sonnet-4-5": ("4", "20", "0.40")}
    ledger.append([price_list()])
    ledger.append([price_list(2, effective_from="2026-06-01T00:00:00Z", rates=later)])
    receipts = ledger.append(
        [
            routed(1, occurred_at="2026-05-31T23:59:59.999999Z", input_tokens=0),
            routed(2, occurred_at="2026-06-01T00:00:00Z", input_tokens=0),
            routed(3, occurred_at="2026-11-02T10:00:00Z", input_tokens=0),
        ]
    )
    priced = [stored_payload(ledger, r.seq) for r in receipts]
    assert [(p["price_list_version"], p["cost"]) for p in priced] == [
        (1, "0.003"),  # 200 output tokens at 15 per million
        (2, "0.004"),  # ... and at 20
        (2, "0.004"),
    ]


def test_a_request_without_occurred_at_is_priced_at_admission_time(ledger: Ledger) -> None:
    later = {"claude-sonnet-4-5": ("4", "20", "0.40")}
    ledger.append([price_list(), price_list(2, effective_from="2026-12-01T00:00:00Z", rates=later)])
    (receipt,) = ledger.append([routed(1, occurred_at=None, input_tokens=0)])
    assert stored_payload(ledger, receipt.seq)["price_list_version"] == 1  # clock: 2026-11-25


def test_a_region_line_wins_over_the_provider_wide_line(ledger: Ledger) -> None:
    entry = price_list()
    entry["payload"]["prices"].append(
        {
            "model": "claude-sonnet-4-5",
            "provider": "aws",
            "region": "eu-central-1",
            "input_per_million": "3.30",
            "output_per_million": "16.50",
        }
    )
    ledger.append([entry])
    receipts = ledger.append(
        [
            routed(1, region="eu-central-1", input_tokens=1_000_000, output_tokens=0),
            routed(2, region="us-east-1", input_tokens=1_000_000, output_tokens=0),
        ]
    )
    assert [stored_payload(ledger, r.seq)["cost"] for r in receipts] == ["3.3", "3"]


def test_a_price_list_and_a_request_using_it_in_one_batch(ledger: Ledger) -> None:
    receipts = ledger.append([price_list(), routed(1)])
    assert [r.seq for r in receipts] == [0, 1]
    assert stored_payload(ledger, 1)["cost"] == "0.006003"


def test_a_request_before_its_price_list_in_the_batch_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValidationError) as refused:
        ledger.append([routed(1), price_list()])
    assert where(refused.value) == ("payload.model", 0)
    assert ledger.head().size == 0


def test_a_request_naming_a_price_list_is_priced_by_that_list(ledger: Ledger) -> None:
    cheap = {"claude-sonnet-4-5": ("1", "5", "0.10")}
    ledger.append(
        [
            price_list(price_list_id="list-a"),
            price_list(price_list_id="list-b", effective_from="2026-03-01T00:00:00Z", rates=cheap),
        ]
    )
    receipts = ledger.append(
        [routed(1, input_tokens=0), routed(2, input_tokens=0, price_list_id="list-a")]
    )
    priced = [stored_payload(ledger, r.seq) for r in receipts]
    assert [(p["price_list_id"], p["cost"]) for p in priced] == [
        ("list-b", "0.001"),  # the most recent list in force
        ("list-a", "0.003"),
    ]


def test_the_admitted_payload_is_stored_in_one_normalised_form(ledger: Ledger) -> None:
    rates = {"claude-sonnet-4-5": ("3.00", "15.0", "0.30")}
    entry = price_list(effective_from="2026-01-01T01:00:00+01:00", rates=rates)
    (receipt,) = ledger.append([entry])
    payload = stored_payload(ledger, receipt.seq)
    assert payload["effective_from"] == "2026-01-01T00:00:00.000000Z"
    assert payload["currency"] == "USD"  # the default, written out
    line = payload["prices"][0]
    assert (
        line["input_per_million"],
        line["output_per_million"],
        line["cached_input_per_million"],
        line["region"],
    ) == ("3.00", "15.0", "0.30", "*")

    (receipt,) = ledger.append([routed(1, occurred_at="2026-11-02T11:00:00+01:00")])
    stored = json.loads(ledger.entry(receipt.seq).entry_bytes)
    assert stored["occurred_at"] == "2026-11-02T10:00:00.000000Z"
    assert stored["payload"]["cached_tokens"] == 0
    assert stored["payload"]["status"] == "ok"


def test_an_idempotent_retry_of_a_priced_request_appends_nothing(ledger: Ledger) -> None:
    ledger.append([price_list()])
    entry = {**routed(1), "idempotency_key": "route-1"}
    (first,) = ledger.append([entry])
    head = ledger.head()
    (again,) = ledger.append([entry])
    assert again.duplicate
    assert (again.seq, again.leaf_hash) == (first.seq, first.leaf_hash)
    assert ledger.head() == head
    with pytest.raises(IdempotencyConflictError):
        ledger.append([{**routed(1, input_tokens=5), "idempotency_key": "route-1"}])


def test_a_retry_without_occurred_at_is_a_duplicate_after_prices_change(
    ledger: Ledger, clock: TickingClock
) -> None:
    later = {"claude-sonnet-4-5": ("4", "20", "0.40")}
    ledger.append([price_list(), price_list(2, effective_from="2026-11-26T00:00:00Z", rates=later)])
    entry = {**routed(1, occurred_at=None), "idempotency_key": "route-1"}
    (first,) = ledger.append([entry])
    clock.now = clock.now.replace(day=27)  # the client retries two days later
    (again,) = ledger.append([entry])
    assert again.duplicate
    assert again.seq == first.seq


def test_a_cost_with_many_significant_digits_is_exact(ledger: Ledger) -> None:
    rate = "2.7654321098765432109876543"  # e.g. a rate converted from another currency
    ledger.append([price_list(rates={"claude-sonnet-4-5": (rate, "0", "0")})])
    (receipt,) = ledger.append([routed(1, input_tokens=1_234_567, output_tokens=0)])
    with decimal.localcontext() as context:
        context.prec = 100
        exact = Decimal(rate) * 1_234_567 / 1_000_000
    assert Decimal(stored_payload(ledger, receipt.seq)["cost"]) == exact


def test_a_second_process_sees_what_another_published_without_waiting(store: LogStore) -> None:
    """Each Ledger caches price lists and policies for a second; an entry that would be refused
    for lack of them makes it read them again first, so nothing is refused wrongly."""
    mine, theirs = Ledger(store=store), Ledger(store=store)
    with pytest.raises(ValidationError, match="no price list"):
        mine.append([routed(1)])  # mine has now read (and cached) no price list at all
    theirs.append([price_list()])
    (receipt,) = mine.append([routed(1)])
    assert json.loads(store.entry(receipt.seq).entry_bytes)["payload"]["price_list_version"] == 1

    policy_set = load_policy_set()
    facts = Facts("acme", ("internal",), "aws", "us-east-1", "sonnet")
    decided = policy_set.decide(facts)
    entry = governance.decision_entry(facts, decided, request_id="r-1", decision_id="d-1")
    with pytest.raises(ValidationError, match="never published"):
        mine.append([entry])  # mine has now read (and cached) no published policy
    publish_policies(theirs, policy_set)
    (recorded,) = mine.append([entry])
    assert store.entry(recorded.seq).type == "ResidencyDecided"


def test_append_admissible_refuses_entries_one_by_one(store: LogStore) -> None:
    """For callers speaking for many clients at once: each refused entry gets its own error,
    the others are appended in order in one transaction."""
    ledger = Ledger(store=store)
    ledger.append([price_list()])
    before = store.head().size
    batch: list[Entry] = [
        routed(1),
        {**routed(2), "type": "Nope"},
        routed(3),
        routed(4, model_tier="gpt"),
        {**routed(5), "idempotency_key": "k"},
        {**routed(6), "idempotency_key": "k"},  # same key, other content: refused
    ]
    results = ledger.append_admissible(batch)
    assert [type(r).__name__ for r in results] == [
        "Receipt",
        "ValidationError",
        "Receipt",
        "ValidationError",
        "Receipt",
        "IdempotencyConflictError",
    ]
    receipts = [r for r in results if not isinstance(r, Exception)]
    assert [r.seq for r in receipts] == [before, before + 1, before + 2]
    assert store.head().size == before + 3
    refused = results[1]
    assert isinstance(refused, ValidationError)
    assert refused.field == "type"
    assert getattr(refused, "index", None) is None  # about its own entry, not a position
    assert ledger.append_admissible([]) == []
