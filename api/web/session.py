"""Dashboard sessions: the API key a person signed in with, sealed in a cookie, and the CSRF
tokens of their forms.

Guarantees:

* The cookie holds the API key only encrypted and authenticated (AES-256-GCM under the
  server's session secret, with the issue time inside): nobody who reads or edits the
  cookie learns the key or makes a valid one. It is ``HttpOnly`` (no script reads it),
  ``SameSite=Strict`` (no other site's page sends it), ``Secure`` over HTTPS, scoped to
  ``/ui``, and expires after ``MAX_AGE_S``.
* Every request re-authenticates the key inside (:func:`ledger.access.authenticate`), so a
  revoked key's sessions end at once, and the key's role and tenants decide what the pages
  show exactly as they decide what the API answers.
* Every form that changes something carries a token bound to the session (HMAC-SHA256 of the
  cookie under the secret); a POST without the right one is refused before it does anything.
  The sign-in form, before any session, binds its token to a random pre-session cookie.
* The secret comes from ``PACTLEDGER_SESSION_SECRET`` (``pactledger serve`` makes one for
  its worker processes when it is unset); without one each process draws its own, and a
  restart signs everyone out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

COOKIE = "pactledger_session"
LOGIN_COOKIE = "pactledger_signin"
PATH = "/ui"
MAX_AGE_S = 12 * 3600
_AAD = b"pactledger dashboard session v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Sessions:
    """Seals and opens session cookies and makes and checks CSRF tokens."""

    secret: bytes  # 32 bytes

    @classmethod
    def from_text(cls, text: str | None) -> Sessions:
        """From ``PACTLEDGER_SESSION_SECRET`` (any text, hashed to 32 bytes), or a fresh
        random secret when there is none."""
        if not text:
            return cls(secrets.token_bytes(32))
        return cls(hashlib.sha256(b"pactledger-session:" + text.encode()).digest())

    def _key(self, purpose: bytes) -> bytes:
        return hmac.new(self.secret, purpose, hashlib.sha256).digest()

    def seal(self, api_key: str, *, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        nonce = secrets.token_bytes(12)
        plain = json.dumps({"k": api_key, "t": issued}, separators=(",", ":")).encode()
        sealed = AESGCM(self._key(b"seal")).encrypt(nonce, plain, _AAD)
        return _b64(nonce + sealed)

    def open(self, cookie: str | None, *, now: float | None = None) -> str | None:
        """The API key inside a cookie this server sealed and that has not expired, else
        None (never an exception: a bad cookie is just no session)."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            raw = _unb64(cookie)
            plain = AESGCM(self._key(b"seal")).decrypt(raw[:12], raw[12:], _AAD)
            data = json.loads(plain)
            key, issued = str(data["k"]), int(data["t"])
        except (ValueError, KeyError, TypeError, InvalidTag):
            return None
        age = (time.time() if now is None else now) - issued
        return key if 0 <= age < MAX_AGE_S else None

    def csrf(self, bound_to: str) -> str:
        """The form token for the session (or pre-session) cookie ``bound_to``."""
        return _b64(hmac.new(self._key(b"csrf"), bound_to.encode(), hashlib.sha256).digest())

    def csrf_ok(self, bound_to: str | None, token: str | None) -> bool:
        if not bound_to or not token:
            return False
        return hmac.compare_digest(self.csrf(bound_to), token)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)
