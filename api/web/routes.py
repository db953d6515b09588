"""The dashboard: server-rendered pages under ``/ui`` for the people who read the ledger every
day (a compliance officer, a FinOps lead, an auditor), on the same data, roles and tenant
scopes as the API.

Guarantees:

* Every page needs a signed-in session (:mod:`api.web.session`); the key inside is
  re-authenticated on every request and must hold ``read`` (an ingest-only key gets a 403
  page). A page shows only the key's tenants: lists are filtered by them, and another
  tenant's request or tranche is "not found", exactly as in the API.
* Pages only read, except three forms, each CSRF-checked before it does anything: sign-out,
  "verify now" (``export`` permission: auditors and admins) and "create a bundle" (``export``).
* Charts are drawn in the browser by Chart.js (vendored, ``static/vendor``) from JSON the page
  embeds; no page runs inline script (the Content-Security-Policy forbids it).
* A bad filter is answered with the page and the error next to the form (status 422), never
  a traceback.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.middleware.base import BaseHTTPMiddleware

from ledger.access import Permission, Principal, authenticate
from ledger.app import views as queries
from ledger.app.keys import load_signer
from ledger.app.projection import Projectors
from ledger.app.provenance import request_provenance
from ledger.app.reconcile import reconcile
from ledger.app.verification import verify_and_record
from ledger.errors import LedgerError, NotFoundError, ValidationError
from ledger.integrity.merkle import InclusionProof
from ledger.integrity.note import NoteVerifier
from ledger.log.entry import utc_now
from ledger.projections.compliance import STATUSES, VIOLATIONS

from ..errors import ApiError
from ..rate_limit import RateLimiter
from ..services import Services, services
from . import session as web_session
from .session import Sessions

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)
Found = Annotated[Services, Depends(services)]

LIST_LIMIT = 500  # rows a list page shows (its chart and counts cover everything in scope)
CHART_SERIES = 8  # a chart shows this many series, the rest summed as "other"
PAGES = (
    ("overview", "/ui/", "Overview"),
    ("residency", "/ui/residency", "Residency"),
    ("chargeback", "/ui/chargeback", "Chargeback"),
    ("capacity", "/ui/capacity", "Capacity"),
    ("estimator", "/ui/estimator", "Estimator"),
    ("exports", "/ui/exports", "Exports"),
)


class SignInRequiredError(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""

    def __init__(self, back_to: str) -> None:
        self.back_to = back_to


class PageError(Exception):
    """A page that cannot be shown: the error page with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their key's principal and the CSRF token of their forms."""

    principal: Principal
    csrf: str

    @property
    def tenants(self) -> list[str] | None:
        """The tenants a query is limited to (None: all)."""
        who = self.principal
        return None if who.all_tenants else sorted(who.tenants)


def _sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.sessions
    return found


async def viewer(request: Request, found: Found) -> Viewer:
    cookie = request.cookies.get(web_session.COOKIE)
    key = _sessions(request).open(cookie)
    back_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if key is None or cookie is None:
        raise SignInRequiredError(back_to)
    who = await run_in_threadpool(authenticate, found.keys, key)
    if who is None:  # revoked since sign-in
        raise SignInRequiredError(back_to)
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        try:
            limiter.check(who.key_id)
        except ApiError as exc:
            raise PageError(429, "Too many requests with this key: wait a moment.") from exc
    if not who.may(Permission.READ):
        raise PageError(
            403,
            f"A {who.role.value} key cannot read the ledger: sign in with a viewer, auditor "
            "or admin key.",
        )
    return Viewer(who, _sessions(request).csrf(cookie))


Signed = Annotated[Viewer, Depends(viewer)]


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error handling to the API app."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(SignInRequiredError, _sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(PageError, _page_error)  # type: ignore[arg-type]
    app.add_middleware(BaseHTTPMiddleware, dispatch=_security_headers)


async def _sign_in(request: Request, exc: SignInRequiredError) -> Response:
    target = "/ui/login?" + urlencode({"next": exc.back_to})
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(web_session.COOKIE, path=web_session.PATH)
    return response


async def _page_error(request: Request, exc: PageError) -> Response:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": exc.status, "message": exc.message, "pages": (), "viewer": None},
        status_code=exc.status,
    )


_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    if request.url.path.startswith("/ui"):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/ui/static"):
            headers.setdefault("Cache-Control", "no-store")
    return response


# --- helpers --------------------------------------------------------------------------------


def _page(
    request: Request,
    name: str,
    signed: Viewer | None,
    context: Mapping[str, Any],
    *,
    status: int = 200,
) -> Response:
    return templates.TemplateResponse(
        request,
        f"{name}.html",
        {"pages": PAGES, "current": name, "viewer": signed, **context},
        status_code=status,
    )


def _projectors(found: Services) -> Projectors:
    if found.projectors is None:
        raise PageError(503, "This server has no views configured.")
    return found.projectors


def _chosen_tenants(signed: Viewer, tenant: str | None) -> list[str] | None:
    if not tenant:
        return signed.tenants
    return signed.principal.visible([tenant])


def _tenant_choices(signed: Viewer, found: Services) -> list[str]:
    if not signed.principal.all_tenants:
        return sorted(signed.principal.tenants)
    views = _projectors(found).views
    return sorted(
        {*views.distinct("view_residency", "tenant"), *views.distinct("view_tranches", "tenant")}
    )


def _when(text: str | None, field: str, *, end: bool = False) -> datetime | None:
    """A ``YYYY-MM-DD`` date (UTC midnight; ``end``: the next midnight) or an ISO instant."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"'{text}' is not a date (YYYY-MM-DD)", field=field) from None
    if moment.tzinfo is None:
        raise ValidationError("a time needs a zone, e.g. 2026-11-02T00:00:00Z", field=field)
    return moment


def _age(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return f"{seconds} s ago"


def _stacked(
    points: Iterator[tuple[str, str, float]], *, top: int = CHART_SERIES
) -> dict[str, Any]:
    """(x label, series, value) points as a Chart.js stacked-bar dataset: the ``top`` series
    by total, the rest summed as "other"."""
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[str, float] = defaultdict(float)
    for x, series, value in points:
        table[x][series] += value
        totals[series] += value
    kept = sorted(totals, key=lambda name: -totals[name])[:top]
    labels = sorted(table)
    datasets = [{"label": name, "data": [table[x].get(name, 0) for x in labels]} for name in kept]
    if len(totals) > top:
        datasets.append(
            {
                "label": "other",
                "data": [sum(v for k, v in table[x].items() if k not in kept) for x in labels],
            }
        )
    return {"labels": labels, "datasets": datasets}


# --- sign-in --------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path of this dashboard: never another site (an open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui/"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    nonce = web_session.new_login_nonce()
    response = _page(
        request,
        "login",
        None,
        {"next": _safe_next(next), "csrf": _sessions(request).csrf(nonce), "error": None},
    )
    _set_cookie(request, response, web_session.LOGIN_COOKIE, nonce, max_age=3600)
    return response


@router.post("/login")
async def login(
    request: Request,
    found: Found,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui/",
) -> Response:
    sessions = _sessions(request)
    if not sessions.csrf_ok(request.cookies.get(web_session.LOGIN_COOKIE), csrf):
        raise PageError(403, "The sign-in form expired: open it again and sign in.")
    who = await run_in_threadpool(authenticate, found.keys, api_key.strip())
    if who is None:
        nonce = web_session.new_login_nonce()
        response = _page(
            request,
            "login",
            None,
            {
                "next": _safe_next(next),
                "csrf": sessions.csrf(nonce),
                "error": "That API key is not valid or was revoked.",
            },
            status=401,
        )
        _set_cookie(request, response, web_session.LOGIN_COOKIE, nonce, max_age=3600)
        return response
    if not who.may(Permission.READ):
        raise PageError(
            403,
            f"A {who.role.value} key cannot read the ledger: sign in with a viewer, auditor "
            "or admin key.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(
        request,
        response,
        web_session.COOKIE,
        sessions.seal(api_key.strip()),
        max_age=web_session.MAX_AGE_S,
    )
    response.delete_cookie(web_session.LOGIN_COOKIE, path=web_session.PATH)
    return response


@router.post("/logout")
def logout(request: Request, signed: Signed, csrf: Annotated[str, Form()] = "") -> Response:
    _check_csrf(request, csrf)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(web_session.COOKIE, path=web_session.PATH)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    found: Services = request.app.state.services
    secure = found.settings.session_cookie_secure
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=web_session.PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" if secure is None else secure,
    )


def _check_csrf(request: Request, token: str) -> None:
    if not _sessions(request).csrf_ok(request.cookies.get(web_session.COOKIE), token):
        raise PageError(403, "This form expired or did not come from this dashboard: reload it.")


def _require(signed: Viewer, permission: Permission, what: str) -> None:
    if not signed.principal.may(permission):
        raise PageError(403, f"A {signed.principal.role.value} key may not {what}.")


# --- overview -------------------------------------------------------------------------------


@router.get("/")
def overview(request: Request, signed: Signed, found: Found) -> Response:
    store = found.ledger.store
    now = utc_now()
    head = store.head()
    checkpoint = store.latest_checkpoint()
    projectors = _projectors(found)
    rows = queries.residency(projectors.views, tenants=signed.tenants)
    verification = found.verifications.latest() if found.verifications else None
    return _page(
        request,
        "overview",
        signed,
        {
            "head": head,
            "checkpoint": checkpoint,
            "checkpoint_age": _age(checkpoint.created_at, now) if checkpoint else None,
            "behind": head.size - checkpoint.tree_size if checkpoint else head.size,
            "verification": verification,
            "verification_age": _age(verification.finished_at, now) if verification else None,
            "status": projectors.status(),
            "summary": queries.residency_summary(rows),
            "violations": sum(1 for row in rows if row["status"] in VIOLATIONS),
            "may_verify": signed.principal.may(Permission.EXPORT),
        },
    )


@router.post("/verify")
async def verify_now(
    request: Request, signed: Signed, found: Found, csrf: Annotated[str, Form()] = ""
) -> Response:
    _check_csrf(request, csrf)
    _require(signed, Permission.EXPORT, "run a verification")
    if found.verifications is None:
        raise PageError(503, "This server cannot record verifications.")
    source = f"dashboard:{signed.principal.key_id}"
    with contextlib.suppress(LedgerError):  # recorded: the overview shows the failure
        await run_in_threadpool(
            verify_and_record,
            found.ledger,
            found.verifications,
            source,
            trusted=_checkpoint_verifiers(found),
        )
    return RedirectResponse("/ui/", status_code=303)


def _checkpoint_verifiers(found: Services) -> list[NoteVerifier]:
    """The key the ledger's checkpoints are signed with, to check them by: the API signs
    nothing, but the server may hold the signing key (PACTLEDGER_SIGNING_KEY) or be told the
    verifier key (PACTLEDGER_VERIFIER_KEY)."""
    settings = found.settings
    if settings.verifier_key:
        return [NoteVerifier.from_vkey(settings.verifier_key)]
    if settings.signing_key.exists():
        return [load_signer(settings.signing_key, settings.origin).verifier]
    raise PageError(
        503,
        "This server knows no checkpoint key to verify with: set PACTLEDGER_VERIFIER_KEY "
        "(the output of `pactledger key show`) or PACTLEDGER_SIGNING_KEY.",
    )


# --- residency ------------------------------------------------------------------------------


@router.get("/residency")
def residency(
    request: Request,
    signed: Signed,
    found: Found,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    violations_only: bool = False,
) -> Response:
    filters = {"tenant": tenant or "", "from": from_ or "", "to": to or "", "status": status or ""}
    context: dict[str, Any] = {
        "filters": filters,
        "violations_only": violations_only,
        "statuses": STATUSES,
        "tenants": _tenant_choices(signed, found),
        "rows": [],
        "total": 0,
        "summary": None,
        "chart": None,
        "error": None,
        "limit": LIST_LIMIT,
    }
    try:
        rows = queries.residency(
            _projectors(found).views,
            tenants=_chosen_tenants(signed, tenant),
            since=_when(from_, "from"),
            until=_when(to, "to", end=True),
            violations_only=violations_only,
            status=status or None,
        )
    except ValidationError as exc:
        context["error"] = str(exc)
        return _page(request, "residency", signed, context, status=422)
    context.update(
        rows=rows[:LIST_LIMIT],
        total=len(rows),
        summary=queries.residency_summary(rows),
        chart=_stacked(
            ((row["served_at"] or row["decided_at"] or "")[:10], row["status"], 1)
            for row in rows
            if row["status"] in VIOLATIONS
        ),
        violation_statuses=VIOLATIONS,
    )
    return _page(request, "residency", signed, context)


@router.get("/provenance/{request_id}")
def provenance(request: Request, signed: Signed, found: Found, request_id: str) -> Response:
    if len(request_id) > 200:
        raise PageError(404, "No such request.")
    try:
        found_request = request_provenance(
            found.ledger.store,
            found.ledger.catalogue,
            request_id=request_id,
            sees=signed.principal.sees,
        )
    except NotFoundError:
        raise PageError(404, f"No request '{request_id}' among your tenants' requests.") from None
    checkpoint = found_request.checkpoint
    entries = []
    for proven in found_request.entries:
        entry = proven.entry
        status, detail = _proof_status(proven.proof, checkpoint.root_hash if checkpoint else None)
        payload = json.loads(entry.entry_bytes)["payload"]
        entries.append(
            {
                "seq": entry.seq,
                "type": entry.type,
                "tenant": entry.tenant,
                "occurred_at": entry.occurred_at,
                "recorded_at": entry.recorded_at,
                "leaf_hash": entry.leaf_hash.hex(),
                "payload": json.dumps(payload, indent=2, sort_keys=True),
                "proof_status": status,
                "proof_detail": detail,
                "audit_path": [h.hex() for h in proven.proof.audit_path] if proven.proof else [],
            }
        )
    return _page(
        request,
        "provenance",
        signed,
        {"request_id": request_id, "checkpoint": checkpoint, "entries": entries},
    )


def _proof_status(proof: InclusionProof | None, root: bytes | None) -> tuple[str, str]:
    if proof is None or root is None:
        return "pending", "appended after the latest checkpoint: provable once one is signed"
    try:
        proof.verify()
    except LedgerError as exc:
        return "failed", f"the proof does not verify: {exc}"
    if proof.root_hash != root:
        return "failed", "the proof reaches another root than the signed checkpoint's"
    return (
        "verified",
        f"included in the signed checkpoint of {proof.tree_size:,} entries "
        f"({len(proof.audit_path)} hashes, checked in this page's server)",
    )


# --- chargeback -----------------------------------------------------------------------------


@router.get("/chargeback")
def chargeback(
    request: Request,
    signed: Signed,
    found: Found,
    by: Annotated[str, Query(max_length=40)] = "business_unit",
    month: Annotated[str | None, Query(max_length=20)] = None,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    context: dict[str, Any] = {
        "filters": {"by": by, "month": month or "", "tenant": tenant or ""},
        "groups": queries.CHARGEBACK_GROUPS,
        "tenants": _tenant_choices(signed, found),
        "totals": [],
        "chart": None,
        "error": None,
        "downloads": {},
    }
    try:
        queries.check_group(by)
        views = _projectors(found).views
        tenants = _chosen_tenants(signed, tenant)
        totals = queries.chargeback(views, by=by, month=month or None, tenants=tenants)
        rows = queries.chargeback_rows(views, month=month or None, tenants=tenants)
    except ValidationError as exc:
        context["error"] = str(exc)
        return _page(request, "chargeback", signed, context, status=422)
    query = {k: v for k, v in (("month", month), ("tenant", tenant)) if v}
    context.update(
        totals=totals,
        chart=_stacked((row["day"], str(row[by]), float(Decimal(row["cost"]))) for row in rows),
        downloads={
            "FOCUS 1.2 CSV": "/ui/chargeback.csv?" + urlencode({**query, "format": "focus"}),
            "daily rows CSV": "/ui/chargeback.csv?" + urlencode({**query, "format": "csv"}),
        },
    )
    return _page(request, "chargeback", signed, context)


@router.get("/chargeback.csv")
def chargeback_csv(
    signed: Signed,
    found: Found,
    format: Annotated[str, Query(pattern="^(csv|focus)$")] = "focus",
    month: Annotated[str | None, Query(max_length=20)] = None,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    try:
        rows = queries.chargeback_rows(
            _projectors(found).views, month=month or None, tenants=_chosen_tenants(signed, tenant)
        )
    except ValidationError as exc:
        raise PageError(422, str(exc)) from None
    text, name = queries.chargeback_csv(rows, focus=format == "focus", month=month or None)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- capacity and the estimator -------------------------------------------------------------


@router.get("/capacity")
def capacity(request: Request, signed: Signed, found: Found) -> Response:
    tranches = queries.tranches(_projectors(found).views, as_of=utc_now(), tenants=signed.tenants)
    tranches = [t for t in tranches if signed.principal.sees(t["tenant"])]
    chart = {
        "labels": [t["tranche_id"] for t in tranches],
        "datasets": [
            {"label": "GPUs contracted", "data": [t["gpus_contracted"] or 0 for t in tranches]},
            {"label": "GPUs delivered", "data": [t["gpus_delivered"] or 0 for t in tranches]},
            {"label": "GPUs retired", "data": [t["gpus_retired"] or 0 for t in tranches]},
        ],
    }
    return _page(request, "capacity", signed, {"tranches": tranches, "chart": chart})


@router.get("/estimator")
def estimator(request: Request, signed: Signed, found: Found) -> Response:
    views = _projectors(found).views
    reports = [
        report
        for report in reconcile(views, found.ledger.store, end=utc_now())
        if signed.principal.sees(report["tenant"])
    ]
    bars: list[dict[str, Any]] = []
    for report in reports:
        for bench in report["benchmarks"]:
            estimate = float(bench["estimated_tokens_per_s_per_gpu"] or 0)
            band = float(bench["band"] or 0)
            bars.append(
                {
                    "label": f"{report['tranche_id']} · {bench['benchmark_id'].rsplit('-', 1)[-1]}",
                    "estimated": estimate,
                    "measured": float(bench["measured_tokens_per_s_per_gpu"] or 0),
                    "low": estimate * (1 - band),
                    "high": estimate * (1 + band),
                }
            )
    chart = {
        "labels": [b["label"] for b in bars],
        "datasets": [
            {"label": "estimated", "data": [b["estimated"] for b in bars]},
            {"label": "measured", "data": [b["measured"] for b in bars]},
            {"label": "band low", "data": [b["low"] for b in bars], "type": "line"},
            {"label": "band high", "data": [b["high"] for b in bars], "type": "line"},
        ],
    }
    return _page(request, "estimator", signed, {"reports": reports, "chart": chart})


# --- exports --------------------------------------------------------------------------------


@router.get("/exports")
def exports(request: Request, signed: Signed, found: Found) -> Response:
    return _page(
        request,
        "exports",
        signed,
        {
            "tenants": _tenant_choices(signed, found),
            "may_export": signed.principal.may(Permission.EXPORT),
            "error": None,
            "form": {"tenants": [], "from": "", "to": "", "request_ids": ""},
        },
    )


@router.post("/exports")
async def create_export(
    request: Request,
    signed: Signed,
    found: Found,
    csrf: Annotated[str, Form()] = "",
    tenants: Annotated[list[str] | None, Form()] = None,
    from_: Annotated[str, Form(alias="from", max_length=40)] = "",
    to: Annotated[str, Form(max_length=40)] = "",
    request_ids: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    _check_csrf(request, csrf)
    _require(signed, Permission.EXPORT, "export bundles")
    # none ticked: every tenant the key may see (an all-tenants key: the whole log, the
    # governance entries of no customer tenant included)
    chosen = tenants or signed.tenants
    ids = [line.strip() for line in request_ids.replace(",", "\n").splitlines() if line.strip()]
    form = {"tenants": tenants or [], "from": from_, "to": to, "request_ids": request_ids}
    try:
        hidden = [t for t in chosen or () if not signed.principal.sees(t)]
        if hidden:
            raise ValidationError(f"not one of your tenants: {', '.join(hidden)}", field="tenant")
        path = await run_in_threadpool(
            _build_bundle, found, chosen, _when(from_, "from"), _when(to, "to", end=True), ids
        )
    except LedgerError as exc:
        return _page(
            request,
            "exports",
            signed,
            {
                "tenants": _tenant_choices(signed, found),
                "may_export": True,
                "error": str(exc),
                "form": form,
            },
            status=422,
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"pactledger-bundle-{stamp}.zip",
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )


def _build_bundle(
    found: Services,
    tenants: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    request_ids: Sequence[str],
) -> Path:
    from ledger.app.export import ExportScope, export_bundle, load_private_key

    settings = found.settings
    signer = load_signer(settings.signing_key, settings.origin)
    directory = Path(tempfile.mkdtemp(prefix="pactledger-ui-export-"))
    out = directory / "bundle.zip"
    try:
        export_bundle(
            store=found.ledger.store,
            views=_projectors(found).views,
            catalogue=found.ledger.catalogue,
            signer=signer,
            private_key=load_private_key(settings.signing_key),
            scope=ExportScope(
                tenants=None if tenants is None else list(tenants),
                occurred_from=since,
                occurred_to=until,
                request_ids=list(request_ids) or None,
            ),
            out=out,
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return out


def quoted(value: str) -> str:
    return quote(value, safe="")


templates.env.filters["quoted"] = quoted
