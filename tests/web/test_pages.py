"""The dashboard's pages over the real app (TestClient) on a demo-filled ledger: sign-in and
its cookie, CSRF on every form, roles and tenant scopes, and that each page shows what the
views hold."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.access import Role, create_key, revoke_key
from ledger.app import views as queries
from ledger.bundle.verify import verify_bundle
from ledger.compose import projectors_for
from ledger.log.entry import utc_now
from ledger.store.engine import make_engine
from ledger.store.sql import SqlLogStore
from ledger.store.verifications import SqlVerificationLog

from .conftest import EU, DemoLedger, form_token, post_sign_in, sign_in

PAGES = ["/ui/", "/ui/residency", "/ui/chargeback", "/ui/capacity", "/ui/estimator", "/ui/exports"]


def _views(demo: DemoLedger):  # type: ignore[no-untyped-def]
    return projectors_for(make_engine(demo.settings.database_url)).views


@pytest.mark.parametrize("page", [*PAGES, "/ui/provenance/req-1", "/ui/chargeback.csv"])
def test_every_page_needs_a_session(client: TestClient, page: str) -> None:
    answer = client.get(page, follow_redirects=False)
    assert answer.status_code == 303
    target = urlparse(answer.headers["location"])
    assert target.path == "/ui/login"
    assert page.split("?")[0] in target.query.replace("%2F", "/")


def test_the_session_cookie_is_sealed_http_only_and_strict(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    answer = post_sign_in(client, demo_ledger.auditor)
    assert answer.status_code == 303
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("pactledger_session=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/ui"} <= flags
    assert any(flag.startswith("max-age=") for flag in flags)
    value = cookie.split(";")[0].split("=", 1)[1]
    secret = demo_ledger.auditor.rsplit("_", 1)[1]
    assert secret not in value
    assert demo_ledger.auditor.split("_")[1] not in value  # not even the key id
    assert client.get("/ui/").status_code == 200
    # an edited cookie is no session
    client.cookies.set(
        "pactledger_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), path="/ui"
    )
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_wrong_key_is_refused_and_gets_no_session(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    answer = post_sign_in(client, demo_ledger.auditor[:-3] + "xyz")
    assert answer.status_code == 401
    assert "not valid or was revoked" in answer.text
    assert "pactledger_session=" not in answer.headers.get("set-cookie", "")


def test_sign_in_without_its_form_token_is_refused(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    client.get("/ui/login")
    answer = client.post(
        "/ui/login", data={"api_key": demo_ledger.auditor, "csrf": "forged"}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert "pactledger_session=" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", ["https://evil.example/ui", "//evil.example/ui", "/v1/keys"])
def test_sign_in_only_returns_to_dashboard_pages(
    client: TestClient, demo_ledger: DemoLedger, target: str
) -> None:
    answer = post_sign_in(client, demo_ledger.auditor, target)
    assert answer.headers["location"] == "/ui/"


def test_an_ingest_key_cannot_sign_in(client: TestClient, demo_ledger: DemoLedger) -> None:
    answer = post_sign_in(client, demo_ledger.ingest)
    assert answer.status_code == 403
    assert "ingest key cannot read" in answer.text


def test_a_revoked_key_ends_its_sessions(client: TestClient) -> None:
    """Revoked through the server's key store, at once (from another process: within the
    key cache's 2 s, as for the API)."""
    keys = client.app.state.services.keys  # type: ignore[attr-defined]
    token, record = create_key(
        keys, role=Role.VIEWER, tenants=[EU], all_tenants=False, name="short", now=utc_now()
    )
    sign_in(client, token)
    assert client.get("/ui/residency").status_code == 200
    revoke_key(keys, record.key_id, now=utc_now())
    assert client.get("/ui/residency", follow_redirects=False).status_code == 303


def test_pages_send_security_headers(client: TestClient, demo_ledger: DemoLedger) -> None:
    sign_in(client, demo_ledger.auditor)
    for page in (*PAGES, "/ui/login"):
        headers = client.get(page).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


def test_overview_shows_the_ledger_checkpoint_and_projectors(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.auditor)
    page = client.get("/ui/").text
    store = SqlLogStore(make_engine(demo_ledger.settings.database_url))
    head, checkpoint = store.head(), store.latest_checkpoint()
    assert checkpoint is not None
    assert f'data-testid="ledger-size">{head.size:,}<' in page
    assert f"{checkpoint.tree_size:,}" in page
    for name in ("compliance", "chargeback", "provenance", "capacity"):
        assert f"<td>{name}</td>" in page


def test_verify_now_runs_and_records_a_verification(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.auditor)
    token = form_token(client.get("/ui/").text)
    log = SqlVerificationLog(make_engine(demo_ledger.settings.database_url))
    before = log.latest()
    refused = client.post("/ui/verify", data={"csrf": "forged"}, follow_redirects=False)
    assert refused.status_code == 403
    assert log.latest() == before  # nothing ran
    answer = client.post("/ui/verify", data={"csrf": token}, follow_redirects=True)
    latest = log.latest()
    assert latest is not None
    assert latest.ok
    assert latest.source.startswith("dashboard:")
    assert 'data-testid="verification">passed<' in answer.text


def test_a_viewer_may_neither_verify_nor_export(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.viewer)
    page = client.get("/ui/").text
    assert "Verify now" not in page
    token = form_token(page)
    assert client.post("/ui/verify", data={"csrf": token}).status_code == 403
    exports = client.get("/ui/exports").text
    assert "may not export" in exports
    answer = client.post("/ui/exports", data={"csrf": token, "tenants": [EU]})
    assert answer.status_code == 403


def test_residency_lists_what_the_view_holds_and_charts_the_violations(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.auditor)
    rows = queries.residency(_views(demo_ledger))
    violations = [
        r for r in rows if r["status"] in ("violation", "no_decision", "denied_but_served")
    ]
    assert violations, "the demo plants misrouted requests"
    page = client.get("/ui/residency", params={"violations_only": "true"}).text
    listed = re.findall(r'href="/ui/provenance/([^"]+)"', page)
    assert sorted(listed) == sorted(r["request_id"] for r in violations)
    chart = json.loads(re.search(r'id="violations">(.*?)</script>', page, re.S).group(1))
    assert sum(sum(d["data"]) for d in chart["datasets"]) == len(violations)
    everything = client.get("/ui/residency").text
    assert f"of {len(rows):,} shown" in everything


def test_a_violation_leads_to_its_provenance_with_a_verified_proof(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.auditor)
    page = client.get("/ui/residency", params={"violations_only": "true"}).text
    request_id = re.findall(r'href="/ui/provenance/([^"]+)"', page)[0]
    provenance = client.get(f"/ui/provenance/{request_id}")
    assert provenance.status_code == 200
    assert "✓ proof verified" in provenance.text
    assert "ResidencyDecided" in provenance.text
    assert "InferenceRouted" in provenance.text


def test_bad_filters_are_answered_next_to_the_form(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.auditor)
    bad_date = client.get("/ui/residency", params={"from": "yesterday"})
    assert bad_date.status_code == 422
    assert "&#39;yesterday&#39; is not a date (YYYY-MM-DD)" in bad_date.text
    bad_order = client.get("/ui/residency", params={"from": "2026-11-05", "to": "2026-11-01"})
    assert bad_order.status_code == 422
    bad_month = client.get("/ui/chargeback", params={"month": "2026-13"})
    assert bad_month.status_code == 422
    assert "YYYY-MM" in bad_month.text
    bad_group = client.get("/ui/chargeback", params={"by": "colour"})
    assert bad_group.status_code == 422


def test_chargeback_totals_equal_the_view_and_the_focus_export_is_one_click(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.auditor)
    totals = queries.chargeback(_views(demo_ledger), by="model")
    page = client.get("/ui/chargeback", params={"by": "model"}).text
    for total in totals:
        assert f"{total['cost']} {total['currency']}" in page
    link = re.search(r'href="(/ui/chargeback\.csv\?[^"]*format=focus[^"]*)"', page).group(1)
    focus = client.get(link.replace("&amp;", "&"))
    assert focus.status_code == 200
    assert focus.headers["content-type"].startswith("text/csv")
    header = focus.text.splitlines()[0]
    assert header.startswith("BilledCost,")
    assert "x_Tenant" in header


def test_capacity_and_estimator_show_every_tranche_and_benchmark(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.auditor)
    tranches = queries.tranches(_views(demo_ledger), as_of=datetime.now(UTC))
    capacity = client.get("/ui/capacity").text
    for tranche in tranches:
        assert f"<td>{tranche['tranche_id']}</td>" in capacity
    assert any(t["delays"] for t in tranches)
    assert "days max" in capacity
    estimator = client.get("/ui/estimator").text
    assert "below_estimate" in estimator  # the demo's under-delivering tranche
    chart = json.loads(re.search(r'id="throughput">(.*?)</script>', estimator, re.S).group(1))
    assert [d["label"] for d in chart["datasets"]] == [
        "estimated",
        "measured",
        "band low",
        "band high",
    ]


def test_an_auditor_downloads_a_bundle_that_verifies(
    client: TestClient, demo_ledger: DemoLedger, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, demo_ledger.auditor)
    form = client.get("/ui/exports").text
    offered = set(re.findall(r'name="tenants" value="([^"]+)"', form))
    views = _views(demo_ledger)
    tranches = queries.tranches(views, as_of=datetime.now(UTC))
    assert offered == {r["tenant"] for r in [*queries.residency(views), *tranches]}
    token = form_token(form)
    refused = client.post("/ui/exports", data={"csrf": "forged", "tenants": [EU]})
    assert refused.status_code == 403
    answer = client.post("/ui/exports", data={"csrf": token, "tenants": [EU]})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/zip"
    assert "attachment" in answer.headers["content-disposition"]
    bundle = tmp_path / "eu.zip"
    bundle.write_bytes(answer.content)
    report = verify_bundle(bundle)
    assert report.ok
    assert report.manifest["scope"]["tenants"] == [EU]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        lines = archive.read("entries.jsonl").splitlines()
    assert lines
    assert all(json.loads(line)["tenant"] == EU for line in lines)
    whole = client.post("/ui/exports", data={"csrf": token})  # none ticked: the whole log
    assert whole.status_code == 200
    (tmp_path / "all.zip").write_bytes(whole.content)
    everything = verify_bundle(tmp_path / "all.zip")
    assert everything.ok
    checkpoint = SqlLogStore(make_engine(demo_ledger.settings.database_url)).latest_checkpoint()
    assert checkpoint is not None
    assert everything.manifest["scope"]["tenants"] is None
    assert everything.manifest["entry_count"] == checkpoint.tree_size  # every entry, governance too
    bad = client.post("/ui/exports", data={"csrf": token, "tenants": [EU], "from": "someday"})
    assert bad.status_code == 422
    assert "not a date" in bad.text


def test_a_viewer_sees_only_its_tenant(client: TestClient, demo_ledger: DemoLedger) -> None:
    rows = queries.residency(_views(demo_ledger))
    others = [r["request_id"] for r in rows if r["tenant"] != EU]
    sign_in(client, demo_ledger.viewer)
    residency = client.get("/ui/residency").text
    assert re.findall(r"<td>([a-z0-9-]+)</td><td>(?:compliant|not_served|violation)", residency)
    listed = re.findall(r'href="/ui/provenance/([^"]+)"', residency)
    assert listed
    assert not set(listed) & set(others)
    assert client.get(f"/ui/provenance/{others[0]}").status_code == 404
    # asking for another tenant by name shows nothing of it
    fabrikam = client.get("/ui/residency", params={"tenant": "fabrikam"}).text
    assert "of 0 shown" in fabrikam
    capacity = client.get("/ui/capacity").text
    tranches = queries.tranches(_views(demo_ledger), as_of=datetime.now(UTC))
    for tranche in tranches:
        shown = f"<td>{tranche['tranche_id']}</td>" in capacity
        assert shown == (tranche["tenant"] == EU)
    focus = client.get("/ui/chargeback.csv", params={"format": "csv"}).text.splitlines()
    assert len(focus) > 1
    assert all(line.startswith(f"{EU},") for line in focus[1:])
    chargeback = client.get("/ui/chargeback", params={"by": "tenant"}).text
    assert "fabrikam" not in chargeback.split("Totals by")[1]


def test_sign_out_needs_its_token_and_ends_the_session(
    client: TestClient, demo_ledger: DemoLedger
) -> None:
    sign_in(client, demo_ledger.viewer)
    assert client.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/ui/", follow_redirects=False).status_code == 200
    token = form_token(client.get("/ui/").text)
    answer = client.post("/ui/logout", data={"csrf": token}, follow_redirects=False)
    assert answer.headers["location"] == "/ui/login"
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_cookies_are_secure_behind_a_tls_proxy(demo_ledger: DemoLedger) -> None:
    settings = demo_ledger.settings.model_copy(update={"session_cookie_secure": True})
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        form = client.get("/ui/login")
        signin = form.headers["set-cookie"]
        assert "secure" in signin.lower()
        # a Secure cookie is not sent back over http: hand it back as the browser would over TLS
        nonce = signin.split(";")[0].split("=", 1)[1]
        client.cookies.set("pactledger_signin", nonce, path="/ui")
        answer = client.post(
            "/ui/login",
            data={"api_key": demo_ledger.viewer, "csrf": form_token(form.text)},
            follow_redirects=False,
        )
        session = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("pactledger_session=")
        )
        assert "secure" in {part.strip().lower() for part in session.split(";")}
