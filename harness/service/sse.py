"""The Server-Sent Events contract of ``POST /v1/runs`` and its encoder.

This is the contract between the agent service and its clients (the Locust
user, the demo page). Names and fields are fixed; new fields may be added,
none removed or renamed.

Request::

    POST /v1/runs
    Content-Type: application/json
    traceparent: 00-<trace id>-<span id>-01        (optional, W3C Trace Context)
    Authorization: Bearer <api_key>                (only when the service has one)

    {"scenario": "research_assistant", "variant": "parallel", "seed": 7}

``seed`` is optional (an integer 0 … 4294967295). With a seed the run's
random draws depend on the seed alone, so the same request gives the same
run; without one the service uses its own seed and a run counter.

Response: ``200``, ``Content-Type: text/event-stream; charset=utf-8``,
``Cache-Control: no-cache``, ``X-Accel-Buffering: no``; then events, each one
``event: NAME`` line and one ``data: JSON`` line (the JSON is on one line)::

    event: run.started
    data: {"run_id": "…", "trace_id": "<32 hex>", "scenario": "…", "variant": "…",
           "cards_expected": 5}

    event: card                                   (one per card, as its step completes)
    data: {"run_id": "…", "step_id": "plan", "index": 0, "at_ms": 812.4}

    event: run.completed | run.partial | run.failed   (exactly one, then the stream ends)
    data: {"run_id": "…", "trace_id": "…", "outcome": "completed", "e2e_ms": 12003.1,
           "ttfc_ms": 812.4, "cost_usd": 0.0346, "cards": 5}

* ``at_ms``, ``e2e_ms``, ``ttfc_ms``: milliseconds measured by the service
  from the start of the run span (server side). ``ttfc_ms`` is null when no
  card was shown. ``cards`` is the number of card events sent.
* ``outcome`` is ``completed``, ``partial`` (a step failed but a card was
  shown) or ``failed``; the final event's name is ``run.<outcome>``. A
  ``run.failed`` caused by the service itself (a bug, or the service shutting
  down mid-run) also carries ``"error": "<message>"``.
* Comment lines (``: keep-alive``) may arrive between events after a silence
  of ``keepalive_s``; they are not cards and carry no data.
* A client that closes the connection cancels its run (recorded as
  ``cancelled``; no final event is sent to anyone).

Errors are JSON, never a stream: ``{"error": {"message": "…", "field": "…",
"valid": [...]}}`` (``valid`` when there is a list to choose from) with 400
(bad JSON, missing or mistyped field), 401 (bearer token), 404 (unknown
scenario or variant), 413 (body too large) or 503 (``max_in_flight`` runs
already going; ``Retry-After`` says when to try again — nothing is queued).

``harness.sse.SseParser`` parses such a stream incrementally, whatever the chunking::

    parser = SseParser()
    for chunk in response.iter_raw():
        for event in parser.feed(chunk):
            handle(event.event, event.json())
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "CARD",
    "FINAL_EVENTS",
    "KEEPALIVE",
    "RUN_COMPLETED",
    "RUN_FAILED",
    "RUN_PARTIAL",
    "RUN_STARTED",
    "encode_event",
    "final_event_name",
]

RUN_STARTED = "run.started"
CARD = "card"
RUN_COMPLETED = "run.completed"
RUN_PARTIAL = "run.partial"
RUN_FAILED = "run.failed"
#: Exactly one of these ends every stream that started.
FINAL_EVENTS = frozenset({RUN_COMPLETED, RUN_PARTIAL, RUN_FAILED})
#: A comment line: keeps idle connections (and proxies) from timing out.
KEEPALIVE = b": keep-alive\n\n"


def final_event_name(outcome: str) -> str:
    """The final event of a run that ended with ``outcome``."""
    name = f"run.{outcome}"
    return name if name in FINAL_EVENTS else RUN_FAILED


def encode_event(event: str, data: dict[str, Any]) -> bytes:
    """One event: an ``event:`` line, a one-line JSON ``data:`` line, a blank line."""
    # json.dumps escapes control characters, so the payload never spans lines.
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()
