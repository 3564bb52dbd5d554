"""An incremental Server-Sent Events parser that follows the WHATWG HTML standard.

Bytes arrive from the network in arbitrary pieces: an event, a line, a CRLF
pair or a multi-byte UTF-8 character can be split across two reads. Feed the
pieces in order as they arrive and take the events that are complete::

    parser = SseParser()
    for chunk in stream:
        for event in parser.feed(chunk):
            print(event.event, event.data)

What the standard asks, and this parser does
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

* lines end in CRLF, LF or a lone CR — a CR at the end of one read whose LF
  arrives in the next is still one line ending;
* a line starting with ``:`` is a comment (servers send them as keep-alives);
  it is counted in :attr:`SseParser.comments` and never dispatched;
* ``data`` lines accumulate, joined with LF; a blank line dispatches the
  event; an event with no ``data`` line at all is not dispatched;
* one space after the colon is dropped, a field without a colon has an
  empty value, unknown fields are ignored, a leading BOM is skipped;
* an event not closed by a blank line when the stream ends is discarded
  (:meth:`SseParser.close` says whether that happened).

Pure Python with no I/O, so it is unit-tested byte by byte without a server.
The agent service's tests and the Locust client both read run streams with it.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["SseEvent", "SseParser"]

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type (``message`` by default), data, and last event id."""

    event: str
    data: str
    id: str | None = None
    retry_ms: int | None = None

    def json(self) -> Any:
        """The data parsed as JSON (every event of parabench's run contract carries JSON)."""
        return json.loads(self.data)


class SseParser:
    """Turns a byte stream, fed piece by piece, into :class:`SseEvent` objects."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._skip_lf = False  # the previous piece ended in CR: a leading LF is part of it
        self._started = False
        self._event_type = ""
        self._data: list[str] = []
        self._pending_fields = False
        self._retry_ms: int | None = None
        self.last_event_id: str | None = None
        self.comments = 0
        """Comment lines seen so far (keep-alives)."""
        self.events = 0
        """Events dispatched so far."""

    def feed(self, chunk: bytes | str) -> list[SseEvent]:
        """Add the next piece of the stream; return the events it completed, in order."""
        text = chunk if isinstance(chunk, str) else self._decoder.decode(chunk)
        if not self._started and text:
            text = text.removeprefix(_BOM)
            self._started = True
        if self._skip_lf and text:
            if text.startswith("\n"):
                text = text[1:]
            self._skip_lf = False
        self._buffer += text
        events: list[SseEvent] = []
        while True:
            line, ending = self._next_line()
            if ending is None:
                break
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> bool:
        """End of stream; True when an unterminated event or line was discarded."""
        self._buffer += self._decoder.decode(b"", final=True)
        discarded = bool(self._buffer) or self._pending_fields
        self._buffer = ""
        self._reset_event()
        return discarded

    def _next_line(self) -> tuple[str, str | None]:
        buf = self._buffer
        cr = buf.find("\r")
        lf = buf.find("\n")
        if cr < 0 and lf < 0:
            return "", None
        if lf >= 0 and (cr < 0 or lf < cr):
            self._buffer = buf[lf + 1 :]
            return buf[:lf], "\n"
        # A CR: CRLF if the LF is already here; if the CR ends the buffer the LF may
        # still come in the next piece, so remember to drop a leading LF then.
        if cr + 1 < len(buf):
            if buf[cr + 1] == "\n":
                self._buffer = buf[cr + 2 :]
                return buf[:cr], "\r\n"
            self._buffer = buf[cr + 1 :]
            return buf[:cr], "\r"
        self._buffer = ""
        self._skip_lf = True
        return buf[:cr], "\r"

    def _process_line(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._pending_fields = True
        if name == "event":
            self._event_type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            # The standard: no data buffer, no event; the type resets all the same.
            self._reset_event()
            return None
        event = SseEvent(
            event=self._event_type or "message",
            data="\n".join(self._data),
            id=self.last_event_id,
            retry_ms=self._retry_ms,
        )
        self._reset_event()
        self.events += 1
        return event

    def _reset_event(self) -> None:
        self._event_type = ""
        self._data = []
        self._retry_ms = None
        self._pending_fields = False
