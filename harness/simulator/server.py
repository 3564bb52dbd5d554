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
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from harness.errors import ParabenchError
from harness.serving import (
    BackgroundServer,
    bind_socket,
    socket_url,
    uvicorn_config,
    warn_unless_loopback,
)
from harness.simulator.app import SimulatedDisconnect, create_app
from harness.simulator.config import SimulatorConfig, load_config
from harness.simulator.state import SimulatorState

__all__ = ["SimulatorServer", "main", "run_simulator"]


class _DropSimulatedDisconnects(logging.Filter):
    """Keeps uvicorn from logging a traceback for every disconnect simulated on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SimulatedDisconnect))


def _quiet_simulated_disconnects() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropSimulatedDisconnects) for f in logger.filters):
        logger.addFilter(_DropSimulatedDisconnects())


class SimulatorServer(BackgroundServer[SimulatorConfig]):
    """The simulator served by uvicorn on a background thread.

    ``url`` is the OpenAI base URL (``http://127.0.0.1:PORT/v1``) once
    started; ``state`` the live ``SimulatorState`` (in-flight counts,
    outcomes). Use as a context manager, or call ``start()`` and ``stop()``.
    """

    name = "simulator"
    lifespan = "off"

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__(config or SimulatorConfig())
        self._app: Starlette | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without the ``/v1`` prefix."""
        return self._base_url

    @property
    def url(self) -> str:
        """The OpenAI ``base_url``: ``http://HOST:PORT/v1``."""
        return self.base_url + "/v1"

    @property
    def state(self) -> SimulatorState:
        """The app's shared state: in-flight counts per model, outcomes, the config."""
        if self._app is None:
            raise self._not_running()
        state: SimulatorState = self._app.state.simulator
        return state

    def _prepare(self) -> ASGIApp:
        _quiet_simulated_disconnects()
        # Kept after stop(), so ``state`` still tells what the run did.
        self._app = create_app(self.config)
        return self._app

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving: finish or cancel open requests, close the socket, join the thread."""
        super().stop(timeout_s)


def run_simulator(config: SimulatorConfig | None = None) -> None:
    """Serve in the foreground: print the base URL, then serve until Ctrl-C (or SIGTERM).

    Returns normally after Ctrl-C; raises ``ConfigError`` when the address is taken.
    """
    config = config or SimulatorConfig()
    _quiet_simulated_disconnects()
    sock = bind_socket(config.host, config.port, what="simulator")
    try:
        print(f"parabench simulator listening on {socket_url(sock)}/v1", flush=True)
        warn_unless_loopback(
            config.host,
            guarded=config.api_key is not None,
            key_env="PARABENCH_SIMULATOR_API_KEY",
        )
        app = create_app(config)
        uvicorn.Server(uvicorn_config(app, log=True, lifespan="off")).run(sockets=[sock])
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
