"""Checks on a request before any route parses it.

* :class:`BodyLimit`: a declared Content-Length over the limit is refused at once; a body
  without one (chunked) is read and counted first, refused as soon as it passes the limit, and
  otherwise handed to the app as it came.
* :class:`RequireCredentials`: an anonymous write is refused before its body is read.
* :class:`RefuseNul`: a NUL character in the path or a query parameter (``%00``) is refused
  with 422 ``validation_error`` (``field``: the parameter): no name in the ledger holds one,
  and PostgreSQL text cannot hold one (the driver would fail the query).
* :class:`StrictJson`: a JSON body with a duplicate object key (which every JSON parser here
  would read as "the last one wins", so a reviewer of the bytes and the ledger could disagree
  on what was sent), nested too deeply to parse, or not UTF-8 is refused with 422
  ``validation_error`` before a route reads it. Other malformed JSON goes on to the route,
  which names the character at fault.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.integrity.canonical import DuplicateNameError, unique_names

from .errors import NO_KEY, error_body


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that delivers ``body`` (already read from ``receive``) as one message,
    then whatever ``receive`` says next (a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        if declared is not None:
            # The server enforces Content-Length framing: a body cannot be longer.
            await self.app(scope, receive, send)
            return
        # No length declared (chunked): read it all, counting, before the app sees any of it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body(413, "too_large", f"the request body exceeds {self.max_bytes} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequireCredentials:
    """A write to ``/v1`` without any ``Authorization`` header is refused with 401 before its
    body is read, so an unauthenticated caller learns nothing from body validation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/v1/")
            and b"authorization" not in dict(scope["headers"])
        ):
            body = json.dumps(error_body(401, "unauthenticated", NO_KEY)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def json_refusal(body: bytes) -> str | None:
    """Why ``body`` must be refused before it is parsed for a route, or None."""
    try:
        json.loads(body, object_pairs_hook=unique_names)
    except DuplicateNameError as exc:
        shown = exc.key if len(exc.key) <= 64 else exc.key[:64] + "…"
        return f"the body is not valid JSON for the ledger: key {shown!r} twice in one object"
    except RecursionError:
        return "the body is not valid JSON for the ledger: nested too deeply"
    except UnicodeDecodeError:
        return "the body is not valid JSON: it is not UTF-8 text"
    except ValueError:  # other malformed JSON: the route says where
        return None
    return None


class StrictJson:
    """Refuses the JSON bodies :func:`json_refusal` names (``/v1`` POSTs with a JSON content
    type and no content encoding; OTLP decodes its own bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _json_post(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        why = json_refusal(body)
        if why is not None:
            await _refuse(send, error_body(422, "validation_error", why))
            return
        await self.app(scope, replaying(body, receive), send)


async def _refuse(send: Send, body: dict[str, Any]) -> None:
    """Answer 422 with the standard error body, before the route (nothing is read or written)."""
    answer = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


def _json_post(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    path: str = scope["path"]
    if not path.startswith("/v1/") or path.startswith("/v1/otlp/"):
        return False
    headers: dict[bytes, bytes] = dict(scope["headers"])
    if b"content-encoding" in headers:
        return False
    content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return content_type == b"application/json" or content_type.endswith(b"+json")


class RefuseNul:
    """Refuses a request with a NUL character in its path or query (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = _nul_field(scope)
            if field is not None:
                message = "must not contain a NUL character"
                await _refuse(
                    send, error_body(422, "validation_error", message, field=field or None)
                )
                return
        await self.app(scope, receive, send)


def _nul_field(scope: Scope) -> str | None:
    """The query parameter holding a NUL, "" for the path, None when there is none."""
    if "\x00" in scope["path"]:
        return ""
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "")
    return None
