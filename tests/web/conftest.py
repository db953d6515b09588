"""A ledger filled by the demo scenario (small), its settings, and keys of each kind, shared
by the dashboard's tests (TestClient pages and the headless-browser run)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from api.app import create_app
from ledger.access import Role, create_key
from ledger.demo.run import DemoOptions, demo_settings, run_demo
from ledger.log.entry import utc_now
from ledger.settings import Settings
from ledger.store.engine import make_engine
from ledger.store.keys import SqlKeyStore

EU = "contoso-eu"  # the demo's EU tenant


@dataclass(frozen=True)
class DemoLedger:
    settings: Settings
    auditor: str  # every tenant
    viewer: str  # EU only
    ingest: str
    other_viewer: str  # fabrikam only


@pytest.fixture(scope="package")
def demo_ledger(tmp_path_factory: pytest.TempPathFactory) -> DemoLedger:
    out = tmp_path_factory.mktemp("web") / "demo"
    options = DemoOptions(out_dir=out, requests=600, days=3, seed=5)
    run_demo(options, Console(stderr=True, quiet=True))
    settings = demo_settings(options)
    engine = make_engine(settings.database_url)
    keys = SqlKeyStore(engine)
    now = utc_now()

    def key(role: Role, tenants: list[str]) -> str:
        token, _ = create_key(
            keys, role=role, tenants=tenants, all_tenants=not tenants, name="web", now=now
        )
        return token

    made = DemoLedger(
        settings=settings,
        auditor=key(Role.AUDITOR, []),
        viewer=key(Role.VIEWER, [EU]),
        ingest=key(Role.INGEST, [EU]),
        other_viewer=key(Role.VIEWER, ["fabrikam"]),
    )
    engine.dispose()
    return made


@pytest.fixture
def client(demo_ledger: DemoLedger) -> Iterator[TestClient]:
    with TestClient(create_app(demo_ledger.settings), base_url="http://testserver") as made:
        yield made


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def post_sign_in(client: TestClient, key: str, next_page: str | None = None) -> httpx.Response:
    """Fill in and send the sign-in form; the answer as it comes (redirects not followed)."""
    form = client.get("/ui/login")
    data = {"api_key": key, "csrf": form_token(form.text)}
    if next_page is not None:
        data["next"] = next_page
    return client.post("/ui/login", data=data, follow_redirects=False)


def sign_in(client: TestClient, key: str, next_page: str = "/ui/") -> TestClient:
    answer = post_sign_in(client, key, next_page)
    assert answer.status_code == 303, answer.text[:500]
    return client


def wait_ready(
    base_url: str,
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    *,
    within: float,
    log: Path | str = "",
) -> None:
    """Wait until the server at ``base_url`` answers ``/readyz`` with 200; fail (with ``log``)
    if its process ends first or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            shown = log.read_text(errors="replace")[-3000:] if isinstance(log, Path) else log
            pytest.fail(f"the server at {base_url} did not become ready:\n{shown}")
        time.sleep(0.2)
