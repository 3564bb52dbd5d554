"""Jaeger JSON to span columns, for ``harness.analysis.ingest``.

The shape is what the Jaeger UI downloads and the query API's ``/api/traces``
returns: ``{"data": [trace, ...]}``, where a trace is
``{"traceID", "spans": [...], "processes": {"p1": {"serviceName", "tags"}}}``.
A bare list of traces and a single trace object are accepted too.

Mapping to the span table:

- ids: lowercase hex, trace ids left-padded to 32 digits and span ids to 16
  (Jaeger writes 64-bit trace ids with 16 digits and may drop leading zeros);
  an id that is not hex is kept as written.
- parent: the span's CHILD_OF reference in the same trace, else its first
  FOLLOWS_FROM reference in the same trace (such a span may outlive its
  parent: it is not reported as clock skew for ending late), else the legacy
  ``parentSpanID`` field.
- ``startTime`` and ``duration`` are microseconds; ``operationName`` is the
  name; the ``span.kind`` tag gives the kind (INTERNAL when absent); tags are
  attributes with their declared type; the process's ``serviceName`` is
  ``service.name``; logs are events (named by their ``event`` field); the
  ``otel.status_code`` tag, else ``error=true``, gives the status.
"""

from __future__ import annotations

import math
from typing import Any

from harness.analysis._otlp import Report, SpanSink, kind_code, status_code, to_int

__all__ = ["add_traces", "jaeger_traces"]

_ANY_HEX = "0123456789abcdefABCDEF"
_ERRORS = (TypeError, ValueError, KeyError, AttributeError, RecursionError, OverflowError)


def jaeger_traces(document: Any) -> list[Any] | None:
    """The traces of a Jaeger JSON document, or ``None`` when it is not one."""
    if isinstance(document, dict):
        if isinstance(document.get("data"), list):
            return list(document["data"])
        if isinstance(document.get("spans"), list):
            return [document]
        return None
    if isinstance(document, list) and any(
        isinstance(t, dict) and isinstance(t.get("spans"), list) for t in document
    ):
        return document
    return None


def _id(value: Any, width: int) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise TypeError(f"id {value!r} is not a string")
    if len(value) <= width and not value.strip(_ANY_HEX):
        padded = value.lower().zfill(width)
        return "" if not padded.strip("0") else padded
    return value


def _microseconds(value: Any, field: str) -> int:
    """Jaeger microseconds as integer nanoseconds."""
    if isinstance(value, float) and not isinstance(value, bool):
        nanoseconds = value * 1000
        if not math.isfinite(nanoseconds):  # NaN, infinity, or 1e306 µs, which overflows
            raise ValueError(f"{field} is {value}")
        return round(nanoseconds)
    if value is None:
        raise ValueError(f"no {field}")
    return to_int(value) * 1000


def _tag_value(tag: dict[str, Any], sink: SpanSink) -> Any:
    kind = str(tag.get("type") or "").lower()
    value = tag.get("value")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"bool tag with value {value!r}")
    if kind == "int64":
        return to_int(value)
    if kind == "float64":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"float64 tag with value {value!r}")
        return float(value)
    if isinstance(value, str):
        return sink.intern(value)
    if kind in ("string", "binary") or value is None:
        return None if value is None else str(value)
    if isinstance(value, int | float | list):
        return value
    raise ValueError(f"tag value {value!r} of type {kind or 'unset'}")


def _tags(items: Any, sink: SpanSink, report: Report, where: str) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    if items is None:
        return tags
    if not isinstance(items, list):
        report("malformed_attribute", f"{where}: tags are {type(items).__name__}, not a list")
        return tags
    for tag in items:
        try:
            tags[sink.intern(str(tag["key"]))] = _tag_value(tag, sink)
        except _ERRORS as exc:
            report("malformed_attribute", f"{where}: tag {str(tag)[:60]}: {exc}")
    return tags


def _parent(span: dict[str, Any], trace_id: str) -> tuple[str, bool]:
    """The parent span id and whether it comes from a FOLLOWS_FROM reference."""
    child_of = follows_from = ""
    for ref in span.get("references") or ():
        if not isinstance(ref, dict) or _id(ref.get("traceID") or trace_id, 32) != trace_id:
            continue
        ref_type = str(ref.get("refType") or "CHILD_OF").upper()
        if ref_type == "CHILD_OF" and not child_of:
            child_of = _id(ref.get("spanID"), 16)
        elif ref_type == "FOLLOWS_FROM" and not follows_from:
            follows_from = _id(ref.get("spanID"), 16)
    if child_of:
        return child_of, False
    if follows_from:
        return follows_from, True
    return _id(span.get("parentSpanID"), 16), False


def _add_span(
    span: Any, trace: dict[str, Any], sink: SpanSink, src: int, report: Report, where: str
) -> None:
    if not isinstance(span, dict):
        raise TypeError(f"a span is {type(span).__name__}, not an object")
    trace_id = _id(span.get("traceID") or trace.get("traceID"), 32)
    span_id = _id(span.get("spanID"), 16)
    if not trace_id or not span_id:
        raise ValueError("no traceID or spanID")
    at = f"{where}: trace {trace_id} span {span_id}"
    start = _microseconds(span.get("startTime"), "startTime")
    end = start + _microseconds(span.get("duration", 0), "duration")
    parent, follows_from = _parent(span, trace_id)
    attributes = _tags(span.get("tags"), sink, report, at)
    process = span.get("process")
    if not isinstance(process, dict):
        processes = trace.get("processes")
        process = processes.get(span.get("processID")) if isinstance(processes, dict) else None
    if isinstance(process, dict) and isinstance(process.get("serviceName"), str):
        attributes.setdefault("service.name", sink.intern(process["serviceName"]))
    kind = kind_code(str(attributes.get("span.kind", "internal")).lower())
    if "otel.status_code" in attributes:
        status = status_code(str(attributes["otel.status_code"]).upper())
    else:
        status = 2 if attributes.get("error") in (True, "true") else 0
    events = []
    for log in span.get("logs") or ():
        try:
            fields = _tags(log.get("fields"), sink, report, at)
            name = fields.pop("event", "")
            time_ns = _microseconds(log.get("timestamp"), "log timestamp")
            events.append(
                {"name": sink.intern(str(name)), "time_ns": time_ns, "attributes": fields}
            )
        except _ERRORS as exc:
            report("malformed_event", f"{at}: {exc}")
    sink.add(
        trace_id,
        span_id,
        parent,
        str(span.get("operationName") or ""),
        kind,
        start,
        end,
        status,
        attributes,
        events,
        src,
    )
    if follows_from:
        sink.async_rows.append(len(sink) - 1)


def add_traces(traces: list[Any], sink: SpanSink, src: int, report: Report, where: str) -> None:
    """Append the spans of Jaeger traces; what is not a trace or a span is reported."""
    for index, trace in enumerate(traces):
        if not isinstance(trace, dict) or not isinstance(trace.get("spans"), list):
            report("not_trace_json", f"{where}: trace #{index} is not a Jaeger trace object")
            continue
        for span in trace["spans"]:
            try:
                _add_span(span, trace, sink, src, report, where)
            except _ERRORS as exc:
                span_id = span.get("spanID") if isinstance(span, dict) else None
                report("malformed_span", f"{where}: span {span_id or '?'}: {exc}")
