"""Running the agent service: in a background thread, or in the foreground until Ctrl-C.

From tests and the harness, a context manager that serves on a free port::

    with ServiceServer(ServiceConfig(port=0, time_scale=0.05)) as server:
        httpx.post(f"{server.url}/v1/runs", json={...})

From the command line (``parabench serve``), ``run_service(config)`` prints
the URL and serves until interrupted.

The socket is bound before uvicorn starts, so the port (even port 0) is
known and connections queue from the first moment. Uvicorn runs its h11
protocol on the plain asyncio loop, whatever else is installed, so timings
do not depend on optional packages.
"""

from __future__ import annotations

import gc
import socket

import uvicorn
from starlette.types import ASGIApp

from harness.service.app import create_app
from harness.service.config import ServiceConfig
from harness.service.state import ServiceState
from harness.serving import (
    BackgroundServer,
    bind_socket,
    socket_url,
    uvicorn_config,
    warn_unless_loopback,
)

__all__ = ["ServiceServer", "run_service"]


class _Server(uvicorn.Server):
    """Uvicorn, ending open run streams at once on shutdown instead of after its timeout."""

    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self.service_state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service_state.begin_shutdown()
        await super().shutdown(sockets=sockets)


class ServiceServer(BackgroundServer[ServiceConfig]):
    """The agent service served by uvicorn on a background thread.

    ``url`` is ``http://127.0.0.1:PORT`` once started; ``state`` the live
    ``ServiceState`` (registry, telemetry, admission count). Use as a context
    manager, or call ``start()`` and ``stop()``.
    """

    name = "service"
    lifespan = "on"

    def __init__(self, config: ServiceConfig | None = None) -> None:
        super().__init__(config or ServiceConfig())
        self._state: ServiceState | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running service."""
        return self._base_url

    @property
    def state(self) -> ServiceState:
        """Scenarios, executors, registry and telemetry of the running service."""
        if self._state is None:
            raise self._not_running()
        return self._state

    def _prepare(self) -> ASGIApp:
        # Loads scenarios and the provider: config errors raise here, before binding.
        self._state = ServiceState(self.config)
        return create_app(self.config, self._state)

    def _make_server(self, app: ASGIApp) -> uvicorn.Server:
        assert self._state is not None
        return _Server(uvicorn_config(app, log=False, lifespan=self.lifespan), self._state)

    def _cleanup(self) -> None:
        if self._state is not None:
            self._state.close()  # already done by the app's shutdown, unless it never started
        self._state = None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving: open run streams end with ``run.failed`` at once; flush spans."""
        super().stop(timeout_s)


def run_service(config: ServiceConfig | None = None) -> None:
    """Serve in the foreground: print the URL, then serve until Ctrl-C (or SIGTERM).

    Raises ``ScenarioError`` / ``ConfigError`` before binding when the
    scenarios or the provider settings are wrong, ``ConfigError`` when the
    address is taken; returns normally after Ctrl-C.
    """
    config = config or ServiceConfig()
    if config.gc_threshold is not None:
        # The whole process is ours here (never in ServiceServer, which runs inside others).
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(config.gc_threshold, max(gen1, 20), max(gen2, 100))
    state = ServiceState(config)
    try:
        sock = bind_socket(config.host, config.port, what="service")
    except BaseException:
        state.close()
        raise
    try:
        url = socket_url(sock)
        print(f"parabench service listening on {url}", flush=True)
        print(
            f"  scenarios: {', '.join(state.scenarios)}; provider: {state.provider.name}; "
            f"time scale: {config.time_scale:g}; max in flight: {config.max_in_flight}",
            flush=True,
        )
        if state.simulator_url:
            print(f"  built-in simulator: {state.simulator_url}", flush=True)
        print(f"  demo page: {url}/   metrics: {url}/metrics", flush=True)
        if config.spans_path is not None:
            print(f"  spans: {config.spans_path}", flush=True)
        warn_unless_loopback(
            config.host, guarded=config.api_key is not None, key_env="PARABENCH_API_KEY"
        )
        app = create_app(config, state)
        _Server(uvicorn_config(app, log=True, lifespan="on"), state).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn already shut down gracefully; Ctrl-C is how this command ends
    finally:
        sock.close()
        state.close()
