"""Read trace files into one span table, counting every problem with the data.

Formats, detected per file
--------------------------
- OTLP JSON lines: one ``ExportTraceServiceRequest`` per line, as parabench
  writes ``spans.jsonl`` and as an OpenTelemetry Collector's file exporter
  does. Ids in hex (OTLP/JSON) or base64 (protobuf's JSON mapping); kinds and
  status codes as numbers or enum names; int64 values as numbers or strings.
- One JSON document, possibly pretty-printed over many lines: an OTLP
  ``ExportTraceServiceRequest`` (also wrapped as ``{"result": ...}``, the
  Jaeger v3 API's shape) or Jaeger JSON (``{"data": [trace, ...]}`` as the
  Jaeger UI downloads and ``/api/traces`` returns, a bare list of traces, or a
  single trace; see ``_jaeger``). A line of a JSON-lines file may be any of
  these too.

A file is read as lines when its first line is complete JSON (or its second
is: a truncated first line is one finding, not a reason to read the file
whole); otherwise it is parsed as one document. The fast path decodes lines
with typed msgspec structs (``_otlp``); a line they reject is walked as plain
dicts so that its good spans are kept. The whole-table checks run once all
spans are in (``_checks``).

Data-quality findings
---------------------
Bad data never stops an analysis. Each problem is counted, with up to three
examples that say where (``file:line``, trace and span id), in ``DataQuality``:

``undecodable_bytes``          a line is not UTF-8 (its spans are still read, with U+FFFD;
                               a field that is not read, such as an unknown one, is
                               not checked), or the file is binary
``truncated_or_invalid_json``  a line (or the document) is not valid JSON
``not_trace_json``             valid JSON that is neither OTLP nor Jaeger traces
``malformed_span``             a span without ids (or with an id that is not text), or with a
                               time that is not a number or does not fit int64 (the span is
                               skipped, the rest of its line kept)
``malformed_attribute``        an attribute or tag value that does not decode (dropped)
``malformed_event``            an event or log without a valid time (dropped)
``duplicate_span_id``          a span id seen before in the same trace (the first is kept)
``orphan_span``                the parent id is set but absent from the trace (except on a
                               SERVER or CONSUMER span: its parent is remote, the caller's)
``trace_without_root``         every span of the trace has a parent id
``end_before_start``           kept as read; durations are clamped at 0 downstream
``child_outside_parent``       a child starts before its parent or ends after it
                               (clock skew); a CONSUMER child, a PRODUCER's child and
                               a Jaeger FOLLOWS_FROM child may end later
``no_spans_in_file``           nothing at all could be read from a file
``unreadable_file``            reading failed part-way (an I/O error after opening)

The only exception is ``TraceDataError``, when a file cannot be opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
import pandas as pd

from harness.analysis import _jaeger, _otlp
from harness.analysis._checks import SpanTable
from harness.analysis._gc import paused_gc
from harness.analysis._otlp import SpanSink
from harness.errors import TraceDataError

__all__ = ["SPAN_COLUMNS", "DataQuality", "read_spans", "spans_from_otlp"]

SPAN_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status",
    "attributes",
    "events",
]

_EXAMPLES = 3
_EXAMPLE_CHARS = 300
_BOM = b"\xef\xbb\xbf"
_HEAD = 8192  # bytes looked at to tell a binary file
_BUFFER = 1 << 20  # long lines read much faster than with the default 8 KiB
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeError, ValueError, RecursionError)


@dataclass
class DataQuality:
    """Problems found while reading, each counted with up to three examples."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, finding: str, example: str) -> None:
        """Count one occurrence of ``finding``; keep ``example`` if there is room."""
        self.add_many(finding, 1, [example])

    def add_many(self, finding: str, count: int, examples: Iterable[str]) -> None:
        """Count ``count`` occurrences of ``finding``, with examples of the first few."""
        if count <= 0:
            return
        self.counts[finding] = self.counts.get(finding, 0) + count
        bucket = self.examples.setdefault(finding, [])
        for example in examples:
            if len(bucket) >= _EXAMPLES:
                break
            bucket.append(example[:_EXAMPLE_CHARS])

    def merge(self, other: DataQuality) -> None:
        """Add another reader's findings to these."""
        for finding, count in other.counts.items():
            self.counts[finding] = self.counts.get(finding, 0) + count
            bucket = self.examples.setdefault(finding, [])
            bucket.extend(other.examples.get(finding, [])[: _EXAMPLES - len(bucket)])

    @property
    def clean(self) -> bool:
        return not self.counts

    def to_dict(self) -> dict[str, Any]:
        return {
            name: {"count": n, "examples": self.examples.get(name, [])}
            for name, n in sorted(self.counts.items())
        }


def spans_from_otlp(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The spans of one ``ExportTraceServiceRequest`` (plain dicts) as row dicts."""
    sink = SpanSink()
    _otlp.add_request_dict(request, sink, sink.source("request"), lambda *_: None, "request")
    yield from SpanTable(sink, SPAN_COLUMNS).frame.to_dict("records")


def _add_document(
    document: Any, sink: SpanSink, src: int, quality: DataQuality, where: str
) -> None:
    """Append the spans of one decoded JSON value, whichever trace format it is."""
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]  # Jaeger v3 API: {"result": ExportTraceServiceRequest}
    if isinstance(document, dict) and "resourceSpans" in document:
        _otlp.add_request_dict(document, sink, src, quality.add, where)
        return
    traces = _jaeger.jaeger_traces(document)
    if traces is None:
        quality.add("not_trace_json", f"{where}: {type(document).__name__} {str(document)[:60]}")
        return
    _jaeger.add_traces(traces, sink, src, quality.add, where)


def _add_text(raw: bytes, sink: SpanSink, quality: DataQuality, where: str) -> None:
    """Append the spans of one line (or whole document) of bytes; report what is wrong."""
    src = sink.source(where)
    try:
        request = _otlp.DECODER.decode(raw)
    except _DECODE_ERRORS:
        pass  # not a clean OTLP request: take the tolerant path below
    else:
        _otlp.add_request(request, sink, src, quality.add, where)
        return
    raw = raw.strip().removeprefix(_BOM)
    if not raw:
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        quality.add("undecodable_bytes", f"{where}: byte 0x{bad} at column {exc.start + 1}")
        text = raw.decode("utf-8", errors="replace")
        try:
            document = msgspec.json.decode(text)
        except _DECODE_ERRORS:
            return  # counted once, as undecodable
    else:
        try:
            document = msgspec.json.decode(text)
        except _DECODE_ERRORS as exc:
            quality.add("truncated_or_invalid_json", f"{where}: {exc}")
            return
    _add_document(document, sink, src, quality, where)


def _is_json(line: bytes) -> bool:
    try:
        msgspec.json.decode(line)
    except _DECODE_ERRORS:
        return False
    return True


def _nonblank_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for lineno, raw in enumerate(handle, 1):
        line = raw.strip()
        if lineno == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :].strip()
        if line:
            yield lineno, line


def _read_lines(handle: IO[bytes], path: Path, sink: SpanSink, quality: DataQuality) -> None:
    """Read a JSON-lines file from its start, line by line."""
    handle.seek(0)
    for lineno, line in enumerate(handle, 1):
        _add_text(line, sink, quality, f"{path}:{lineno}")


def _read_file(handle: IO[bytes], path: Path, sink: SpanSink, quality: DataQuality) -> bool:
    """Read one open file as JSON lines or as one JSON document; ``False`` if it is blank."""
    lines = _nonblank_lines(handle)
    first = next(lines, None)
    if first is None:
        return False
    if _is_json(first[1]):
        _read_lines(handle, path, sink, quality)
        return True
    handle.seek(0)
    head = handle.read(_HEAD)
    if b"\x00" in head:  # JSON text never holds a raw NUL: an image, an archive, UTF-16
        utf16 = head.startswith((b"\xff\xfe", b"\xfe\xff"))
        what = "UTF-16 text: save it as UTF-8" if utf16 else "binary data, not trace JSON"
        quality.add("undecodable_bytes", f"{path}: {what} (a NUL byte at {head.index(0)})")
        return True
    handle.seek(0)
    lines = _nonblank_lines(handle)
    next(lines)
    second = next(lines, None)
    if first[1][:1] not in (b"{", b"[") or second is None or _is_json(second[1]):
        _read_lines(handle, path, sink, quality)
        return True
    # Neither of the first two lines is JSON on its own: one (pretty-printed) document.
    handle.seek(0)
    data = handle.read().removeprefix(_BOM)
    where = str(path)
    try:
        request = _otlp.DECODER.decode(data)
    except _DECODE_ERRORS:
        pass
    else:
        _otlp.add_request(request, sink, sink.source(where), quality.add, where)
        return True
    try:
        document = msgspec.json.decode(data)
    except _DECODE_ERRORS as exc:
        error = exc
    else:
        del data
        _add_document(document, sink, sink.source(where), quality, where)
        return True
    # Not one document either: read it as lines if that gives any spans.
    del data
    before, scratch = len(sink), DataQuality()
    _read_lines(handle, path, sink, scratch)
    if len(sink) > before:
        quality.merge(scratch)
    elif "undecodable_bytes" in scratch.counts:
        quality.add("undecodable_bytes", f"{path}: not UTF-8 text (is it a trace file?)")
    else:
        quality.add("truncated_or_invalid_json", f"{path}: not one JSON document: {error}")
    return True


def read_spans(paths: str | Path | Iterable[str | Path]) -> tuple[pd.DataFrame, DataQuality]:
    """Read trace files into one span table (columns: ``SPAN_COLUMNS``) and its findings.

    Raises ``TraceDataError`` only when a file cannot be opened at all.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    quality = DataQuality()
    sink = SpanSink()
    with paused_gc():
        for path in map(Path, paths):
            try:
                handle = path.open("rb", buffering=_BUFFER)
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
                raise TraceDataError(
                    f"cannot open trace file: {getattr(exc, 'strerror', None) or exc}",
                    where=str(path),
                    fix="check the path; `parabench run` writes DIR/spans.jsonl",
                ) from None
            before = len(sink)
            with handle:
                try:
                    content = _read_file(handle, path, sink, quality)
                except OSError as exc:
                    content = True
                    quality.add("unreadable_file", f"{path}: {exc.strerror or exc}")
            if len(sink) == before:
                why = "see the other findings" if content else "the file is empty"
                quality.add("no_spans_in_file", f"{path}: no spans could be read ({why})")
        table = SpanTable(sink, SPAN_COLUMNS)
        del sink
        return table.check(quality.add_many), quality
