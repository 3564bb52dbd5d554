"""Read OTLP JSON lines (ours or a Collector file exporter's) into a span table.

Bad data never stops an analysis: a line that is not JSON, not UTF-8, or not
an ``ExportTraceServiceRequest`` is counted as a data-quality finding with an
example, and reading goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

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

# OTLP span kinds as integers (and the enum names a protobuf JSON writer may use).
_KINDS = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}
_KIND_NAMES = {f"SPAN_KIND_{v}": v for v in _KINDS.values()}


@dataclass
class DataQuality:
    """Problems found while reading, each counted with up to three examples."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, finding: str, example: str) -> None:
        self.counts[finding] = self.counts.get(finding, 0) + 1
        bucket = self.examples.setdefault(finding, [])
        if len(bucket) < 3:
            bucket.append(example[:200])

    @property
    def clean(self) -> bool:
        return not self.counts

    def to_dict(self) -> dict[str, Any]:
        return {
            name: {"count": n, "examples": self.examples.get(name, [])}
            for name, n in sorted(self.counts.items())
        }


def _id_hex(value: Any) -> str:
    """OTLP ids are hex in OTLP/JSON, base64 in protobuf's JSON mapping; accept both."""
    if not value:
        return ""
    text = str(value)
    if len(text) in (16, 32) and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text.lower()


def _any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return _attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _attributes(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: _any_value(kv.get("value", {})) for kv in items if "key" in kv}


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return _KIND_NAMES.get(value, value.upper())
    return _KINDS.get(int(value or 0), "UNSPECIFIED")


def spans_from_otlp(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The spans of one ``ExportTraceServiceRequest`` as flat dicts."""
    for resource_spans in request.get("resourceSpans", ()):
        resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                attrs = _attributes(span.get("attributes", []))
                if "service.name" in resource:
                    attrs.setdefault("service.name", resource["service.name"])
                yield {
                    "trace_id": _id_hex(span.get("traceId")),
                    "span_id": _id_hex(span.get("spanId")),
                    "parent_span_id": _id_hex(span.get("parentSpanId")),
                    "name": span.get("name", ""),
                    "kind": _kind(span.get("kind", 0)),
                    "start_ns": int(span.get("startTimeUnixNano", 0)),
                    "end_ns": int(span.get("endTimeUnixNano", 0)),
                    "status": int((span.get("status") or {}).get("code", 0) or 0)
                    if not isinstance((span.get("status") or {}).get("code"), str)
                    else {"STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(
                        span["status"]["code"], 0
                    ),
                    "attributes": attrs,
                    "events": [
                        {
                            "name": e.get("name", ""),
                            "time_ns": int(e.get("timeUnixNano", 0)),
                            "attributes": _attributes(e.get("attributes", [])),
                        }
                        for e in span.get("events", ())
                    ],
                }


def read_spans(paths: str | Path | Iterable[str | Path]) -> tuple[pd.DataFrame, DataQuality]:
    """Read OTLP JSON lines files into one span table (columns: ``SPAN_COLUMNS``).

    Raises ``TraceDataError`` only when a file cannot be opened at all.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    quality = DataQuality()
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise TraceDataError(
                f"cannot open trace file: {exc.strerror}",
                where=str(path),
                fix="check the path; `parabench run` writes DIR/spans.jsonl",
            ) from None
        with handle:
            for lineno, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    quality.add("undecodable_bytes", where)
                    continue
                try:
                    request = json.loads(text)
                except json.JSONDecodeError as exc:
                    quality.add("truncated_or_invalid_json", f"{where}: {exc.msg}")
                    continue
                if not isinstance(request, dict) or "resourceSpans" not in request:
                    quality.add("not_otlp_json", where)
                    continue
                try:
                    rows.extend(spans_from_otlp(request))
                except (TypeError, ValueError, KeyError, AttributeError) as exc:
                    quality.add("malformed_span", f"{where}: {exc}")
    frame = pd.DataFrame(rows, columns=SPAN_COLUMNS)
    if not frame.empty:
        dup = frame.duplicated(["trace_id", "span_id"], keep="first")
        for _, row in frame[dup].head(3).iterrows():
            quality.add("duplicate_span_id", f"trace {row.trace_id} span {row.span_id}")
        if dup.sum() > 3:
            quality.counts["duplicate_span_id"] = int(dup.sum())
        frame = frame[~dup].reset_index(drop=True)
    return frame, quality
