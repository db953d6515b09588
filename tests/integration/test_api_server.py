"""The real server process (`pactledger serve`, uvicorn) over loopback on PostgreSQL: entries
in over HTTP, group-committed concurrent POSTs, and GenAI spans sent by the real
OpenTelemetry Python SDK through its OTLP/HTTP exporter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from ledger.access import Role, create_key
from ledger.app.governance import publish_policies
from ledger.app.service import Ledger
from ledger.log.entry import utc_now
from ledger.policy import load_policy_set
from ledger.store.keys import SqlKeyStore
from tests.conftest import ORIGIN, open_sql_store
from tests.domain import price_list, routed

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@dataclass
class Server:
    url: str
    key: str
    ledger: Ledger

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(postgres_url: str, tmp_path: Path) -> Iterator[Server]:
    store = open_sql_store(postgres_url)
    ledger = Ledger(store=store)
    publish_policies(ledger, load_policy_set())
    ledger.append([price_list()])
    key, _ = create_key(
        SqlKeyStore(store.engine),
        role=Role.INGEST,
        tenants=["acme"],
        all_tenants=False,
        name="server-test",
        now=utc_now(),
    )
    signing_key = tmp_path / "signing-key.pem"
    signing_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    signing_key.chmod(0o600)  # load_signer refuses a key others can read
    port = free_port()
    env = {
        **os.environ,
        "PACTLEDGER_DATABASE_URL": postgres_url,
        "PACTLEDGER_SIGNING_KEY": str(signing_key),
        "PACTLEDGER_ORIGIN": ORIGIN,
    }
    command = [sys.executable, "-c", "from ledger.cli.main import app; app()"]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the server did not become ready:\n{output}")
            time.sleep(0.2)
        yield Server(url, key, ledger)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        store.engine.dispose()


def test_entries_go_in_over_loopback_and_the_log_verifies(server: Server) -> None:
    before = server.ledger.head().size
    with httpx.Client(base_url=server.url, headers=server.headers()) as client:
        posted = client.post("/v1/events", json=routed(1, tenant="acme"))
        assert posted.status_code == 201, posted.text
        batch = client.post(
            "/v1/events:batch", json={"events": [routed(n, tenant="acme") for n in (2, 3)]}
        )
        assert batch.status_code == 201, batch.text
        assert [r["seq"] for r in batch.json()["receipts"]] == [before + 1, before + 2]
        refused = client.post("/v1/events", json=routed(4, tenant="globex"))
        assert refused.status_code == 403
    assert server.ledger.head().size == before + 3
    assert server.ledger.verify().size == before + 3


def test_concurrent_single_posts_each_get_their_own_durable_seq(server: Server) -> None:
    before = server.ledger.head().size

    def post(n: int) -> int:
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as client:
            response = client.post("/v1/events", json=routed(100 + n, tenant="acme"))
            assert response.status_code == 201, response.text
            seq: int = response.json()["seq"]
            assert server.ledger.entry(seq).stream == f"request:req-{100 + n}"  # durable now
            return seq

    with ThreadPoolExecutor(max_workers=32) as pool:
        seqs = list(pool.map(post, range(96)))
    assert sorted(seqs) == list(range(before, before + 96))
    metrics = httpx.get(f"{server.url}/metrics").text
    transactions = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('pactledger_append_batch_entries_count{path="single"}')
    )
    assert transactions <= 96
    server.ledger.verify()


def test_the_opentelemetry_sdk_exporter_records_genai_spans(server: Server) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "contract-review"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/v1/otlp/v1/traces", headers=server.headers()
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("gateway")
    with tracer.start_as_current_span(
        "chat claude-sonnet-4-5",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.request.model": "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "pactledger.request_id": "otel-1",
            "pactledger.business_unit": "research",
            "pactledger.cost_center": "cc-4410",
            "pactledger.region": "eu-central-1",
        },
    ):
        pass
    with tracer.start_as_current_span("GET /health", attributes={"http.method": "GET"}):
        pass
    assert provider.force_flush()
    provider.shutdown()
    (entry,) = server.ledger.store.entries_in_streams("request:otel-1")
    assert entry.tenant == "acme"  # the key's only tenant
    assert entry.type == "InferenceRouted"
    assert b'"model":"claude-sonnet-4-5"' in entry.entry_bytes
    assert b'"cost":"0.0081"' in entry.entry_bytes  # (1200·3 + 300·15) per million
