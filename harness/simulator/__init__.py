"""An OpenAI-compatible LLM provider on loopback, timed by ``harness.latency``.

parabench exercises the real ``openai`` client path against it: streamed and
whole chat completions, seeded latency identical to the in-process
``SimulatedProvider`` for the same request key, per-model rate limits with
OpenAI's headers, and faults on demand (500, 503, hangs, dropped connections)::

    from harness.simulator import SimulatorConfig, SimulatorServer

    with SimulatorServer(SimulatorConfig(time_scale=0.05)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])

Modules: ``config`` (settings), ``protocol`` (OpenAI wire shapes and token
accounting), ``ratelimit`` (RPM/TPM buckets), ``app`` (the ASGI app),
``server`` (threaded server, foreground command).
"""

from __future__ import annotations

from harness.simulator.app import SimulatedDisconnect, create_app
from harness.simulator.config import SimulatorConfig, load_config
from harness.simulator.server import SimulatorServer, main, run_simulator
from harness.simulator.state import SimulatorState

__all__ = [
    "SimulatedDisconnect",
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorState",
    "create_app",
    "load_config",
    "main",
    "run_simulator",
]
