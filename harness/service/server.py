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

import logging
import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from harness.errors import ConfigError
from harness.service.app import create_app
from harness.service.config import ServiceConfig
from harness.service.state import ServiceState

__all__ = ["ServiceServer", "run_service"]

_BACKLOG = 4096
_log = logging.getLogger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only for sockets that
    # do, and with Nagle on each small SSE event could wait for a delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            where="service host/port",
            fix="pick another port, or port 0 for a free one",
        ) from exc
    sock.listen(_BACKLOG)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _uvicorn_config(app: Starlette, *, log: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        # None leaves the process's logging alone (tests, embedding); the CLI wants uvicorn's.
        log_config=LOGGING_CONFIG if log else None,
        log_level="warning",
        access_log=False,
        backlog=_BACKLOG,
        timeout_keep_alive=30,
        # Run streams end at once on shutdown (``_Server``); other requests get this long.
        timeout_graceful_shutdown=2,
    )


class _Server(uvicorn.Server):
    """Uvicorn, ending open run streams at once on shutdown instead of after its timeout."""

    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self.service_state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service_state.begin_shutdown()
        await super().shutdown(sockets=sockets)


class ServiceServer:
    """The agent service served by uvicorn on a background thread.

    ``url`` is ``http://127.0.0.1:PORT`` once started; ``state`` the live
    ``ServiceState`` (registry, telemetry, admission count). Use as a context
    manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, config: ServiceConfig | None = None) -> None:
        self.config = config or ServiceConfig()
        self._socket: socket.socket | None = None
        self._state: ServiceState | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running service."""
        if self._socket is None:
            raise RuntimeError("the service is not running; call start() first")
        return _url(self._socket)

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        if self._socket is None:
            raise RuntimeError("the service is not running; call start() first")
        return int(self._socket.getsockname()[1])

    @property
    def state(self) -> ServiceState:
        """Scenarios, executors, registry and telemetry of the running service."""
        if self._state is None:
            raise RuntimeError("the service is not running; call start() first")
        return self._state

    def start(self, timeout_s: float = 10.0) -> ServiceServer:
        """Load scenarios, bind, serve in a daemon thread; return once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the service is already running")
        self._state = ServiceState(self.config)  # config errors raise here, before binding
        try:
            self._socket = _bind(self.config.host, self.config.port)
        except BaseException:
            self._state.close()
            self._state = None
            raise
        app = create_app(self.config, self._state)
        self._server = _Server(_uvicorn_config(app, log=False), self._state)
        self._thread = threading.Thread(target=self._run, name="parabench-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the service failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the service did not start within {timeout_s} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread has nobody else to tell
            self._error = exc

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving: open run streams end with ``run.failed`` at once; flush spans."""
        server, thread, sock, state = self._server, self._thread, self._socket, self._state
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout_s)
        if sock is not None:
            sock.close()
        if state is not None:
            state.close()  # already done by the app's shutdown, unless it never started
        self._server = self._thread = self._socket = self._state = None

    def __enter__(self) -> ServiceServer:
        # Already started (``with ServiceServer(config).start() as server``) is fine too.
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_service(config: ServiceConfig | None = None) -> None:
    """Serve in the foreground: print the URL, then serve until Ctrl-C (or SIGTERM).

    Raises ``ScenarioError`` / ``ConfigError`` before binding when the
    scenarios or the provider settings are wrong, ``ConfigError`` when the
    address is taken; returns normally after Ctrl-C.
    """
    config = config or ServiceConfig()
    state = ServiceState(config)
    try:
        sock = _bind(config.host, config.port)
    except BaseException:
        state.close()
        raise
    try:
        url = _url(sock)
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
        if config.host not in ("127.0.0.1", "::1", "localhost"):
            print(f"warning: bound to {config.host}, not loopback only", file=sys.stderr)
        app = create_app(config, state)
        _Server(_uvicorn_config(app, log=True), state).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn already shut down gracefully; Ctrl-C is how this command ends
    finally:
        sock.close()
        state.close()
