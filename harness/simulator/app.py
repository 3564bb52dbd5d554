"""The simulator's ASGI application: OpenAI's chat-completions API on a latency model.

Routes::

    GET  /v1/models                 the configured and default models
    GET  /v1/models/{model}         one of them
    POST /v1/chat/completions       streamed (SSE) or whole answers
    GET  /healthz                   liveness, with in-flight and request counts

Timing is ``harness.latency``'s, drawn (in ``state``) exactly as the in-process
``SimulatedProvider`` draws it: the ``x-parabench-key: SEED:RUN:STEP:ATTEMPT``
header seeds ``rng_for(SEED, RUN, STEP, ATTEMPT + 1)`` and the profile is
sampled with the model's in-flight count (this request included), so a
scenario has the same latency distribution over HTTP as in process. Requests
without a key draw from one server generator seeded by ``config.seed``.

Test headers (all optional): ``x-parabench-fault: 500|503|429|hang|disconnect|none``
forces a fault, ``x-parabench-ttft-ms`` / ``x-parabench-itl-ms`` replace the
drawn timing (model milliseconds, scaled like the rest),
``x-parabench-output-tokens`` / ``x-parabench-input-tokens`` set the token counts.

The chat endpoint is a plain ASGI callable rather than a Starlette
request/response function: under a thousand concurrent streams the per-chunk
cost is what matters, so chunks are prepared bytes written straight to ``send``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from harness.serving import ClientLeft, read_limited_body
from harness.simulator.config import SimulatorConfig
from harness.simulator.protocol import (
    ApiError,
    ChatRequest,
    StreamTemplates,
    completion_body,
    parse_chat_request,
)
from harness.simulator.state import SimulatorState, TimingPlan, forced_rate_limit, server_error

__all__ = ["SimulatedDisconnect", "create_app"]

_JSON = (b"content-type", b"application/json")
_SSE = (b"content-type", b"text/event-stream; charset=utf-8")
_NO_CACHE = (b"cache-control", b"no-cache")


class SimulatedDisconnect(ConnectionAbortedError):
    """Raised inside a response on purpose: uvicorn then drops the connection mid-answer."""


class ChatCompletions:
    """``POST /v1/chat/completions`` as a plain ASGI app (see the module docstring)."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        state.requests_total += 1
        headers = dict(scope["headers"])
        try:
            state.check_auth(headers.get(b"authorization"))
            body = await _read_body(receive, headers, state.config.max_body_bytes)
            request = parse_chat_request(
                body,
                headers,
                state.config.default_output_tokens,
                state.config.max_output_tokens,
            )
            if state.config.profile(request.model) is None:
                raise ApiError(
                    404,
                    f"The model `{request.model}` does not exist or you do not have access to it.",
                    param="model",
                    code="model_not_found",
                )
            plan = TimingPlan.from_headers(headers)
            fault = state.draw_fault(headers)
            if fault == "429":
                raise forced_rate_limit(state.config)
            decision = state.limiter.check(
                request.model, request.input_tokens + request.output_tokens
            )
            if not decision.allowed:
                raise ApiError(
                    429,
                    decision.message,
                    type="rate_limit_exceeded",
                    param=None,
                    code="rate_limit_exceeded",
                    headers=decision.headers,
                )
            if fault in ("500", "503"):
                raise server_error(int(fault))
        except ApiError as error:
            await _send_error(send, state, error)
            return
        extra = [*decision.headers, (b"x-request-id", f"req_{secrets.token_hex(12)}".encode())]
        await _answer_until_disconnect(state, request, plan, fault, extra, receive, send)


class _Watch:
    """Whether a request still listens for its client leaving, and whether it left."""

    __slots__ = ("active", "client_left")

    def __init__(self) -> None:
        self.active = True
        self.client_left = False


async def _answer_until_disconnect(
    state: SimulatorState,
    request: ChatRequest,
    plan: TimingPlan,
    fault: str,
    extra: list[tuple[bytes, bytes]],
    receive: Receive,
    send: Send,
) -> None:
    # A client that gives up (timeout, cancel) closes the connection; stop the
    # answer then, so in-flight counts and hung requests do not linger.
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch()

    async def watch_client() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if watch.active:
            watch.client_left = True
            task.cancel()

    watcher = asyncio.create_task(watch_client())
    state.in_flight[request.model] += 1
    try:
        await _answer(state, request, plan, fault, extra, send, watch)
    except asyncio.CancelledError:
        # Our own cancellation (the client left) ends the request quietly;
        # any other (server shutdown) propagates.
        if not watch.client_left or task.uncancel() > 0:
            raise
        state.outcomes["client_left"] += 1
    finally:
        watch.active = False
        watcher.cancel()
        state.in_flight[request.model] -= 1


async def _answer(
    state: SimulatorState,
    request: ChatRequest,
    plan: TimingPlan,
    fault: str,
    extra: list[tuple[bytes, bytes]],
    send: Send,
    watch: _Watch,
) -> None:
    config = state.config
    loop = asyncio.get_running_loop()
    if fault == "hang":
        state.outcomes["hang"] += 1
        await asyncio.sleep(config.hang_seconds())
    timing = state.timing(request, plan)
    scale = config.time_scale
    start = loop.time()
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    disconnect = fault == "disconnect"

    if not request.stream:
        body = completion_body(
            completion_id, created, request.model, request.input_tokens, request.output_tokens
        )
        # A dropped answer fails half-way through, as the in-process provider's does.
        await _sleep_until(loop, start + timing.total_s * scale * (0.5 if disconnect else 1.0))
        length = (b"content-length", str(len(body)).encode())
        await send(
            {"type": "http.response.start", "status": 200, "headers": [_JSON, length, *extra]}
        )
        if disconnect:
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            state.outcomes["disconnect"] += 1
            raise SimulatedDisconnect("simulated disconnect in the middle of the body")
        watch.active = False
        await send({"type": "http.response.body", "body": body})
        state.outcomes["ok"] += 1
        return

    chunks = StreamTemplates(completion_id, created, request.model, request, config.chunk_tokens)
    await send({"type": "http.response.start", "status": 200, "headers": [_SSE, _NO_CACHE, *extra]})
    await send({"type": "http.response.body", "body": chunks.role(), "more_body": True})
    count = chunks.chunk_count()
    # A dropped stream sends about half of its content chunks (at least one) first.
    sent = min(max(count // 2, 1), count) if disconnect else count
    pending = b""
    for index in range(sent):
        await _sleep_until(
            loop, start + (timing.ttft_s + timing.itl_s * chunks.last_token(index)) * scale
        )
        if index == count - 1 and not disconnect:
            pending = chunks.content(index)  # the last words go out with the stop chunk
            break
        await send({"type": "http.response.body", "body": chunks.content(index), "more_body": True})
    if disconnect:
        state.outcomes["disconnect"] += 1
        raise SimulatedDisconnect("simulated disconnect in the middle of the stream")
    await _sleep_until(loop, start + timing.total_s * scale)
    watch.active = False
    await send({"type": "http.response.body", "body": pending + chunks.finish()})
    state.outcomes["ok"] += 1


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    # Absolute deadlines: time spent writing chunks does not add up over a stream.
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    declared = headers.get(b"content-length")
    try:
        body = await read_limited_body(
            receive, declared.decode("latin-1") if declared is not None else None, limit
        )
    except ClientLeft:
        raise ApiError(400, "The client disconnected before sending the whole body.") from None
    if body is None:
        raise ApiError(
            413,
            f"The request body is larger than the simulator's limit of {limit} bytes; "
            "send less, or raise max_body_bytes.",
            code="request_too_large",
        )
    return body


async def _send_error(send: Send, state: SimulatorState, error: ApiError) -> None:
    body = error.body()
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *error.headers]
    state.outcomes[str(error.status)] += 1
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error_response(error: ApiError) -> Response:
    headers = {name.decode(): value.decode() for name, value in error.headers}
    return Response(error.body(), error.status, headers=headers, media_type="application/json")


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """The simulator as a Starlette app; its ``SimulatorState`` is at ``app.state.simulator``."""
    state = SimulatorState(config or SimulatorConfig())

    def model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "parabench-simulator"}

    async def list_models(request: Request) -> Response:
        try:
            state.check_auth(request.headers.get("authorization", "").encode() or None)
        except ApiError as error:
            return _error_response(error)
        data = [model_object(name) for name in state.config.model_names()]
        return JSONResponse({"object": "list", "data": data})

    async def get_model(request: Request) -> Response:
        name = request.path_params["model"]
        try:
            state.check_auth(request.headers.get("authorization", "").encode() or None)
            if state.config.strict_models and not state.config.knows(name):
                raise ApiError(
                    404,
                    f"The model `{name}` does not exist.",
                    param="model",
                    code="model_not_found",
                )
        except ApiError as error:
            return _error_response(error)
        return JSONResponse(model_object(name))

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "in_flight": sum(state.in_flight.values()),
                "requests_total": state.requests_total,
            }
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
            error = ApiError(405, message, code="method_not_allowed")
        elif exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})."
            error = ApiError(404, message, code="unknown_url")
        else:
            error = ApiError(exc.status_code, str(exc.detail))
        response = _error_response(error)
        response.headers.update(exc.headers or {})
        return response

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", ChatCompletions(state), methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.simulator = state
    return app
