"""``POST /v1/runs``: validate, admit, run, and stream the cards as Server-Sent Events.

The event contract is in ``harness.service.sse``. This is a plain ASGI
callable rather than a Starlette ``StreamingResponse`` so that the
disconnect handling is explicit and does not depend on the ASGI spec
version the server reports: Starlette cancels a streaming body on
``http.disconnect`` only under spec < 2.4; under 2.4 it notices a gone client
only when a write fails, which for a quiet run (no keep-alives) is never.
Here a watcher task waits for ``http.disconnect`` and cancels the run at once,
so the executor records it as ``cancelled`` and ``parabench_runs_in_flight``
falls back.

On shutdown the server cancels every open stream's run at once and ends the
stream with ``run.failed`` (``"error"`` says why), rather than leaving it to
be cut off after uvicorn's graceful timeout; new runs get 503.

Each accepted request gets a SERVER span ``POST /v1/runs`` (child of the
caller's ``traceparent`` when there is one) and the run span is its child.
Starting the server span first gives the trace id before the run starts, for
``run.started``; with a ``traceparent`` it is the caller's trace id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from harness.clock import monotonic_s, now_ns
from harness.executor import Card, RunResult
from harness.service import sse
from harness.service.state import RequestError, ServiceState
from harness.serving import ClientLeft, read_limited_body

__all__ = ["RunRequest", "RunsEndpoint", "parse_run_request", "send_json"]

_log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()
_FIELDS = ["scenario", "variant", "seed"]
# Fields a client might use to ask for several runs at once; each gets its own answer.
_BATCH_FIELDS = frozenset({"runs", "n", "count", "repeat", "batch"})
_MAX_SEED = 0xFFFFFFFF
#: The error of a run cut short by the service stopping.
SHUTTING_DOWN = "the service is shutting down; retry the run elsewhere"
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Asks reverse proxies (nginx) not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A validated ``POST /v1/runs`` body."""

    scenario: str
    variant: str
    seed: int | None = None


def parse_run_request(body: bytes, state: ServiceState) -> RunRequest:
    """Validate a request body; raise ``RequestError`` (400/404) naming the field and choices."""
    names = sorted(state.scenarios)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise RequestError(
            400,
            f"the body must be a JSON object with {', '.join(_FIELDS)}; got {type(data).__name__}"
            + (
                " (a request starts one run; send one request per run)"
                if isinstance(data, list)
                else ""
            ),
            field="body",
            valid=_FIELDS,
        )
    unknown = sorted(set(data) - set(_FIELDS))
    for name in unknown:
        if name in _BATCH_FIELDS:
            # One run per request keeps admission honest: max_in_flight counts requests.
            raise RequestError(
                400,
                f"'{name}': a request starts exactly one run; send one request per run",
                field=name,
                valid=_FIELDS,
            )
    if unknown:
        raise RequestError(400, f"unknown field '{unknown[0]}'", field=unknown[0], valid=_FIELDS)
    scenario = data.get("scenario")
    if not isinstance(scenario, str):
        what = "is missing" if scenario is None else f"must be a string, not {_kind(scenario)}"
        raise RequestError(400, f"'scenario' {what}", field="scenario", valid=names)
    if scenario not in state.scenarios:
        raise RequestError(404, f"unknown scenario '{scenario}'", field="scenario", valid=names)
    variants = list(state.scenarios[scenario].variants)
    variant = data.get("variant")
    if not isinstance(variant, str):
        what = "is missing" if variant is None else f"must be a string, not {_kind(variant)}"
        raise RequestError(400, f"'variant' {what}", field="variant", valid=variants)
    if variant not in variants:
        raise RequestError(
            404,
            f"scenario '{scenario}' has no variant '{variant}'",
            field="variant",
            valid=variants,
        )
    seed = data.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _MAX_SEED
    ):
        raise RequestError(
            400, f"'seed' must be an integer from 0 to {_MAX_SEED}, not {seed!r}", field="seed"
        )
    return RunRequest(scenario, variant, seed)


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(
        type(value), "an object" if isinstance(value, dict) else type(value).__name__
    )


async def send_json(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    """Answer a whole JSON response on a raw ASGI ``send``."""
    body = json.dumps(payload).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    try:
        body = await read_limited_body(receive, headers.get("content-length"), limit)
    except ClientLeft:
        raise RequestError(400, "the client left before sending the whole body", "body") from None
    if body is None:
        raise RequestError(
            413, f"the request body is larger than {limit} bytes (max_body_bytes)", "body"
        )
    return body


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class RunsEndpoint:
    """The ASGI app of ``POST /v1/runs``."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        headers = Headers(scope=scope)
        try:
            state.check_auth(headers.get("authorization"))
            body = await _read_body(receive, headers, state.config.max_body_bytes)
            request = parse_run_request(body, state)
            if state.shutting_down:
                raise RequestError(
                    503,
                    "the service is shutting down; retry the run elsewhere",
                    headers={"retry-after": str(state.config.retry_after_s)},
                )
            if state.active_runs >= state.config.max_in_flight:
                raise RequestError(
                    503,
                    f"the service is running its maximum of {state.config.max_in_flight} runs; "
                    "retry later",
                    headers={"retry-after": str(state.config.retry_after_s)},
                )
        except RequestError as error:
            await send_json(send, error.status, error.body(), error.headers)
            return
        state.active_runs += 1  # no await since the check: admission cannot overshoot
        released = False
        me = asyncio.current_task()
        if me is not None:
            state.requests.add(me)

        def release() -> None:
            # Once per run, as soon as the run is over: a lagging event loop must not
            # keep finished runs counted (and turn new ones away with 503s).
            nonlocal released
            if not released:
                released = True
                state.active_runs -= 1

        try:
            await self._stream(scope, headers, request, receive, send, release)
        finally:
            release()
            state.requests.discard(me)

    async def _stream(
        self,
        scope: Scope,
        headers: Headers,
        request: RunRequest,
        receive: Receive,
        send: Send,
        release: Callable[[], None],
    ) -> None:
        state = self.state
        run_id = uuid.uuid4().hex
        carrier = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
        server = scope.get("server") or ("", 0)
        span = state.telemetry.tracer.start_span(
            "POST /v1/runs",
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            start_time=now_ns(),
            attributes={
                "http.request.method": "POST",
                "http.route": "/v1/runs",
                "url.path": scope.get("path", "/v1/runs"),
                "url.scheme": scope.get("scheme", "http"),
                "server.address": str(server[0]),
                "server.port": int(server[1] or 0),
                "network.protocol.version": scope.get("http_version", "1.1"),
                "http.response.status_code": 200,
                "parabench.run.id": run_id,
            },
        )
        trace_id = format(span.get_span_context().trace_id, "032x")
        pump = asyncio.create_task(
            self._pump(request, run_id, trace_id, trace.set_span_in_context(span), send, release)
        )
        watcher = asyncio.create_task(_until_disconnect(receive))
        client_left = False
        error: BaseException | None = None
        try:
            await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
            # The server reports http.disconnect after a complete response too: a
            # finished pump means the client got everything.
            client_left = watcher.done() and not pump.done()
        finally:
            try:
                for task in (pump, watcher):
                    task.cancel()
                await asyncio.gather(pump, watcher, return_exceptions=True)
                if pump.done() and not pump.cancelled():
                    error = pump.exception()
            finally:
                _end_server_span(span, client_left, error)
        if error is not None and not client_left:
            raise error  # a broken send: let the server log it and close the connection

    async def _pump(
        self,
        request: RunRequest,
        run_id: str,
        trace_id: str,
        parent: Any,
        send: Send,
        release: Callable[[], None],
    ) -> None:
        progress = _Progress(run_id, trace_id)
        try:
            await self._events(request, parent, send, progress, release)
        except asyncio.CancelledError:
            if not self.state.shutting_down:
                raise
            # Cut by the server after its graceful timeout: end the stream properly.
            await progress.fail(send, SHUTTING_DOWN)
        except Exception as exc:  # a bug in the run: tell the client, keep serving
            _log.exception("run %s of %s/%s failed", run_id, request.scenario, request.variant)
            await progress.fail(send, f"{type(exc).__name__}: {exc}")

    async def _events(
        self,
        request: RunRequest,
        parent: Any,
        send: Send,
        progress: _Progress,
        release: Callable[[], None],
    ) -> None:
        state = self.state
        executor = state.executors[request.scenario]
        plan = executor.scenario.plan(request.variant)
        await progress.start(send)
        started = {
            "run_id": progress.run_id,
            "trace_id": progress.trace_id,
            "scenario": request.scenario,
            "variant": request.variant,
            "cards_expected": len(plan.card_steps),
        }
        await _body(send, sse.encode_event(sse.RUN_STARTED, started))
        if request.seed is None:
            seed, run_index = state.config.seed, state.next_run_index()
        else:
            seed, run_index = request.seed, 0
        stream = executor.stream(
            request.variant, seed=seed, run_index=run_index, run_id=progress.run_id, parent=parent
        )
        keepalive_s = state.config.keepalive_s
        async with contextlib.aclosing(_with_keepalives(stream, keepalive_s, send)) as items:
            async for item in items:
                if isinstance(item, Card):
                    progress.cards.append(item)
                    data = {
                        "run_id": progress.run_id,
                        "step_id": item.step_id,
                        "index": item.index,
                        "at_ms": round(item.at_s * 1000.0, 3),
                    }
                    await _body(send, sse.encode_event(sse.CARD, data))
                else:
                    release()
                    error = SHUTTING_DOWN if item.outcome == "cancelled" else None
                    await _body(send, _final(item, error), more=False)
                    return


class _Progress:
    """What a stream has sent so far, to end it with ``run.failed`` when it must."""

    def __init__(self, run_id: str, trace_id: str) -> None:
        self.run_id = run_id
        self.trace_id = trace_id
        self.t0 = monotonic_s()
        self.cards: list[Card] = []
        self.headers_sent = False

    async def start(self, send: Send) -> None:
        self.headers_sent = True
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

    async def fail(self, send: Send, error: str) -> None:
        if not self.headers_sent:
            await self.start(send)
        data = {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "outcome": "failed",
            "e2e_ms": round((monotonic_s() - self.t0) * 1000.0, 3),
            "ttfc_ms": round(self.cards[0].at_s * 1000.0, 3) if self.cards else None,
            "cost_usd": 0.0,
            "cards": len(self.cards),
            "error": error,
        }
        await _body(send, sse.encode_event(sse.RUN_FAILED, data), more=False)


def _end_server_span(span: Span, client_left: bool, error: BaseException | None) -> None:
    try:
        if client_left:
            span.set_attribute("parabench.client_disconnected", True)
        elif error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end(end_time=now_ns())
    except Exception:  # telemetry never breaks the response
        _log.exception("could not end the server span")


def _final(result: RunResult, error: str | None = None) -> bytes:
    event = sse.final_event_name(result.outcome)
    data: dict[str, Any] = {
        "run_id": result.run_id,
        "trace_id": result.trace_id,
        "outcome": event.removeprefix("run."),  # a cancelled run ends its stream as failed
        "e2e_ms": round(result.e2e_s * 1000.0, 3),
        "ttfc_ms": round(result.ttfc_s * 1000.0, 3) if result.ttfc_s is not None else None,
        "cost_usd": result.cost_usd,
        "cards": len(result.cards),
    }
    if error is not None:
        data["error"] = error
    return sse.encode_event(event, data)


async def _body(send: Send, chunk: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": more})


async def _with_keepalives(
    stream: AsyncIterator[Card | RunResult], every_s: float | None, send: Send
) -> AsyncGenerator[Card | RunResult, None]:
    """Yield the run's items; after ``every_s`` of silence send a keep-alive comment.

    Closing this generator closes ``stream``, which cancels the run.
    """
    iterator = aiter(stream)
    pending: asyncio.Future[Card | RunResult] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            if not done:
                await _body(send, sse.KEEPALIVE)
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        # Cancel the step in flight first: a generator cannot be closed while it runs.
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):
                await aclose()
