"""Where an agent's steps get done: LLM providers and tool runners.

An LLM provider turns one ``LlmCall`` into an ``LlmResponse`` or raises a
``ProviderError`` for that attempt; the executor owns retries, spans and
metrics, so every provider gets the same instrumentation.

* ``SimulatedProvider`` — in process, timings from ``harness.latency``.
* an OpenAI-compatible HTTP provider (real endpoints and the built-in simulator).
"""

from __future__ import annotations

from harness.providers.base import LlmCall, LlmProvider, LlmResponse, ToolCall, ToolRunner
from harness.providers.simulated import SimulatedProvider, SimulatedTools

__all__ = [
    "LlmCall",
    "LlmProvider",
    "LlmResponse",
    "SimulatedProvider",
    "SimulatedTools",
    "ToolCall",
    "ToolRunner",
]
