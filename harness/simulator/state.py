"""What the simulator shares between requests: auth, fault draws, timing draws.

Timing is drawn exactly as ``harness.providers.simulated.SimulatedProvider``
draws it, so the two give the same latency for the same request key.
"""

from __future__ import annotations

import hmac
import random
from collections import Counter
from dataclasses import dataclass

import numpy as np

from harness.latency import LlmTiming, rng_for
from harness.simulator.config import FAULT_KINDS, SimulatorConfig
from harness.simulator.protocol import ApiError, ChatRequest
from harness.simulator.ratelimit import RateLimiter

__all__ = ["SimulatorState", "TimingPlan", "forced_rate_limit", "server_error"]

_DRAWN_FAULTS = ("500", "503", "hang", "disconnect")  # the order of config.fault_thresholds()


class SimulatorState:
    """Everything the simulator shares between requests; one per app, one event loop."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        scale = config.time_scale if config.scale_rate_limits else 0.0
        self.limiter = RateLimiter(config.rpm_limit, config.tpm_limit, time_scale=scale)
        # Separate generators, so sending a key on some requests does not shift the faults.
        self.timing_rng = np.random.default_rng([config.seed & 0xFFFFFFFF, 1])
        self.fault_rng = random.Random(config.seed)
        self.fault_thresholds = config.fault_thresholds()
        self.in_flight: Counter[str] = Counter()
        self.requests_total = 0
        # "ok", an error status ("429", "500" ...), "hang", "disconnect", "client_left".
        self.outcomes: Counter[str] = Counter()
        api_key = config.api_key.get_secret_value() if config.api_key else None
        self.expected_auth = f"Bearer {api_key}".encode() if api_key else None

    def check_auth(self, authorization: bytes | None) -> None:
        """Raise a 401 ``ApiError`` unless the bearer token matches (when one is configured)."""
        if self.expected_auth is None:
            return
        if not authorization:
            raise ApiError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                code="missing_api_key",
            )
        if not hmac.compare_digest(authorization, self.expected_auth):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def draw_fault(self, headers: dict[bytes, bytes]) -> str:
        """The fault of this request: the test header's, else a seeded draw."""
        forced = headers.get(b"x-parabench-fault")
        if forced is not None:
            kind = forced.decode(errors="replace").strip().lower()
            if kind not in FAULT_KINDS:
                raise ApiError(
                    400,
                    f"Header 'x-parabench-fault' must be one of {', '.join(FAULT_KINDS)}, "
                    f"got {kind!r}.",
                    param="x-parabench-fault",
                    code="invalid_header",
                )
            return kind
        if self.fault_thresholds[-1] <= 0:
            return "none"
        draw = self.fault_rng.random()
        for kind, threshold in zip(_DRAWN_FAULTS, self.fault_thresholds, strict=True):
            if draw < threshold:
                return kind
        return "none"

    def timing(self, request: ChatRequest, plan: TimingPlan) -> LlmTiming:
        """Draw the request's timing exactly as ``SimulatedProvider.chat`` does.

        Call it with the request counted in ``in_flight`` (the provider counts
        itself too), then apply the plan's test overrides.
        """
        profile = self.config.profile(request.model)
        assert profile is not None  # unknown strict models were refused earlier
        rng = self.timing_rng if plan.rng is None else plan.rng
        timing = profile.sample(
            rng, request.input_tokens, request.output_tokens, self.in_flight[request.model]
        )
        if plan.ttft_ms is None and plan.itl_ms is None:
            return timing
        ttft_s = timing.ttft_s if plan.ttft_ms is None else plan.ttft_ms / 1000.0
        itl_s = timing.itl_s if plan.itl_ms is None else plan.itl_ms / 1000.0
        total_s = ttft_s + itl_s * max(request.output_tokens - 1, 0)
        return LlmTiming(ttft_s=ttft_s, itl_s=itl_s, total_s=total_s)


@dataclass(frozen=True, slots=True)
class TimingPlan:
    """Where a request's timing comes from: its key's generator (or the server's), overrides."""

    rng: np.random.Generator | None
    ttft_ms: float | None
    itl_ms: float | None

    @classmethod
    def from_headers(cls, headers: dict[bytes, bytes]) -> TimingPlan:
        """Read ``x-parabench-key`` and the TTFT/ITL overrides; raise ``ApiError`` if malformed."""
        key = headers.get(b"x-parabench-key")
        return cls(
            rng=None if key is None else _rng_from_key(key),
            ttft_ms=_header_float(headers, b"x-parabench-ttft-ms"),
            itl_ms=_header_float(headers, b"x-parabench-itl-ms"),
        )


def _rng_from_key(raw: bytes) -> np.random.Generator:
    parts = raw.decode(errors="replace").split(":")
    try:
        if len(parts) != 4 or not parts[2]:
            raise ValueError
        seed, run_index, attempt = int(parts[0]), int(parts[1]), int(parts[3])
    except ValueError:
        raise ApiError(
            400,
            "Header 'x-parabench-key' must be SEED:RUN_INDEX:STEP_ID:ATTEMPT (integers around "
            f"a step id without ':'), got {raw.decode(errors='replace')!r}.",
            param="x-parabench-key",
            code="invalid_header",
        ) from None
    return rng_for(seed, run_index, parts[2], attempt + 1)


def _header_float(headers: dict[bytes, bytes], name: bytes) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise ApiError(
            400,
            f"Header '{name.decode()}' must be a non-negative number of milliseconds.",
            param=name.decode(),
            code="invalid_header",
        )
    return value


def forced_rate_limit(config: SimulatorConfig) -> ApiError:
    """The 429 of ``x-parabench-fault: 429``: retry after one model second."""
    retry_s = config.time_scale if config.scale_rate_limits else 1.0
    return ApiError(
        429,
        "Rate limit reached (forced by the x-parabench-fault header).",
        type="rate_limit_exceeded",
        code="rate_limit_exceeded",
        headers=[
            (b"retry-after", f"{retry_s:.3f}".encode()),
            (b"retry-after-ms", str(round(retry_s * 1000)).encode()),
        ],
    )


def server_error(status: int) -> ApiError:
    """A simulated 500 or 503, shaped as OpenAI's."""
    if status == 503:
        return ApiError(
            503,
            "The server is overloaded or not ready yet (simulated).",
            type="server_error",
            code="service_unavailable",
        )
    return ApiError(
        500,
        "The server had an error while processing your request (simulated).",
        type="server_error",
    )
