"""In-process simulated LLM provider and tools: asyncio sleeps drawn from the latency model."""

from __future__ import annotations

import asyncio
from collections import Counter

from harness.clock import monotonic_s
from harness.errors import ProviderError
from harness.latency import LatencyProfile, profile_for, rng_for
from harness.providers.base import LlmCall, LlmResponse, ToolCall, ToolResult

__all__ = ["SimulatedProvider", "SimulatedTools"]


class SimulatedProvider:
    """Answers LLM calls after the time ``harness.latency`` draws for them.

    Deterministic for a given (seed, run, step, attempt). ``time_scale``
    (from the call) shrinks every sleep by the same factor, so a 25 s scenario
    runs in 0.25 s with the same ratios. A call with ``fail_rate`` fails that
    share of attempts part-way through, as ``simulated_error``.
    """

    name = "parabench.simulated"

    def __init__(self, profiles: dict[str, LatencyProfile] | None = None) -> None:
        self._profiles = profiles or {}
        self._in_flight: Counter[str] = Counter()

    async def chat(self, call: LlmCall) -> LlmResponse:
        profile = call.latency_profile
        if not isinstance(profile, LatencyProfile):
            profile = profile_for(call.model, self._profiles)
        rng = rng_for(call.seed, call.run_index, call.step_id, call.attempt + 1)
        self._in_flight[call.model] += 1
        try:
            timing = profile.sample(
                rng, call.input_tokens, call.output_tokens, self._in_flight[call.model]
            )
            fails = call.fail_rate > 0 and rng.random() < call.fail_rate
            started = monotonic_s()
            await asyncio.sleep(timing.ttft_s * call.time_scale)
            ttft_s = monotonic_s() - started
            if fails:
                # Fail half-way through the stream, as a dropped connection would.
                await asyncio.sleep((timing.total_s - timing.ttft_s) * call.time_scale / 2)
                raise ProviderError(
                    f"simulated failure of step '{call.step_id}' (attempt {call.attempt + 1})",
                    error_type="simulated_error",
                )
            await asyncio.sleep((timing.total_s - timing.ttft_s) * call.time_scale)
        finally:
            self._in_flight[call.model] -= 1
        return LlmResponse(
            response_model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            ttft_s=ttft_s,
        )

    async def aclose(self) -> None:
        return None


class SimulatedTools:
    """Tools that take the latency the scenario declares, and can fail on demand."""

    async def run(self, call: ToolCall) -> ToolResult:
        if call.fail:
            await asyncio.sleep(call.latency_s * call.time_scale / 2)
            raise ProviderError(
                f"simulated failure of tool '{call.tool}' in step '{call.step_id}'",
                error_type="simulated_error",
            )
        await asyncio.sleep(call.latency_s * call.time_scale)
        return ToolResult()
