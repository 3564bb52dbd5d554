"""Settings of the OpenAI-compatible simulator server.

One pydantic model, ``SimulatorConfig``, holds everything the server needs:
where to listen, how fast models answer (``harness.latency`` profiles), how
often requests fail and how, and the rate limits. Unknown fields are refused,
so a typo in a config file fails loudly instead of being ignored::

    config = SimulatorConfig(
        time_scale=0.01,
        profiles={"gpt-4o": LatencyProfile(ttft_ms=400, itl_ms=10)},
        rpm_limit=600,
        error_503_rate=0.02,
    )
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from harness.latency import DEFAULT_PROFILES, LatencyProfile, profile_for
from harness.settings import load_json_settings

__all__ = ["FAULT_KINDS", "SimulatorConfig", "load_config"]

#: Values the ``x-parabench-fault`` request header accepts.
FAULT_KINDS = ("500", "503", "429", "hang", "disconnect", "none")


class SimulatorConfig(BaseModel):
    """How the simulator listens, how fast it answers and how it misbehaves.

    Times in latency profiles are model time; ``time_scale`` multiplies every
    sleep (0.01 runs a 2.5 s answer in 25 ms with the same proportions). Rate
    limits are per model and, with ``scale_rate_limits`` (the default), count
    model time too, so a scaled run sees the same share of 429s as a real-time
    one; ``Retry-After`` and the ``x-ratelimit-reset-*`` headers are always in
    real seconds, what the client must actually wait.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="interface to bind; loopback by default")
    port: int = Field(0, ge=0, le=65535, description="TCP port; 0 picks a free one")
    time_scale: float = Field(1.0, ge=0, description="multiplier on every simulated sleep")
    profiles: dict[str, LatencyProfile] = Field(
        default_factory=dict, description="latency profile per model, over the defaults"
    )
    strict_models: bool = Field(
        False, description="answer 404 model_not_found for models without a profile"
    )
    chunk_tokens: int = Field(16, ge=1, description="tokens per streamed content chunk")
    default_output_tokens: int = Field(
        256, ge=0, description="output tokens when the request sets no max_tokens"
    )
    max_output_tokens: int = Field(
        65_536, ge=1, description="larger max_tokens (or x-parabench-output-tokens) get 400"
    )
    rpm_limit: float | None = Field(None, gt=0, description="requests per minute, per model")
    tpm_limit: float | None = Field(
        None, gt=0, description="input + output tokens per minute, per model"
    )
    scale_rate_limits: bool = Field(
        True, description="rate-limit windows in model time (× time_scale) rather than real time"
    )
    error_500_rate: float = Field(0.0, ge=0, le=1, description="share of requests answered 500")
    error_503_rate: float = Field(0.0, ge=0, le=1, description="share of requests answered 503")
    hang_rate: float = Field(0.0, ge=0, le=1, description="share of requests that hang")
    hang_s: float = Field(
        600.0, ge=0, description="how long a hung request sleeps (real seconds, unscaled)"
    )
    scale_hang: bool = Field(False, description="multiply hang_s by time_scale as well")
    disconnect_rate: float = Field(
        0.0, ge=0, le=1, description="share of requests whose connection drops mid-answer"
    )
    seed: int = Field(0, description="seeds fault draws and the timing of requests without a key")
    # A SecretStr, so the key never shows in a repr or a log line.
    api_key: SecretStr | None = Field(None, description="bearer token required on /v1 when set")
    max_body_bytes: int = Field(1 << 20, ge=1, description="larger request bodies get 413")

    @model_validator(mode="after")
    def _fault_rates_fit(self) -> SimulatorConfig:
        total = self.error_500_rate + self.error_503_rate + self.hang_rate + self.disconnect_rate
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"fault rates add up to {total:g}, more than 1; lower error_500_rate, "
                "error_503_rate, hang_rate or disconnect_rate"
            )
        return self

    def profile(self, model: str) -> LatencyProfile | None:
        """The latency profile of ``model``; None when strict and the model is unknown."""
        if self.strict_models and not self.knows(model):
            return None
        return profile_for(model, self.profiles)

    def knows(self, model: str) -> bool:
        """Whether ``model`` has a profile of its own (override, default, or prefix of one)."""
        if model in self.profiles or model in DEFAULT_PROFILES:
            return True
        return any(model.startswith(name) for name in DEFAULT_PROFILES)

    def model_names(self) -> list[str]:
        """The models ``GET /v1/models`` lists: the overrides, then the defaults."""
        names = list(self.profiles)
        names.extend(name for name in DEFAULT_PROFILES if name not in self.profiles)
        return names

    def fault_thresholds(self) -> tuple[float, float, float, float]:
        """Cumulative fault rates (500, 503, hang, disconnect) for one uniform draw."""
        first = self.error_500_rate
        second = first + self.error_503_rate
        third = second + self.hang_rate
        return first, second, third, third + self.disconnect_rate

    def hang_seconds(self) -> float:
        """Real seconds a hung request sleeps."""
        return self.hang_s * self.time_scale if self.scale_hang else self.hang_s


def load_config(source: str | None = None, **overrides: object) -> SimulatorConfig:
    """Build a config from inline JSON or a JSON file, then apply ``overrides``.

    ``source`` is either a JSON object (``'{"time_scale": 0.1}'``) or the path
    of a file holding one; None starts from the defaults. Overrides set to
    None are ignored, so command-line options left unset keep the file's value.
    """
    return load_json_settings(
        SimulatorConfig,
        source,
        overrides,
        what="simulator",
        example='{"time_scale": 0.1}',
        reference="harness.simulator.SimulatorConfig",
    )
