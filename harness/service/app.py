"""The agent service's ASGI application (Starlette).

Routes::

    POST /v1/runs        run a scenario variant; cards stream back as SSE (see ``sse``)
    GET  /v1/scenarios   the scenarios served: variants, modes, card steps
    GET  /healthz        liveness, runs in flight, the admission limit
    GET  /metrics        Prometheus text; OpenMetrics (with trace-id exemplars)
                         when the Accept header asks for application/openmetrics-text
    GET  /               the progressive-results demo page (self-contained);
                         ``/?scenario=NAME&autostart=1`` picks a scenario and starts it

With an ``api_key`` configured, ``/v1/*`` needs ``Authorization: Bearer KEY``;
the page, ``/healthz`` and ``/metrics`` stay open (bind to loopback, the
default, to keep them private). Every error is JSON:
``{"error": {"message", "field", "valid"?}}``.

The registry behind ``/metrics`` is the service's own (never the global
one), with the harness ``Metrics`` prepared for every scenario and variant,
so each series exists at zero before the first run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources

from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from harness.service.config import DEFAULT_PAGE_SCENARIO, ServiceConfig
from harness.service.runs import RunsEndpoint
from harness.service.state import RequestError, ServiceState

__all__ = ["create_app", "page_html"]


@cache
def page_html() -> tuple[bytes, str]:
    """The demo page and its Content-Security-Policy (inline code allowed by hash only)."""
    html = resources.files("harness.service").joinpath("static/index.html").read_text("utf-8")
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag in hashes:
        for block in re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL):
            digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
            hashes[tag].append(f"'sha256-{digest}'")
    policy = (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
        f"script-src {' '.join(hashes['script'])}; style-src {' '.join(hashes['style'])}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html.encode(), policy


def _error(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), error.status, headers=error.headers)


def create_app(config: ServiceConfig | None = None, state: ServiceState | None = None) -> Starlette:
    """The service as a Starlette app; its ``ServiceState`` is at ``app.state.service``.

    Building the state loads and validates every scenario and opens the
    provider, so configuration errors surface here, before any port is bound.
    """
    config = config or ServiceConfig()
    state = state or ServiceState(config)

    async def scenarios(request: Request) -> Response:
        try:
            state.check_auth(request.headers.get("authorization"))
        except RequestError as error:
            return _error(error)
        names = list(state.scenarios)
        default = DEFAULT_PAGE_SCENARIO if DEFAULT_PAGE_SCENARIO in names else names[0]
        return JSONResponse(
            {
                "scenarios": state.describe(),
                "default_scenario": default,
                "time_scale": state.config.time_scale,
                "provider": state.provider.name,
            }
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "active_runs": state.active_runs,
                "max_in_flight": state.config.max_in_flight,
                "scenarios": list(state.scenarios),
                "provider": state.provider.name,
                "time_scale": state.config.time_scale,
            }
        )

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        # Encoding every series takes ~100 ms: off the event loop, so a scrape does not
        # stall the runs in flight (and add its time to their measured latency).
        body = await asyncio.to_thread(encoder, state.registry)
        return Response(body, headers={"content-type": content_type})

    async def page(request: Request) -> Response:
        body, policy = page_html()
        return Response(
            body,
            media_type="text/html; charset=utf-8",
            headers={
                "content-security-policy": policy,
                "cache-control": "no-cache",
                "x-content-type-options": "nosniff",
                "referrer-policy": "no-referrer",
            },
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        valid = ["POST /v1/runs", "GET /v1/scenarios", "GET /healthz", "GET /metrics", "GET /"]
        response = _error(RequestError(exc.status_code, message, field="path", valid=valid))
        response.headers.update(exc.headers or {})
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.drain()  # every run's spans end before the telemetry closes
        await state.aclose()
        await asyncio.to_thread(state.close)

    app = Starlette(
        routes=[
            Route("/v1/runs", RunsEndpoint(state), methods=["POST"]),
            Route("/v1/scenarios", scenarios, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/", page, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.service = state
    return app
