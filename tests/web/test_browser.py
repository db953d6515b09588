"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
against ``pactledger serve`` on a demo-filled ledger: sign in, open every page (its charts
drawn by Chart.js under the pages' Content-Security-Policy), follow a violation to its
provenance, download a bundle and verify it, and check that a one-tenant viewer cannot reach
another tenant's request. Each page is saved as a screenshot (``PACTLEDGER_SCREENSHOTS``,
default ``test-artifacts/screenshots``).

Chromium comes from ``CHROMIUM`` or the PATH (``.ci/run`` installs Debian's package); without
it these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.app import views as queries
from ledger.bundle.verify import verify_bundle
from ledger.compose import projectors_for
from ledger.store.engine import make_engine
from tests.conftest import IN_CI

from .conftest import EU, DemoLedger, wait_ready

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
SERVE = [sys.executable, "-c", "from ledger.cli.main import app; app()", "serve"]
SHOTS = Path(os.environ.get("PACTLEDGER_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
PAGES = {
    "overview": ("/ui/", "Overview"),
    "residency": ("/ui/residency?violations_only=true", "Residency"),
    "chargeback": ("/ui/chargeback?by=model", "Chargeback"),
    "capacity": ("/ui/capacity", "Capacity tranches"),
    "estimator": ("/ui/estimator", "Estimated against measured throughput"),
    "exports": ("/ui/exports", "Regulator bundles"),
}


def _chromium() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if found is None:
        message = "no chromium: install Debian's package (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message} (mandatory in CI)")
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(demo_ledger: DemoLedger, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = demo_ledger.settings
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {
        **os.environ,
        "PACTLEDGER_DATABASE_URL": settings.database_url,
        "PACTLEDGER_SIGNING_KEY": str(settings.signing_key),
        "PACTLEDGER_KEK": str(settings.kek),
        "PACTLEDGER_ORIGIN": settings.origin,
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from ledger.cli.main import app; app()",
                "serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, within=60, log=log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = _chromium()
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def _signed_in(browser: object, server: str, key: str) -> object:
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=server, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.goto("/ui/")
    assert page.url.startswith(f"{server}/ui/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/ui/")
    return page


def test_every_page_in_chromium_with_its_charts(
    browser: object, server: str, demo_ledger: DemoLedger
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    page = _signed_in(browser, server, demo_ledger.auditor)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # type: ignore[attr-defined]
    for name, (path, heading) in PAGES.items():
        page.goto(path)  # type: ignore[attr-defined]
        assert page.locator("h1").first.inner_text().startswith(heading)  # type: ignore[attr-defined]
        canvases = page.locator("canvas[data-chart]")  # type: ignore[attr-defined]
        for index in range(canvases.count()):
            # Chart.js ran (no inline script: the CSP allows only the pages' own files)
            assert canvases.nth(index).get_attribute("data-drawn") == "true", name
        page.screenshot(path=str(SHOTS / f"{name}.png"))  # type: ignore[attr-defined]
    assert errors == []


def test_a_violation_leads_to_its_verified_provenance(
    browser: object, server: str, demo_ledger: DemoLedger
) -> None:
    page = _signed_in(browser, server, demo_ledger.auditor)
    page.goto("/ui/residency?violations_only=true")  # type: ignore[attr-defined]
    first = page.locator("[data-testid=residency-table] tbody a").first  # type: ignore[attr-defined]
    request_id = first.inner_text()
    first.click()
    page.wait_for_url(f"{server}/ui/provenance/{request_id}")  # type: ignore[attr-defined]
    statuses = page.locator("[data-testid=proof-status]").all_inner_texts()  # type: ignore[attr-defined]
    assert statuses
    assert all(status == "✓ proof verified" for status in statuses)
    page.screenshot(path=str(SHOTS / "provenance.png"))  # type: ignore[attr-defined]


def test_a_bundle_downloaded_from_the_exports_page_verifies(
    browser: object, server: str, demo_ledger: DemoLedger, tmp_path: Path
) -> None:
    page = _signed_in(browser, server, demo_ledger.auditor)
    page.goto("/ui/exports")  # type: ignore[attr-defined]
    page.check(f"input[name=tenants][value={EU}]")  # type: ignore[attr-defined]
    with page.expect_download() as download:  # type: ignore[attr-defined]
        page.click("form.stacked button[type=submit]")  # type: ignore[attr-defined]
    saved = tmp_path / "bundle.zip"
    download.value.save_as(saved)
    report = verify_bundle(saved)
    assert report.ok
    assert report.manifest["scope"]["tenants"] == [EU]


def test_a_viewer_cannot_reach_another_tenants_pages(
    browser: object, server: str, demo_ledger: DemoLedger
) -> None:
    rows = queries.residency(projectors_for(make_engine(demo_ledger.settings.database_url)).views)
    other = next(r["request_id"] for r in rows if r["tenant"] != EU)
    page = _signed_in(browser, server, demo_ledger.viewer)
    page.goto("/ui/residency")  # type: ignore[attr-defined]
    tenants = set(
        page.locator("[data-testid=residency-table] tbody td:nth-child(2)").all_inner_texts()  # type: ignore[attr-defined]
    )
    assert tenants == {EU}
    answer = page.goto(f"/ui/provenance/{other}")  # type: ignore[attr-defined]
    assert answer.status == 404
    assert page.locator("h1").inner_text() == "Not found"  # type: ignore[attr-defined]
    page.goto("/ui/capacity")  # type: ignore[attr-defined]
    shown = set(
        page.locator(
            "[data-testid=capacity-table] tbody tr:not(.detail) td:nth-child(2)"
        ).all_inner_texts()  # type: ignore[attr-defined]
    )
    assert shown <= {EU}
