"""The seams between the executor and whatever does the work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LlmCall",
    "LlmProvider",
    "LlmResponse",
    "ProviderConfig",
    "ToolCall",
    "ToolResult",
    "ToolRunner",
]


@dataclass(frozen=True, slots=True)
class LlmCall:
    """One attempt of an LLM step.

    ``input_tokens`` / ``output_tokens`` are what the scenario asks for; a real
    endpoint answers with its own usage, which is what gets recorded.
    ``seed``, ``run_index`` and ``attempt`` seed simulated randomness.
    """

    step_id: str
    model: str
    input_tokens: int
    output_tokens: int
    seed: int
    run_index: int
    attempt: int
    time_scale: float = 1.0
    fail_rate: float = 0.0
    timeout_s: float | None = None
    latency_profile: object | None = None  # a LatencyProfile for simulated providers
    #: The step's own prompt text (``prompt:``); None sends filler only.
    prompt: str | None = None
    #: Return the answer's text in ``LlmResponse.content`` (content capture is on).
    capture_content: bool = False


@dataclass(frozen=True, slots=True)
class LlmResponse:
    """What one successful attempt returned; times in real seconds."""

    response_model: str
    input_tokens: int
    output_tokens: int
    ttft_s: float | None
    finish_reason: str = "stop"
    content: str | None = None
    #: False when the endpoint sent no usage and the requested counts stand in for it.
    usage_reported: bool = True


class LlmProvider(Protocol):
    """Anything that can answer an ``LlmCall``: simulated or over HTTP."""

    #: ``gen_ai.provider.name`` of its spans and metrics.
    name: str

    async def chat(self, call: LlmCall) -> LlmResponse:
        """Do one attempt; raise ``ProviderError`` when it fails."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One attempt of a tool step; ``latency_s`` is the scenario's drawn latency."""

    step_id: str
    tool: str
    latency_s: float
    fail: bool
    time_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer (simulated tools return nothing but time)."""

    output: str | None = None


class ToolRunner(Protocol):
    async def run(self, call: ToolCall) -> ToolResult:
        """Run one attempt; raise ``ProviderError`` when it fails."""
        ...


ProviderKind = Literal["simulated", "simulator", "openai"]


class ProviderConfig(BaseModel):
    """Where llm steps go, and the client-side limits on the way.

    Set under ``provider:`` in a scenario file, in a ``parabench serve``
    config, or with ``parabench run --provider/--base-url/--max-in-flight/--rpm``
    (command-line values win over the scenario's).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProviderKind = "simulated"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    name: str | None = Field(None, description="gen_ai.provider.name to record")
    timeout_s: float = Field(60.0, gt=0)
    max_in_flight: int | None = Field(None, ge=1)
    rpm_limit: float | None = Field(None, gt=0)
    tpm_limit: float | None = Field(None, gt=0)
