"""Bearer API keys: who is calling and what they may do (roles in :mod:`ledger.access`).

Missing or bad key → 401 (with ``WWW-Authenticate: Bearer``); a key over its rate
(:mod:`api.rate_limit`) → 429 with ``Retry-After``; a role without the permission → 403; a
tenant outside the key's scope → 403 on writes, 404 on reads (an id of another tenant must not
be told apart from an id that does not exist).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger.access import Permission, Principal, authenticate

from .errors import NO_KEY, ApiError
from .rate_limit import RateLimiter
from .services import Services, services

_bearer = HTTPBearer(auto_error=False, description="An API key: `pactledger keys create`")


def principal(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the authenticated principal, which must hold ``permission``."""

    async def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        found: Services = Depends(services),  # noqa: B008
    ) -> Principal:
        if credentials is None:
            raise ApiError(
                401,
                "unauthenticated",
                NO_KEY,
                headers={"WWW-Authenticate": "Bearer"},
            )
        who = await run_in_threadpool(authenticate, found.keys, credentials.credentials)
        if who is None:
            raise ApiError(
                401,
                "unauthenticated",
                "the API key is not valid or was revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None:
            limiter.check(who.key_id)
        if not who.may(permission):
            raise ApiError(403, "forbidden", f"a {who.role.value} key may not {permission.value}")
        if permission is Permission.MIRROR and not who.all_tenants:
            raise ApiError(403, "forbidden", "reading every entry needs an all-tenants key")
        request.state.principal = who
        return who

    return check


def require_tenant_write(who: Principal, tenant: str, *, index: int | None = None) -> None:
    if not who.sees(tenant):
        raise ApiError(
            403,
            "forbidden",
            f"key {who.key_id} may not write for tenant '{tenant}'",
            field="tenant",
            index=index,
        )
