"""Per-model request and token rate limits, as OpenAI enforces them.

Each model has two token buckets that refill continuously: one of
``rpm_limit`` requests and one of ``tpm_limit`` tokens (a request is charged
its input plus its output tokens up front, as providers reserve
``max_tokens``). A request passes only if both buckets hold enough; otherwise
nothing is charged and the answer is 429 with the time until both would.

Time in the buckets: by default model time, i.e. real time divided by the
server's ``time_scale``. A run scaled to 1 % of real time then sees the same
share of 429s, at the same points of the run, as the unscaled run, which is
the point of scaling. Everything told to the client (``Retry-After``,
``retry-after-ms``, ``x-ratelimit-reset-*``) is converted back to real
seconds, because that is what the client waits. ``scale_rate_limits=False``,
or ``time_scale=0``, counts real time instead.

The headers follow OpenAI's names and formats::

    x-ratelimit-limit-requests: 60        x-ratelimit-limit-tokens: 150000
    x-ratelimit-remaining-requests: 59    x-ratelimit-remaining-tokens: 149000
    x-ratelimit-reset-requests: 1s        x-ratelimit-reset-tokens: 400ms
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RateLimitDecision", "RateLimiter", "TokenBucket", "format_duration"]

Headers = list[tuple[bytes, bytes]]


class TokenBucket:
    """A bucket of ``capacity`` units refilled at ``capacity`` per minute, starting full."""

    __slots__ = ("capacity", "level", "rate_per_s", "updated_s")

    def __init__(self, capacity: float, now_s: float) -> None:
        self.capacity = capacity
        self.rate_per_s = capacity / 60.0
        self.level = capacity
        self.updated_s = now_s

    def refill(self, now_s: float) -> None:
        """Add what flowed in since the last call (time going backwards adds nothing)."""
        elapsed = max(now_s - self.updated_s, 0.0)
        self.level = min(self.capacity, self.level + elapsed * self.rate_per_s)
        self.updated_s = max(now_s, self.updated_s)

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` units are available; inf if it exceeds the capacity."""
        if amount > self.capacity:
            return math.inf
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.rate_per_s

    def take(self, amount: float) -> None:
        """Remove ``amount`` units (the caller checked ``wait_s`` first)."""
        self.level -= amount

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        return max(self.capacity - self.level, 0.0) / self.rate_per_s


@dataclass(slots=True)
class RateLimitDecision:
    """Whether one request may proceed, and the headers to send either way.

    ``retry_after_s`` is in real seconds; None when allowed, and when the
    request can never pass (more tokens than the whole per-minute budget).
    """

    allowed: bool
    headers: Headers = field(default_factory=list)
    retry_after_s: float | None = None
    limit_kind: str | None = None  # "requests" or "tokens" when refused
    message: str = ""


class RateLimiter:
    """RPM and TPM buckets per model; one instance per server, one event loop.

    ``clock`` returns real seconds (monotonic); ``time_scale`` converts them to
    model time (``model = real / time_scale``) when positive.
    """

    def __init__(
        self,
        rpm_limit: float | None,
        tpm_limit: float | None,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm_limit = rpm_limit
        self.tpm_limit = tpm_limit
        self._scale = time_scale if time_scale > 0 else 1.0
        self._clock = clock
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured (no limits: no headers either)."""
        return self.rpm_limit is not None or self.tpm_limit is not None

    def check(self, model: str, tokens: int) -> RateLimitDecision:
        """Charge one request of ``tokens`` tokens to ``model``, or refuse it."""
        if not self.enabled:
            return RateLimitDecision(allowed=True)
        now = self._clock() / self._scale
        requests = self._bucket(self._requests, self.rpm_limit, model, now)
        token_bucket = self._bucket(self._tokens, self.tpm_limit, model, now)

        waits: list[tuple[float, str]] = []
        if requests is not None:
            waits.append((requests.wait_s(1), "requests"))
        if token_bucket is not None:
            waits.append((token_bucket.wait_s(tokens), "tokens"))
        wait, kind = max(waits)
        if wait <= 0:
            if requests is not None:
                requests.take(1)
            if token_bucket is not None:
                token_bucket.take(tokens)
            return RateLimitDecision(allowed=True, headers=self._headers(requests, token_bucket))

        headers = self._headers(requests, token_bucket)
        if math.isinf(wait):
            message = (
                f"Request too large for {model}: {tokens} tokens requested, the limit is "
                f"{self.tpm_limit:g} tokens per minute. Send fewer input tokens or a lower "
                "max_tokens."
            )
            return RateLimitDecision(False, headers, None, kind, message)
        retry_after = wait * self._scale
        limit = self.rpm_limit if kind == "requests" else self.tpm_limit
        message = (
            f"Rate limit reached for {model} on {kind} per minute: limit {limit:g}. "
            f"Please try again in {format_duration(retry_after)}."
        )
        headers.append((b"retry-after", f"{retry_after:.3f}".encode()))
        headers.append((b"retry-after-ms", str(math.ceil(retry_after * 1000)).encode()))
        return RateLimitDecision(False, headers, retry_after, kind, message)

    def _bucket(
        self, buckets: dict[str, TokenBucket], limit: float | None, model: str, now: float
    ) -> TokenBucket | None:
        if limit is None:
            return None
        bucket = buckets.get(model)
        if bucket is None:
            bucket = buckets[model] = TokenBucket(limit, now)
        else:
            bucket.refill(now)
        return bucket

    def _headers(self, requests: TokenBucket | None, tokens: TokenBucket | None) -> Headers:
        headers: Headers = []
        for name, bucket in ((b"requests", requests), (b"tokens", tokens)):
            if bucket is None:
                continue
            headers.append((b"x-ratelimit-limit-" + name, f"{bucket.capacity:g}".encode()))
            remaining = max(math.floor(bucket.level), 0)
            headers.append((b"x-ratelimit-remaining-" + name, str(remaining).encode()))
            reset = format_duration(bucket.reset_s() * self._scale)
            headers.append((b"x-ratelimit-reset-" + name, reset.encode()))
        return headers


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI writes it in headers: ``20ms``, ``1.5s``, ``6m0s``."""
    seconds = max(seconds, 0.0)
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60.0:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m{rest:.3g}s"
