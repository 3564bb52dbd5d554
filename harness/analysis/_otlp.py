"""OTLP JSON to span columns, for ``harness.analysis.ingest``.

Two ways in, one way out (``SpanSink``: the span table's columns as they grow):

- ``add_request``: the fast path. ``DECODER`` turns one line into
  ``ExportRequest`` structs (msgspec, ``strict=False`` so an int64 written as a
  JSON string is read as an int), and a tight loop appends each span.
- ``add_request_dict``: the tolerant path, for a line the typed decoder
  rejected (a ``null`` id, a time written as a float, an odd attribute). It
  walks plain dicts and skips only the span or attribute that is wrong.

Both accept ids in hex (OTLP/JSON) or base64 (protobuf's JSON mapping), kinds
and status codes as numbers or enum names, and the legacy
``instrumentationLibrarySpans`` key of older Collector versions.
"""

from __future__ import annotations

import base64
import binascii
from array import array
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = [
    "DECODER",
    "KIND_NAMES",
    "ExportRequest",
    "Report",
    "SpanSink",
    "add_request",
    "add_request_dict",
    "id_hex",
    "kind_code",
    "status_code",
    "to_int",
]

#: ``report(finding, example)``: how the decoders tell ``DataQuality`` about bad data.
Report = Callable[[str, str], None]
#: ``SpanSink.strings.setdefault``: ``cached(text, text)`` is the interned copy of ``text``.
Cache = Callable[[str, str], str]

_ANY_HEX = "0123456789abcdefABCDEF"
_ZERO_SPAN = "0" * 16

#: Span kinds in OTLP enum order; the sink stores a kind as its index here.
KIND_NAMES = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_KINDS: dict[Any, int] = {}
for _number, _name in enumerate(KIND_NAMES):
    for _key in (_number, str(_number), _name, _name.lower(), f"SPAN_KIND_{_name}"):
        _KINDS[_key] = _number
_STATUS: dict[Any, int] = {}
for _number, _name in enumerate(["UNSET", "OK", "ERROR"]):
    for _key in (_number, str(_number), _name, f"STATUS_CODE_{_name}"):
        _STATUS[_key] = _number


def kind_code(value: Any) -> int:
    """A span kind (index into ``KIND_NAMES``) from an OTLP enum number or name.

    Unknown values are ``UNSPECIFIED`` (0).
    """
    try:
        return _KINDS.get(value, 0)
    except TypeError:  # unhashable
        return 0


def status_code(value: Any) -> int:
    """0 unset, 1 ok, 2 error, from an OTLP status code number or name."""
    try:
        return _STATUS.get(value, 0)
    except TypeError:
        return 0


def id_hex(value: Any) -> str:
    """An OTLP id as lowercase hex: hex is kept, base64 of 8 or 16 bytes is decoded.

    A 16- or 32-character string of hex digits is hex; anything else that is not
    base64 of a span or trace id is kept as written (it is still an identity).
    """
    if not value:
        return ""
    text = str(value)
    if len(text) in (16, 32) and not text.strip(_ANY_HEX):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text
    return raw.hex() if len(raw) in (8, 16) else text


def to_int(value: Any) -> int:
    """An OTLP int64 written as a number or a string; raises ``ValueError`` if it is neither."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


# --- typed OTLP/JSON (msgspec) ---------------------------------------------------------
# Field names are OTLP/JSON's; unknown fields (flags, links, dropped counts) are ignored.


class AnyValue(msgspec.Struct, gc=False):
    stringValue: str | None = None
    intValue: int | None = None
    doubleValue: float | None = None
    boolValue: bool | None = None
    arrayValue: ArrayValue | None = None
    kvlistValue: KeyValueList | None = None
    bytesValue: str | None = None


class ArrayValue(msgspec.Struct, gc=False):
    values: list[AnyValue] = []


class KeyValue(msgspec.Struct, gc=False):
    key: str = ""
    value: AnyValue = msgspec.field(default_factory=AnyValue)  # an absent value is None


class KeyValueList(msgspec.Struct, gc=False):
    values: list[KeyValue] = []


class Status(msgspec.Struct, gc=False):
    code: int | str = 0


class Event(msgspec.Struct, gc=False):
    timeUnixNano: int | None = None
    name: str = ""
    attributes: list[KeyValue] = []


class Span(msgspec.Struct, gc=False):
    traceId: str = ""
    spanId: str = ""
    parentSpanId: str = ""
    name: str = ""
    kind: int | str = 0
    startTimeUnixNano: int | None = None
    endTimeUnixNano: int | None = None
    attributes: list[KeyValue] = []
    events: list[Event] = []
    status: Status | None = None


class ScopeSpans(msgspec.Struct, gc=False):
    spans: list[Span] = []


class Resource(msgspec.Struct, gc=False):
    attributes: list[KeyValue] = []


class ResourceSpans(msgspec.Struct, gc=False):
    resource: Resource | None = None
    scopeSpans: list[ScopeSpans] = []
    instrumentationLibrarySpans: list[ScopeSpans] = []


class ExportRequest(msgspec.Struct, gc=False):
    """``ExportTraceServiceRequest``; ``resourceSpans`` is required, so other JSON is rejected."""

    resourceSpans: list[ResourceSpans]


DECODER = msgspec.json.Decoder(ExportRequest, strict=False)


class SpanSink:
    """The span table being built: one array per column, plus where each span came from.

    Trace ids, names and kinds are stored as codes (``array("q")``, indexes
    into ``traces``, ``names`` and ``KIND_NAMES``), so those columns are built
    with one ``take`` each; span ids are kept as written. ``strings`` interns
    repeated attribute keys and values: every decoded string is a fresh object,
    and millions of copies of one key would cost gigabytes. ``sources[src[i]]`` says
    where span ``i`` was read (``file:line``); ``fast_rows`` are the row ranges
    ``add_request`` appended (their span ids are not yet checked for hex);
    ``async_rows`` lists spans whose parent is a Jaeger FOLLOWS_FROM reference.
    """

    def __init__(self) -> None:
        self.trace = array("q")
        self.span_id: list[str] = []
        self.parent_span_id: list[str] = []
        self.name, self.kind, self.status = array("q"), array("q"), array("q")
        self.start_ns, self.end_ns, self.src = array("q"), array("q"), array("q")
        self.attributes: list[dict[str, Any]] = []
        self.events: list[list[dict[str, Any]]] = []
        self.traces: list[str] = []  # trace code -> lowercase hex
        self.trace_codes: dict[str, int] = {}  # trace id (as written, and as hex) -> code
        self.names: dict[str, int] = {}
        self.strings: dict[str, str] = {}
        self.sources: list[str] = []
        self.fast_rows: list[tuple[int, int]] = []
        self.async_rows: list[int] = []

    def __len__(self) -> int:
        return len(self.src)

    def source(self, where: str) -> int:
        """Register a place spans are read from; returns its index for ``src``."""
        self.sources.append(where)
        return len(self.sources) - 1

    def intern(self, text: str) -> str:
        return self.strings.setdefault(text, text)

    def trace_code(self, trace_id: str, *, normalise: bool) -> int:
        code = self.trace_codes.get(trace_id)
        if code is None:
            canonical = id_hex(trace_id) if normalise else trace_id
            code = self.trace_codes.get(canonical)
            if code is None:
                code = self.trace_codes[canonical] = len(self.traces)
                self.traces.append(canonical)
            self.trace_codes[trace_id] = code
        return code

    def name_code(self, name: str) -> int:
        code = self.names.get(name)
        if code is None:
            code = self.names[name] = len(self.names)
        return code

    def add(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        name: str,
        kind: int,
        start_ns: int,
        end_ns: int,
        status: int,
        attributes: dict[str, Any],
        events: list[dict[str, Any]],
        src: int,
    ) -> None:
        """Append one span with ids already as hex (``add_request`` inlines this).

        Raises ``ValueError`` (and appends nothing) when a time does not fit int64.
        """
        _append_times(self, start_ns, end_ns)
        self.trace.append(self.trace_code(trace_id, normalise=False))
        self.span_id.append(span_id)
        self.parent_span_id.append(parent_span_id)
        self.name.append(self.name_code(name))
        self.kind.append(kind)
        self.status.append(status)
        self.attributes.append(attributes)
        self.events.append(events)
        self.src.append(src)


def _append_times(sink: SpanSink, start_ns: int, end_ns: int) -> None:
    try:
        sink.start_ns.append(start_ns)
        sink.end_ns.append(end_ns)
    except OverflowError:
        del sink.start_ns[len(sink.end_ns) :]
        raise ValueError(f"time {start_ns}..{end_ns} does not fit in int64") from None


def _typed_value(value: AnyValue, cached: Cache) -> Any:
    """Any ``AnyValue`` as Python (the attribute loops inline the scalar cases)."""
    if value.stringValue is not None:
        return cached(value.stringValue, value.stringValue)
    if value.intValue is not None:
        return value.intValue
    if value.doubleValue is not None:
        return value.doubleValue
    if value.boolValue is not None:
        return value.boolValue
    if value.arrayValue is not None:
        return [
            cached(item, item) if (item := v.stringValue) is not None else _typed_value(v, cached)
            for v in value.arrayValue.values
        ]
    if value.kvlistValue is not None:
        return _typed_attributes(value.kvlistValue.values, cached)
    return value.bytesValue


def _typed_attributes(items: list[KeyValue], cached: Cache) -> dict[str, Any]:
    """Attributes as a dict; keys and string values are interned through ``cached``."""
    attributes: dict[str, Any] = {}
    for kv in items:
        value = kv.value
        item: Any = value.stringValue
        if item is not None:
            item = cached(item, item)
        elif (
            (item := value.intValue) is None
            and (item := value.doubleValue) is None
            and (item := value.boolValue) is None
        ):
            item = _typed_value(value, cached)  # array, kvlist, bytes or empty
        key = kv.key
        attributes[cached(key, key)] = item
    return attributes


def add_request(
    request: ExportRequest, sink: SpanSink, src: int, report: Report, where: str
) -> None:
    """Append the spans of one typed request; a span without ids or times is reported.

    Span and parent ids are coded as written: ``SpanTable`` checks the distinct
    ids at once and converts the few that are not lowercase hex.
    """
    first_row = len(sink)
    cached = sink.strings.setdefault
    trace_codes, names = sink.trace_codes, sink.names
    add_trace, add_span, add_parent = (
        sink.trace.append,
        sink.span_id.append,
        sink.parent_span_id.append,
    )
    add_name, add_kind, add_status = sink.name.append, sink.kind.append, sink.status.append
    add_start, add_end, add_src = sink.start_ns.append, sink.end_ns.append, sink.src.append
    add_attributes, add_events = sink.attributes.append, sink.events.append
    kinds, statuses = _KINDS, _STATUS
    for resource_spans in request.resourceSpans:
        service = None
        if resource_spans.resource is not None:
            for kv in resource_spans.resource.attributes:
                if kv.key == "service.name":
                    service = _typed_value(kv.value, cached)
        scopes = resource_spans.scopeSpans
        if resource_spans.instrumentationLibrarySpans:
            scopes = scopes + resource_spans.instrumentationLibrarySpans
        for scope_spans in scopes:
            for span in scope_spans.spans:
                trace_id, span_id = span.traceId, span.spanId
                start, end = span.startTimeUnixNano, span.endTimeUnixNano
                if not trace_id or not span_id or start is None or end is None:
                    _report_missing(span, report, where)
                    continue
                try:
                    add_start(start)
                    add_end(end)
                except OverflowError:
                    del sink.start_ns[len(sink.end_ns) :]
                    report("malformed_span", f"{where}: span {span_id}: a time is not int64")
                    continue
                trace = trace_codes.get(trace_id)
                if trace is None:
                    trace = sink.trace_code(trace_id, normalise=True)
                add_trace(trace)
                add_span(span_id)
                add_parent(span.parentSpanId)
                code = names.get(span.name)
                if code is None:
                    code = names[span.name] = len(names)
                add_name(code)
                add_kind(kinds.get(span.kind, 0))
                add_status(0 if span.status is None else statuses.get(span.status.code, 0))
                attributes: dict[str, Any] = {}
                for kv in span.attributes:  # _typed_attributes, inlined: the hot loop
                    value = kv.value
                    item: Any = value.stringValue
                    if item is not None:
                        item = cached(item, item)
                    elif (
                        (item := value.intValue) is None
                        and (item := value.doubleValue) is None
                        and (item := value.boolValue) is None
                    ):
                        item = _typed_value(value, cached)
                    key = kv.key
                    attributes[cached(key, key)] = item
                if service is not None and "service.name" not in attributes:
                    attributes["service.name"] = service
                add_attributes(attributes)
                add_events(_typed_events(span, cached, report, where) if span.events else [])
                add_src(src)
    if len(sink) > first_row:
        sink.fast_rows.append((first_row, len(sink)))


def _report_missing(span: Span, report: Report, where: str) -> None:
    missing = [
        field
        for field, value in (
            ("traceId", span.traceId),
            ("spanId", span.spanId),
            ("startTimeUnixNano", span.startTimeUnixNano),
            ("endTimeUnixNano", span.endTimeUnixNano),
        )
        if value is None or value == ""
    ]
    report(
        "malformed_span",
        f"{where}: span {span.spanId or '?'} {span.name!r}: no {', '.join(missing)}",
    )


def _typed_events(span: Span, cached: Cache, report: Report, where: str) -> list[dict[str, Any]]:
    events = []
    for event in span.events:
        if event.timeUnixNano is None:
            report("malformed_event", f"{where}: span {span.spanId}: an event has no time")
            continue
        name = event.name
        events.append(
            {
                "name": cached(name, name),
                "time_ns": event.timeUnixNano,
                "attributes": _typed_attributes(event.attributes, cached),
            }
        )
    return events


# --- tolerant OTLP/JSON (plain dicts) -----------------------------------------------------

#: What a value of the wrong shape raises on the tolerant path (OverflowError: a
#: ``doubleValue`` of 10**400, which JSON allows and no float holds).
_BAD_VALUE = (TypeError, ValueError, KeyError, AttributeError, RecursionError, OverflowError)


def _dict_value(value: Any, intern: Callable[[str], str]) -> Any:
    """An ``AnyValue`` dict as Python; raises ``ValueError``/``TypeError`` when it is not one."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"expected an AnyValue object, got {type(value).__name__}")
    if "stringValue" in value:
        text = value["stringValue"]
        if not isinstance(text, str):
            raise TypeError(f"stringValue is {type(text).__name__}")
        return intern(text)
    if "intValue" in value:
        return to_int(value["intValue"])
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, bool) or not isinstance(number, int | float | str):
            raise TypeError(f"doubleValue is {type(number).__name__}")
        return float(number)
    if "boolValue" in value:
        flag = value["boolValue"]
        if not isinstance(flag, bool):
            raise TypeError(f"boolValue is {type(flag).__name__}")
        return flag
    if "arrayValue" in value:
        return [_dict_value(v, intern) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        items = (value["kvlistValue"] or {}).get("values") or []
        return {intern(str(kv["key"])): _dict_value(kv.get("value"), intern) for kv in items}
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None


def _dict_attributes(
    items: Any, intern: Callable[[str], str], report: Report, where: str
) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if items is not None and not isinstance(items, list):
        report("malformed_attribute", f"{where}: attributes are {type(items).__name__}, not a list")
        return attributes
    for kv in items or ():
        try:
            attributes[intern(str(kv["key"]))] = _dict_value(kv.get("value"), intern)
        except _BAD_VALUE as exc:
            report("malformed_attribute", f"{where}: {str(kv)[:60]}: {exc}")
    return attributes


def _dict_id(span: dict[str, Any], key: str) -> str:
    """An id field as hex; one that is not a string (a number, a list) is an error, as in
    the typed path: ``str()`` of it would make up an id no other span has."""
    value = span.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}, not a string")
    return id_hex(value)


def _dict_span(
    span: Any, service: Any, sink: SpanSink, src: int, report: Report, where: str
) -> None:
    if not isinstance(span, dict):
        raise TypeError(f"a span is {type(span).__name__}, not an object")
    tid, sid = _dict_id(span, "traceId"), _dict_id(span, "spanId")
    if not tid or not sid:
        raise ValueError("no traceId or spanId")
    at = f"{where}: span {sid}"
    start = to_int(span.get("startTimeUnixNano"))
    end = to_int(span.get("endTimeUnixNano"))
    parent = _dict_id(span, "parentSpanId")
    attributes = _dict_attributes(span.get("attributes"), sink.intern, report, at)
    if service is not None:
        attributes.setdefault("service.name", service)
    events = []
    for event in span.get("events") or ():
        try:
            events.append(
                {
                    "name": sink.intern(str(event.get("name", ""))),
                    "time_ns": to_int(event.get("timeUnixNano")),
                    "attributes": _dict_attributes(
                        event.get("attributes"), sink.intern, report, at
                    ),
                }
            )
        except _BAD_VALUE as exc:
            report("malformed_event", f"{at}: {exc}")
    status = span.get("status")
    sink.add(
        tid,
        sid,
        "" if parent == _ZERO_SPAN else parent,
        str(span.get("name") or ""),
        kind_code(span.get("kind", 0)),
        start,
        end,
        status_code(status.get("code", 0)) if isinstance(status, dict) else 0,
        attributes,
        events,
        src,
    )


def add_request_dict(
    request: dict[str, Any], sink: SpanSink, src: int, report: Report, where: str
) -> None:
    """Append the spans of one request given as plain dicts, skipping only what is malformed."""
    for resource_spans in _list(request.get("resourceSpans"), "resourceSpans", report, where):
        service = None
        resource = resource_spans.get("resource")
        if isinstance(resource, dict):
            found = _dict_attributes(resource.get("attributes"), sink.intern, report, where)
            service = found.get("service.name")
        scopes = _list(resource_spans.get("scopeSpans"), "scopeSpans", report, where)
        scopes += _list(
            resource_spans.get("instrumentationLibrarySpans"), "scopeSpans", report, where
        )
        for scope_spans in scopes:
            for span in _list(scope_spans.get("spans"), "spans", report, where):
                try:
                    _dict_span(span, service, sink, src, report, where)
                except _BAD_VALUE as exc:
                    report("malformed_span", f"{where}: span {span.get('spanId') or '?'}: {exc}")


def _list(value: Any, name: str, report: Report, where: str) -> list[dict[str, Any]]:
    """The objects of a JSON array field; anything else is reported and skipped."""
    if value is None:
        return []
    if not isinstance(value, list):
        report("malformed_span", f"{where}: {name} is {type(value).__name__}, not a list")
        return []
    good = []
    for item in value:
        if isinstance(item, dict):
            good.append(item)
        else:
            report("malformed_span", f"{where}: a {name} entry is {type(item).__name__}")
    return good
