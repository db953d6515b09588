"""A lean path for the busiest route, ``POST /v1/events``: the work of the FastAPI route
(:func:`api.routers.events.post_event`) without the framework's per-request machinery, which
cost more CPU than the append itself.

What it guarantees: it answers a request only with what the route would answer — the receipt
(201, or 200 for an idempotent retry, once the entry is durable) or a refusal by the ledger in
the one error shape of :mod:`api.errors`. Every other request — a key this process does not
remember from the last seconds (or not valid), a body the model refuses, a role or tenant the
key may not write for, an ``Idempotency-Key`` header that disagrees with the body, a content
type other than JSON — is handed to the route with its body unread by the route, and the route
answers with its documented error. The two paths therefore cannot disagree about an error, and
OpenAPI documents the route as before. It sits inside :class:`api.limits.BodyLimit` and
:class:`api.limits.RequireCredentials`, so bodies are bounded and anonymous writes refused
before it runs. A key over its rate (:mod:`api.rate_limit`) is answered 429 here when this
path would answer, else by the route; a request is counted once.
"""

from __future__ import annotations

import orjson
import pydantic
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.access import CachedKeyStore, Permission, Principal, authenticate_cached
from ledger.errors import LedgerError

from .errors import ApiError, error_body, ledger_error_response
from .limits import replaying
from .rate_limit import RateLimiter, rate_limited
from .schemas.events import EventIn, ReceiptOut
from .services import Services

PATH = "/v1/events"


class FastIngest:
    def __init__(
        self, app: ASGIApp, *, services: Services, limiter: RateLimiter | None = None
    ) -> None:
        self.app, self.services, self.limiter = app, services, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.services.keys
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or not isinstance(keys, CachedKeyStore)
        ):
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of a repeated header, as Starlette
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        writer = _writer(keys, headers)
        event = _event(headers, body) if writer is not None else None
        if writer is None or event is None or not writer.sees(event.tenant):
            await self.app(scope, replaying(body, receive), send)
            return
        wait = self.limiter.take(writer.key_id) if self.limiter is not None else None
        if wait is not None:  # counted here only when this path answers: the route counts its own
            refusal = rate_limited(wait)
            await _send_api_error(refusal, send)
            return
        entry = event.entry()
        header_key = headers.get(b"idempotency-key")
        if header_key is not None:
            entry["idempotency_key"] = header_key.decode("latin-1")
        try:
            receipt = await self.services.committer.submit(entry)
        except LedgerError as exc:
            await ledger_error_response(exc)(scope, receive, send)
            return
        answer = orjson.dumps(ReceiptOut.of(receipt).model_dump())
        await send(
            {
                "type": "http.response.start",
                "status": 200 if receipt.duplicate else 201,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


async def _send_api_error(refusal: ApiError, send: Send) -> None:
    answer = orjson.dumps(error_body(refusal.status, refusal.code, refusal.message))
    extra = [(k.lower().encode(), v.encode()) for k, v in (refusal.headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def _writer(keys: CachedKeyStore, headers: dict[bytes, bytes]) -> Principal | None:
    """The remembered principal of the Bearer key, if it may write; None means "ask the
    route"."""
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    who = authenticate_cached(keys, token.strip())
    return who if who is not None and who.may(Permission.WRITE) else None


def _event(headers: dict[bytes, bytes], body: bytes) -> EventIn | None:
    """The event, if the body is JSON the model takes and any ``Idempotency-Key`` header agrees
    with it; None means "ask the route"."""
    content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if content_type != b"application/json":
        return None
    try:
        event = EventIn.model_validate_json(body)
    except pydantic.ValidationError:
        return None
    header_key = headers.get(b"idempotency-key")
    if header_key is not None and event.idempotency_key not in (None, header_key.decode("latin-1")):
        return None
    return event
