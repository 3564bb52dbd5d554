"""Choose and build the LLM provider of a run from command-line or scenario settings.

Kinds:

* ``simulated`` — in process (asyncio sleeps from the latency model); the
  fastest and the default of ``parabench run``.
* ``simulator`` — the built-in OpenAI-compatible HTTP simulator, started on a
  free loopback port for the duration of the job, called with the official
  ``openai`` client: the real client path, still on the embedded default.
* ``openai`` — any OpenAI-compatible endpoint: ``--base-url`` or
  ``OPENAI_BASE_URL`` (default OpenAI's API), key from ``OPENAI_API_KEY``.
  Without a key for a remote endpoint it fails before any run starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.latency import LatencyProfile
from harness.providers.base import LlmProvider, ProviderConfig
from harness.providers.limits import ClientLimiter
from harness.providers.simulated import SimulatedProvider
from harness.scenario import Scenario

if TYPE_CHECKING:
    from harness.simulator import SimulatorServer

__all__ = ["ProviderConfig", "build_provider", "open_provider"]


def _limiter(config: ProviderConfig) -> ClientLimiter | None:
    if not (config.max_in_flight or config.rpm_limit or config.tpm_limit):
        return None
    return ClientLimiter(config.max_in_flight, config.rpm_limit, config.tpm_limit)


def build_provider(
    config: ProviderConfig,
    profiles: dict[str, LatencyProfile],
    *,
    time_scale: float = 1.0,
) -> tuple[LlmProvider, SimulatorServer | None]:
    """Build the provider; for kind ``simulator`` also start the HTTP simulator.

    ``profiles`` are the scenario's latency overrides (the simulator serves them).
    The caller stops the returned simulator when done (``open_provider`` does).
    """
    if config.kind == "simulated":
        if config.base_url:
            raise ConfigError(
                "a base URL has no effect with the in-process simulated provider",
                where="provider",
                fix="use the 'openai' provider kind (--provider openai) to call that endpoint",
            )
        return SimulatedProvider(profiles), None
    from harness.providers.openai_compat import OpenAICompatProvider

    if config.kind == "openai":
        provider = OpenAICompatProvider.from_env(
            base_url=config.base_url,
            api_key_env=config.api_key_env,
            name=config.name,
            timeout_s=config.timeout_s,
            limiter=_limiter(config),
        )
        return provider, None
    from harness.simulator import SimulatorConfig, SimulatorServer

    server = SimulatorServer(SimulatorConfig(time_scale=time_scale, profiles=profiles)).start()
    provider = OpenAICompatProvider(
        base_url=server.url,
        api_key="unused",
        simulator=True,
        name=config.name,
        timeout_s=config.timeout_s,
        limiter=_limiter(config),
    )
    return provider, server


@contextlib.contextmanager
def open_provider(
    config: ProviderConfig, scenario: Scenario, *, time_scale: float = 1.0
) -> Iterator[LlmProvider]:
    """Build the provider (starting the HTTP simulator if asked) and stop what it started.

    The provider's own connections are closed by the executor's owner (``aclose``),
    inside the event loop that used them.
    """
    provider, server = build_provider(config, scenario.latency_overrides, time_scale=time_scale)
    try:
        yield provider
    finally:
        if server is not None:
            server.stop()
