"""Serving an ASGI app with uvicorn: on a background thread, or in the foreground.

Shared by the simulator (``harness.simulator.server``) and the agent service
(``harness.service.server``). A subclass of ``BackgroundServer`` serves on a
daemon thread from tests and the harness::

    class EchoServer(BackgroundServer[EchoConfig]):
        name = "echo"

        def _prepare(self) -> ASGIApp:
            return create_echo_app(self.config)

    with EchoServer(EchoConfig(port=0)) as server:
        httpx.get(f"http://127.0.0.1:{server.port}/")

A foreground command binds with ``bind_socket``, prints ``socket_url`` and runs
``uvicorn.Server(uvicorn_config(app, log=True, lifespan=...))`` on the socket.

The socket is bound before uvicorn starts, so the port (even port 0) is known
and connections queue from the first moment. Uvicorn runs its h11 protocol on
the plain asyncio loop, whatever else is installed, so timings do not depend
on optional packages. This module imports uvicorn: only the server modules
import it, never ``import harness``.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Protocol, Self, TypeVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from harness.errors import ConfigError

__all__ = [
    "BACKLOG",
    "BackgroundServer",
    "Lifespan",
    "ListenConfig",
    "bind_socket",
    "socket_url",
    "uvicorn_config",
    "warn_unless_loopback",
]

#: Connections the kernel queues before uvicorn accepts them.
BACKLOG = 4096

#: uvicorn's ``lifespan`` setting: "on" runs the app's startup/shutdown handlers.
Lifespan = Literal["auto", "on", "off"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def bind_socket(host: str, port: int, *, what: str) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (port 0: a free one).

    ``what`` names the server in the error ("simulator", "service"). Raises
    ``ConfigError`` naming the address and the fix when it cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only for sockets that
    # do, and with Nagle on, small writes (an SSE event, a header then a body) stall
    # on delayed ACKs (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            where=f"{what} host/port",
            fix="pick another port, or port 0 for a free one",
        ) from exc
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def socket_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def uvicorn_config(app: ASGIApp, *, log: bool, lifespan: Lifespan) -> uvicorn.Config:
    """Uvicorn settings for ``app``: h11 on asyncio, no access log, a 2 s graceful stop.

    ``log`` False leaves the process's logging alone (tests, embedding); the
    CLI passes True for uvicorn's own. ``lifespan`` is "on" when the app has
    startup/shutdown handlers to run, "off" when it has none.
    """
    return uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan=lifespan,
        log_config=LOGGING_CONFIG if log else None,
        log_level="warning",
        access_log=False,
        backlog=BACKLOG,
        timeout_keep_alive=30,
        # A hung request must not hold shutdown for its whole hang (the service
        # also ends its run streams at once, before this applies).
        timeout_graceful_shutdown=2,
    )


def warn_unless_loopback(host: str, *, guarded: bool = True, key_env: str = "") -> None:
    """Warn on stderr when ``host`` is reachable from other machines (louder when unguarded)."""
    if host in _LOOPBACK:
        return
    print(f"warning: bound to {host}, not loopback only", file=sys.stderr)
    if not guarded:
        print(
            "warning: no API key is set, so anyone who can reach this port can use it; "
            f"set {key_env or 'an API key'} (clients then send 'Authorization: Bearer <key>')",
            file=sys.stderr,
        )


class ListenConfig(Protocol):
    """What ``BackgroundServer`` reads from its config: where to listen."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


_Config = TypeVar("_Config", bound=ListenConfig)


class BackgroundServer(Generic[_Config]):
    """An app served by uvicorn on a daemon thread; subclass it per app.

    ``start()`` calls ``_prepare()`` (build the app and its state; errors
    raise here, before binding), binds ``config.host``/``config.port``, builds
    the ``uvicorn.Server`` with ``_make_server(app)``, and returns once it
    accepts requests. ``stop()`` asks uvicorn to exit, forces it when that
    takes too long, closes the socket and calls ``_cleanup()``. Use as a
    context manager, started or not.
    """

    #: Names the server in messages and the thread ("parabench-<name>").
    name: ClassVar[str] = "server"
    #: uvicorn's ``lifespan`` setting for the default ``_make_server``.
    lifespan: ClassVar[Lifespan] = "off"

    def __init__(self, config: _Config) -> None:
        self.config = config
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # Hooks for subclasses.

    def _prepare(self) -> ASGIApp:
        """Build the app (and any state) before binding; every subclass overrides it."""
        raise NotImplementedError

    def _make_server(self, app: ASGIApp) -> uvicorn.Server:
        """The uvicorn server for ``app``; override for a ``uvicorn.Server`` subclass."""
        return uvicorn.Server(uvicorn_config(app, log=False, lifespan=self.lifespan))

    def _cleanup(self) -> None:
        """Release what ``_prepare()`` built: after stop, or when preparing or binding fails."""

    # The lifecycle.

    def _not_running(self) -> RuntimeError:
        return RuntimeError(f"the {self.name} is not running; call start() first")

    @property
    def _base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._socket is None:
            raise self._not_running()
        return socket_url(self._socket)

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        if self._socket is None:
            raise self._not_running()
        return int(self._socket.getsockname()[1])

    def start(self, timeout_s: float = 10.0) -> Self:
        """Prepare, bind, serve in a daemon thread; return once it accepts requests."""
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} is already running")
        self._error = None
        try:
            app = self._prepare()  # config errors raise here, before binding
            self._socket = bind_socket(self.config.host, self.config.port, what=self.name)
        except BaseException:
            self._cleanup()
            raise
        server = self._server = self._make_server(app)
        self._thread = threading.Thread(
            target=self._run, name=f"parabench-{self.name}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the {self.name} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.name} did not start within {timeout_s} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread has nobody else to tell
            self._error = exc

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving: ask uvicorn to exit, force it after ``timeout_s``, close the socket."""
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
        self._cleanup()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        # Already started (``with Server(config).start() as server``) is fine too.
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ClientLeft(Exception):
    """The client disconnected before sending its whole request body."""


async def read_limited_body(
    receive: Callable[[], Awaitable[Mapping[str, Any]]], declared_length: str | None, limit: int
) -> bytes | None:
    """Read an ASGI request body; ``None`` when it is larger than ``limit`` bytes.

    The body is drained even when refused: answering while the client still
    writes would break the connection and hide the 413 from it. Raises
    ``ClientLeft`` on ``http.disconnect``.
    """
    too_large = (
        bool(declared_length and declared_length.isdigit()) and int(declared_length or 0) > limit
    )
    parts: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientLeft
        chunk = message.get("body", b"")
        size += len(chunk)
        too_large = too_large or size > limit
        if not too_large:
            parts.append(chunk)
        more = message.get("more_body", False)
    return None if too_large else b"".join(parts)
