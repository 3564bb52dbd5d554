"""Client-side limits: a concurrency cap and request/token rate budgets.

A team that runs branches in parallel usually also keeps its own budget below
the provider's rate limit. Time a step spends waiting here before its first
attempt is queue time (``parabench.step.queue_ms``), apart from service time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["ClientLimiter", "TokenBucket"]


class TokenBucket:
    """A continuously refilling bucket of ``per_minute`` units."""

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.capacity = float(per_minute)
        self.rate_per_s = per_minute / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate_per_s)
        self.stamp = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if now); takes it when it is."""
        self._refill()
        amount = min(amount, self.capacity)
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate_per_s


class ClientLimiter:
    """At most ``max_in_flight`` calls at once, and optional RPM / TPM budgets."""

    def __init__(
        self,
        max_in_flight: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._rpm = TokenBucket(rpm) if rpm else None
        self._tpm = TokenBucket(tpm) if tpm else None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[None]:
        """Hold a slot for one call of ``tokens`` tokens, waiting for budgets first."""
        if self._rpm or self._tpm:
            async with self._lock:  # first come, first served
                for bucket, amount in ((self._rpm, 1.0), (self._tpm, float(tokens))):
                    if bucket is None:
                        continue
                    while (wait := bucket.wait_s(amount)) > 0:
                        await asyncio.sleep(wait)
        if self._slots is None:
            yield
            return
        async with self._slots:
            yield
