"""The agent service: the system under test for load (``parabench serve``).

``POST /v1/runs`` runs a scenario variant and streams its cards back as
Server-Sent Events as each step completes; ``GET /metrics`` exposes the
harness metrics; ``GET /`` is a live demo of the progressive-results
trade-off. The event contract is documented in ``harness.service.sse``::

    from harness.service import ServiceConfig, ServiceServer

    with ServiceServer(ServiceConfig(port=0, time_scale=0.05)) as server:
        with httpx.stream("POST", f"{server.url}/v1/runs",
                          json={"scenario": "research_assistant", "variant": "parallel"}) as r:
            parser = harness.sse.SseParser()
            for chunk in r.iter_raw():
                for event in parser.feed(chunk):
                    print(event.event, event.json())

Modules: ``config`` (settings), ``sse`` (the event contract and encoder;
the parser is ``harness.sse``), ``state`` (scenarios, executors, provider, telemetry), ``runs``
(``POST /v1/runs``), ``app`` (the ASGI app), ``server`` (threaded server,
foreground command). The server stack loads only when ``create_app``,
``ServiceServer`` or ``run_service`` is first used, so a client can import
the contract without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.service.config import ServiceConfig, load_config

if TYPE_CHECKING:
    from harness.service.app import create_app
    from harness.service.server import ServiceServer, run_service

__all__ = [
    "ServiceConfig",
    "ServiceServer",
    "create_app",
    "load_config",
    "run_service",
]

_LAZY = {
    "create_app": "harness.service.app",
    "ServiceServer": "harness.service.server",
    "run_service": "harness.service.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'harness.service' has no attribute {name!r}")
