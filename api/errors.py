"""One place that turns errors into HTTP responses, with one stable JSON shape::

    {"error": {"status": 422, "code": "validation_error", "message": "…",
               "field": "payload.model", "index": 3}}

``field`` (the input at fault, dotted) and ``index`` (the entry's position in a batch) appear
when known. Codes are stable; messages are for people. Secrets never appear in messages.

=====================================  ======  =========================
error                                  status  code
=====================================  ======  =========================
ValidationError, PolicyError           422     validation_error / policy_error
EstimateError (estimator data)         422     estimate_error
unknown route parameter values         422     validation_error
missing or bad API key                 401     unauthenticated
role may not                           403     forbidden
NotFoundError (also other tenants')    404     not_found
ConcurrencyError                       409     concurrency_conflict
IdempotencyConflictError               409     idempotency_conflict
body or batch too large                413     too_large
key over its rate limit                429     rate_limited (+ Retry-After)
StoreUnavailableError                  503     unavailable (+ Retry-After)
ConfigurationError                     503     not_ready
IntegrityError                         500     integrity_error
=====================================  ======  =========================
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import (
    ConcurrencyError,
    ConfigurationError,
    IdempotencyConflictError,
    IntegrityError,
    LedgerError,
    NotFoundError,
    PolicyError,
    StoreUnavailableError,
    ValidationError,
)
from ledger.estimator.errors import EstimateError

RETRY_AFTER_SECONDS = 2
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
NO_KEY = "send an API key as 'Authorization: Bearer <key>'"


class ApiError(Exception):
    """An HTTP-level refusal raised by the API itself (auth, limits)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.index, self.headers = field, index, headers


def error_body(
    status: int, code: str, message: str, *, field: str | None = None, index: int | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if field is not None:
        error["field"] = field
    if index is not None:
        error["index"] = index
    return {"error": error}


# Most specific first: the first class the error is an instance of gives status and code.
_STATUS: tuple[tuple[type[LedgerError], int, str], ...] = (
    (ValidationError, 422, "validation_error"),
    (PolicyError, 422, "policy_error"),
    (EstimateError, 422, "estimate_error"),
    (NotFoundError, 404, "not_found"),
    (ConcurrencyError, 409, "concurrency_conflict"),
    (IdempotencyConflictError, 409, "idempotency_conflict"),
    (StoreUnavailableError, 503, "unavailable"),
    (ConfigurationError, 503, "not_ready"),
    (IntegrityError, 500, "integrity_error"),
)


def _ledger_status(exc: LedgerError) -> tuple[int, str]:
    return next(
        ((status, code) for kind, status, code in _STATUS if isinstance(exc, kind)),
        (500, "ledger_error"),
    )


def ledger_error_response(exc: LedgerError) -> JSONResponse:
    status, code = _ledger_status(exc)
    message = getattr(exc, "reason", None) or str(exc)
    if isinstance(exc, StoreUnavailableError):
        message = "the database is unavailable; retry after a moment"  # no driver details
    body = error_body(
        status, code, message, field=getattr(exc, "field", None), index=getattr(exc, "index", None)
    )
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def _ledger(_: Request, exc: LedgerError) -> JSONResponse:
        return ledger_error_response(exc)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        body = error_body(exc.status, exc.code, exc.message, field=exc.field, index=exc.index)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        location = [str(part) for part in first.get("loc", ())]
        index = None
        # ("body", "events", 3, "payload") → index 3, field "payload"
        if len(location) > 2 and location[:2] == ["body", "events"] and location[2].isdigit():
            index = int(location[2])
            location = location[3:]
        elif location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]
        field = ".".join(location) or None
        message = str(first.get("msg", "invalid request"))
        if first.get("type") == "json_invalid":  # the location is a character offset
            context = first.get("ctx")
            detail = context.get("error", "") if isinstance(context, dict) else ""
            where = f" at character {location[0]}" if location else ""
            message = f"the body is not valid JSON ({detail}{where})"
            field = None
        return JSONResponse(
            error_body(422, "validation_error", message, field=field, index=index), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            # FastAPI's answer to a body it could not decode (not UTF-8, nested too deeply):
            # the same answer as any other body that is not JSON
            message = "the body is not valid JSON (not UTF-8, or nested too deeply)"
            return JSONResponse(error_body(422, "validation_error", message), status_code=422)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(exc.status_code, code, str(exc.detail)), status_code=exc.status_code
        )
