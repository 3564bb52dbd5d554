"""Running the simulator: in a background thread, or in the foreground until Ctrl-C.

From tests and the harness, a context manager that serves on a free port::

    with SimulatorServer(SimulatorConfig(time_scale=0.01)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="test")
        ...

From the command line (``parabench simulator`` or ``python -m harness.simulator``),
``run_simulator(config)`` prints the base URL and serves until interrupted.

The socket is bound before uvicorn starts, so the port (even port 0) is known
and connections queue from the first moment; uvicorn's h11 protocol and the
plain asyncio loop are used, whatever else is installed, so timings do not
depend on optional packages.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from harness.errors import ConfigError, ParabenchError
from harness.simulator.app import SimulatedDisconnect, create_app
from harness.simulator.config import SimulatorConfig, load_config
from harness.simulator.state import SimulatorState

__all__ = ["SimulatorServer", "main", "run_simulator"]

_BACKLOG = 4096


class _DropSimulatedDisconnects(logging.Filter):
    """Keeps uvicorn from logging a traceback for every disconnect simulated on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedDisconnect))


def _quiet_simulated_disconnects() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropSimulatedDisconnects) for f in logger.filters):
        logger.addFilter(_DropSimulatedDisconnects())


def _bind(config: SimulatorConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only for sockets that
    # do, and with Nagle on, a header write then a body write stalls on delayed ACKs (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror}",
            where="simulator host/port",
            fix="pick another port, or port 0 for a free one",
        ) from exc
    sock.listen(_BACKLOG)
    sock.setblocking(False)
    return sock


def _uvicorn_config(app: Starlette, *, log: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="off",
        # None leaves the process's logging alone (tests, embedding); the CLI wants uvicorn's.
        log_config=LOGGING_CONFIG if log else None,
        log_level="warning",
        access_log=False,
        backlog=_BACKLOG,
        timeout_keep_alive=30,
        # A hung request must not hold shutdown for its whole hang.
        timeout_graceful_shutdown=2,
    )


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class SimulatorServer:
    """The simulator served by uvicorn on a background thread.

    ``url`` is the OpenAI base URL (``http://127.0.0.1:PORT/v1``) once
    started; ``state`` the live ``SimulatorState`` (in-flight counts,
    outcomes). Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._socket: socket.socket | None = None
        self._app: Starlette | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without the ``/v1`` prefix."""
        if self._socket is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return _url(self._socket)

    @property
    def url(self) -> str:
        """The OpenAI ``base_url``: ``http://HOST:PORT/v1``."""
        return self.base_url + "/v1"

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        if self._socket is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return int(self._socket.getsockname()[1])

    @property
    def state(self) -> SimulatorState:
        """The app's shared state: in-flight counts per model, outcomes, the config."""
        if self._app is None:
            raise RuntimeError("the simulator is not running; call start() first")
        state: SimulatorState = self._app.state.simulator
        return state

    def start(self, timeout_s: float = 10.0) -> SimulatorServer:
        """Bind, start serving in a daemon thread, and return once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        _quiet_simulated_disconnects()
        self._socket = _bind(self.config)
        self._app = create_app(self.config)
        self._server = uvicorn.Server(_uvicorn_config(self._app, log=False))
        self._thread = threading.Thread(target=self._run, name="parabench-simulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the simulator failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator did not start within {timeout_s} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread has nobody else to tell
            self._error = exc

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving: finish or cancel open requests, close the socket, join the thread."""
        server, thread, sock = self._server, self._thread, self._socket
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout_s)
        if sock is not None:
            sock.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SimulatorServer:
        # Already started (``with SimulatorServer(config).start() as server``) is fine too.
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_simulator(config: SimulatorConfig | None = None) -> None:
    """Serve in the foreground: print the base URL, then serve until Ctrl-C (or SIGTERM).

    Returns normally after Ctrl-C; raises ``ConfigError`` when the address is taken.
    """
    config = config or SimulatorConfig()
    _quiet_simulated_disconnects()
    sock = _bind(config)
    try:
        print(f"parabench simulator listening on {_url(sock)}/v1", flush=True)
        if config.host not in ("127.0.0.1", "::1", "localhost"):
            print(f"warning: bound to {config.host}, not loopback only", file=sys.stderr)
        uvicorn.Server(_uvicorn_config(create_app(config), log=True)).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn already shut down gracefully; Ctrl-C is how this command ends
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.simulator``: the same as ``parabench simulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.simulator",
        description="OpenAI-compatible simulated LLM provider (loopback by default).",
    )
    parser.add_argument("--config", help="SimulatorConfig as inline JSON or a JSON file path")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 0: a free one)")
    parser.add_argument("--time-scale", type=float, help="multiplier on every simulated sleep")
    parser.add_argument("--seed", type=int, help="seed of fault draws and keyless timings")
    args = parser.parse_args(argv)
    try:
        config = load_config(
            args.config, host=args.host, port=args.port, time_scale=args.time_scale, seed=args.seed
        )
        run_simulator(config)
    except ParabenchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0
