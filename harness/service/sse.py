"""The Server-Sent Events contract of ``POST /v1/runs``, its encoder and a parser.

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

``SseParser`` parses such a stream incrementally, whatever the chunking::

    parser = SseParser()
    for chunk in response.iter_raw():
        for event in parser.feed(chunk):
            handle(event.event, event.json())
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CARD",
    "FINAL_EVENTS",
    "KEEPALIVE",
    "RUN_COMPLETED",
    "RUN_FAILED",
    "RUN_PARTIAL",
    "RUN_STARTED",
    "ServerSentEvent",
    "SseParser",
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


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its type (``message`` when unnamed), data and last id."""

    event: str
    data: str
    id: str = ""

    def json(self) -> Any:
        """The data parsed as JSON (every event of this contract carries JSON)."""
        return json.loads(self.data)


class SseParser:
    """An incremental parser of ``text/event-stream`` (the WHATWG algorithm).

    Feed it bytes as they arrive, split anywhere — inside a line, between a CR
    and its LF, inside a multi-byte UTF-8 character — and it returns each
    event once its blank line has arrived. Comment lines are counted in
    ``comments``, never returned.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._after_cr = False
        self._first = True
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""
        self.comments = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk``; return the events it completed, in order."""
        text = self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            text = text.removeprefix("\ufeff")
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across chunks
        self._after_cr = False
        self._buffer += text
        events: list[ServerSentEvent] = []
        start = 0
        buffer = self._buffer
        while True:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr < 0 and lf < 0:
                break
            end = min(i for i in (cr, lf) if i >= 0)
            line = buffer[start:end]
            if buffer[end] == "\r":
                if end + 1 < len(buffer):
                    start = end + 2 if buffer[end + 1] == "\n" else end + 1
                else:
                    start = end + 1
                    self._after_cr = True
            else:
                start = end + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._last_id = value
        # "retry" and unknown fields are ignored, as the standard says.
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event or "message", "\n".join(data), self._last_id)
