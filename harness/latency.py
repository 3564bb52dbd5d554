"""The latency model shared by every simulated provider.

One model, two users: the in-process simulated provider (``harness.providers.
simulated``) and the OpenAI-compatible HTTP simulator both draw their timings
here, so a scenario gives the same latency distribution either way.

An LLM call takes ``ttft + (output_tokens - 1) * itl``, where

* ``ttft = ttft_ms + prefill_ms_per_1k_input * input_tokens / 1000``,
* both parts are multiplied by one seeded lognormal jitter factor (median 1,
  ``jitter_sigma``), and now and then (``tail_prob``) by ``tail_factor``,
* and by a slowdown factor once the number of concurrent requests nears
  ``capacity`` (unbounded capacity: no slowdown).

Randomness is seeded per (seed, run, step, attempt), never by call order, so a
run is reproducible whatever the scheduling.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_PROFILES",
    "GENERIC_PROFILE",
    "LatencyProfile",
    "LlmTiming",
    "profile_for",
    "rng_for",
]


class LatencyProfile(BaseModel):
    """How fast one model answers (all times in milliseconds of real time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_ms: float = Field(500.0, ge=0, description="median time to first token")
    prefill_ms_per_1k_input: float = Field(80.0, ge=0, description="extra TTFT per 1k input tokens")
    itl_ms: float = Field(12.0, ge=0, description="median inter-token latency")
    jitter_sigma: float = Field(0.08, ge=0, le=3, description="lognormal sigma of the jitter")
    tail_prob: float = Field(0.0, ge=0, le=1, description="chance of a slow-tail request")
    tail_factor: float = Field(3.0, ge=1, description="slow-tail multiplier")
    capacity: int | None = Field(
        None, ge=1, description="concurrent requests at which the model saturates"
    )

    def slowdown(self, in_flight: int) -> float:
        """Multiplier on latency with ``in_flight`` concurrent requests.

        Below half the capacity nothing changes; from there latency grows
        quadratically and doubles at capacity, the shape a batching server
        shows as its batch fills. Beyond capacity it keeps growing.
        """
        if self.capacity is None or in_flight <= 0:
            return 1.0
        load = in_flight / self.capacity
        if load <= 0.5:
            return 1.0
        return 1.0 + 4.0 * (load - 0.5) ** 2

    def sample(
        self,
        rng: np.random.Generator,
        input_tokens: int,
        output_tokens: int,
        in_flight: int = 0,
    ) -> LlmTiming:
        """Draw the timing of one call (seconds of real time, unscaled)."""
        factor = 1.0
        if self.jitter_sigma > 0:
            factor = math.exp(rng.normal(0.0, self.jitter_sigma))
        if self.tail_prob > 0 and rng.random() < self.tail_prob:
            factor *= self.tail_factor
        factor *= self.slowdown(in_flight)
        ttft_ms = (self.ttft_ms + self.prefill_ms_per_1k_input * input_tokens / 1000.0) * factor
        itl_ms = self.itl_ms * factor
        decode_ms = itl_ms * max(output_tokens - 1, 0)
        return LlmTiming(
            ttft_s=ttft_ms / 1000.0, itl_s=itl_ms / 1000.0, total_s=(ttft_ms + decode_ms) / 1000.0
        )

    def median_duration_s(self, input_tokens: float, output_tokens: float) -> float:
        """The call's duration with no jitter, tail or load: the scenario's theory."""
        ttft = self.ttft_ms + self.prefill_ms_per_1k_input * input_tokens / 1000.0
        return (ttft + self.itl_ms * max(output_tokens - 1, 0)) / 1000.0


@dataclass(frozen=True, slots=True)
class LlmTiming:
    """One simulated call: time to first token, inter-token latency, total."""

    ttft_s: float
    itl_s: float
    total_s: float


GENERIC_PROFILE = LatencyProfile()

# Orders of magnitude seen on public hosted APIs; a scenario can override any of
# them under `models:`. Matching is by exact name, then by longest prefix.
DEFAULT_PROFILES: dict[str, LatencyProfile] = {
    "gpt-4o-mini": LatencyProfile(ttft_ms=350, prefill_ms_per_1k_input=40, itl_ms=9),
    "gpt-4o": LatencyProfile(ttft_ms=500, prefill_ms_per_1k_input=70, itl_ms=16),
    "gpt-4.1-mini": LatencyProfile(ttft_ms=350, prefill_ms_per_1k_input=40, itl_ms=9),
    "gpt-4.1": LatencyProfile(ttft_ms=500, prefill_ms_per_1k_input=70, itl_ms=15),
    "o4-mini": LatencyProfile(ttft_ms=2500, prefill_ms_per_1k_input=60, itl_ms=8),
    "claude-3-5-haiku": LatencyProfile(ttft_ms=450, prefill_ms_per_1k_input=40, itl_ms=12),
    "claude-sonnet-4": LatencyProfile(ttft_ms=900, prefill_ms_per_1k_input=60, itl_ms=18),
}


def profile_for(model: str, overrides: dict[str, LatencyProfile] | None = None) -> LatencyProfile:
    """The latency profile of ``model``: a scenario override, a default, or the generic one."""
    if overrides and model in overrides:
        return overrides[model]
    if model in DEFAULT_PROFILES:
        return DEFAULT_PROFILES[model]
    matches = [name for name in DEFAULT_PROFILES if model.startswith(name)]
    if matches:
        return DEFAULT_PROFILES[max(matches, key=len)]
    return GENERIC_PROFILE


def rng_for(seed: int, run_index: int, step_id: str, attempt: int = 0) -> np.random.Generator:
    """A generator seeded by what the draw is for, never by call order."""
    key = zlib.crc32(step_id.encode("utf-8"))
    return np.random.default_rng([seed & 0xFFFFFFFF, run_index & 0xFFFFFFFF, key, attempt])
