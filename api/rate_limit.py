"""Per-key rate limits: one token bucket per API key id (``PACTLEDGER_API_RATE_LIMIT``).

A bucket holds at most ``burst`` tokens (twice the rate, at least one) and refills at ``rate``
tokens per second; every authenticated request takes one. An empty bucket refuses with 429
``rate_limited`` and a ``Retry-After`` header (whole seconds until a token is back), before the
request's body is parsed or anything is written. Buckets are per process (each API worker
counts its own) and per key: one noisy key does not slow another. A rate of 0 turns limiting
off. Requests without a valid key are not counted here: they never reach a bucket.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from .errors import ApiError

MAX_BUCKETS = 100_000  # bounded memory; only valid keys get a bucket, so this is never near


class RateLimiter:
    """Token buckets keyed by API key id. Thread-safe."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be 0 (off) or positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key id → (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key_id: str) -> float | None:
        """Take a token for ``key_id``: None when granted, else the seconds until one is."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                if len(self._buckets) >= MAX_BUCKETS and key_id not in self._buckets:
                    self._buckets.clear()
                self._buckets[key_id] = (tokens - 1, now)
                return None
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / self.rate

    def check(self, key_id: str) -> None:
        """Raise the 429 :class:`~api.errors.ApiError` when ``key_id`` is over its rate."""
        wait = self.take(key_id)
        if wait is not None:
            raise rate_limited(wait)


def rate_limited(wait: float) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        "too many requests for this API key; retry after the Retry-After seconds",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )
