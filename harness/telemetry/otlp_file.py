"""Spans as OTLP JSON lines, the shape an OpenTelemetry Collector's file exporter writes.

Each export call appends one ``ExportTraceServiceRequest`` object per line, with
trace and span ids in hex and enums as integers (the OTLP/JSON encoding), so
the same analysis reads our files and a Collector's.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["OtlpJsonFileExporter", "spans_to_otlp_json"]

_log = logging.getLogger(__name__)

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def _b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def _ids_to_hex(request: dict[str, Any]) -> dict[str, Any]:
    for resource_spans in request.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for key in _ID_KEYS:
                    if key in span:
                        span[key] = _b64_to_hex(span[key])
                for link in span.get("links", ()):
                    for key in ("traceId", "spanId"):
                        if key in link:
                            link[key] = _b64_to_hex(link[key])
    return request


def spans_to_otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Encode finished spans as one OTLP/JSON ``ExportTraceServiceRequest``."""
    message = encode_spans(spans)
    return _ids_to_hex(MessageToDict(message, use_integers_for_enums=True))


class OtlpJsonFileExporter(SpanExporter):
    """Append spans to ``path`` as OTLP JSON lines; never raises into the caller.

    A failed write is logged and the batch dropped; ``dropped_spans`` counts
    them so a run can report what was lost.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")
        self.exported_spans = 0
        self.dropped_spans = 0
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            line = json.dumps(spans_to_otlp_json(spans), separators=(",", ":"))
            with self._lock:
                if self._closed:
                    raise ValueError("exporter is shut down")
                self._file.write(line + "\n")
                self._file.flush()
                self.exported_spans += len(spans)
        except Exception:  # telemetry never crashes the code it observes
            self.dropped_spans += len(spans)
            _log.exception("could not write %d spans to %s", len(spans), self.path)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if not self._closed:
                self._file.flush()
        return True

    def shutdown(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._file.close()
