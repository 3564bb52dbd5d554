"""Tracing and metrics for agent runs: the span and metrics contracts of DESIGN.md.

``Telemetry`` owns a tracer provider (never the global one, so two runs in one
process do not mix) that writes OTLP JSON lines to a file and, when the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
variables are set, also exports over OTLP/HTTP. Metrics go to a
``harness.telemetry.metrics.Metrics`` on a registry the caller controls.

Spans reach each exporter through a ``QueuedSpanProcessor``
(``harness.telemetry.processor``), not the SDK's ``BatchSpanProcessor``,
which drops spans silently when its queue is full. The spans file never
loses one: when its queue is full the thread ending a span writes a batch
itself. The OTLP/HTTP export drops when its queue is full (a collector can
be down for long), and counts it. Every span exported or dropped is counted
in ``parabench_telemetry_spans_exported_total`` /
``parabench_telemetry_spans_dropped_total`` when a ``Metrics`` is attached,
and in ``span_counts()``.

Span attributes follow the OpenTelemetry GenAI semantic conventions as of
semconv 1.44.0 (development status); the harness's own facts are ``parabench.*``.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer

from harness.telemetry.otlp_file import OtlpJsonFileExporter
from harness.telemetry.processor import QueuedSpanProcessor

if TYPE_CHECKING:
    from harness.telemetry.metrics import Metrics

__all__ = ["SEMCONV_SCHEMA_URL", "Telemetry", "capture_content_enabled"]

_log = logging.getLogger(__name__)

SEMCONV_SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def capture_content_enabled() -> bool:
    """Whether the user opted in to recording prompt and response content."""
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _otlp_http_exporter() -> SpanExporter | None:
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    except Exception:  # a bad collector setting must not stop the run
        _log.exception("OTLP/HTTP export is configured but could not start; spans stay local")
        return None


class Telemetry:
    """A tracer writing spans to ``spans_path`` (and OTLP/HTTP if configured), plus metrics."""

    def __init__(
        self,
        *,
        spans_path: str | Path | None = None,
        metrics: Metrics | None = None,
        service_name: str = "parabench",
        otlp_from_env: bool = True,
        max_queue_size: int = 200_000,
    ) -> None:
        self.metrics = metrics
        self.capture_content = capture_content_enabled()
        resource = Resource.create({"service.name": service_name})
        self.provider = TracerProvider(resource=resource)
        self.file_exporter: OtlpJsonFileExporter | None = None
        #: The span processors, by exporter name ("file", "otlp").
        self.processors: dict[str, QueuedSpanProcessor] = {}
        if spans_path is not None:
            self.file_exporter = OtlpJsonFileExporter(spans_path)
            # The spans file is the record of the runs: never drop, block when full.
            self._add("file", self.file_exporter, max_queue_size, 2048, 0.5, "block")
        if otlp_from_env:
            exporter = _otlp_http_exporter()
            if exporter is not None:
                # A collector may be down for long: a bounded queue, drops counted.
                self._add("otlp", exporter, min(max_queue_size, 20_000), 512, 1.0, "drop")
        self.tracer: Tracer = self.provider.get_tracer("parabench", schema_url=SEMCONV_SCHEMA_URL)

    def _add(
        self,
        name: str,
        exporter: SpanExporter,
        max_queue_size: int,
        batch_size: int,
        delay_s: float,
        when_full: Literal["block", "drop"],
    ) -> None:
        metrics = self.metrics
        if metrics is not None:
            metrics.prepare_exporter(name)
        processor = QueuedSpanProcessor(
            exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=batch_size,
            schedule_delay_s=delay_s,
            when_full=when_full,
            on_export=None if metrics is None else partial(metrics.spans_exported, name),
            on_drop=None if metrics is None else partial(metrics.spans_dropped, name),
        )
        self.processors[name] = processor
        self.provider.add_span_processor(processor)

    def span_counts(self) -> dict[str, dict[str, int]]:
        """Per exporter: spans ``exported`` and ``dropped`` (per reason) so far."""
        return {
            name: {"exported": p.exported, **{f"dropped_{k}": v for k, v in p.dropped.items()}}
            for name, p in self.processors.items()
        }

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return self.provider.force_flush(timeout_millis)
        except Exception:
            _log.exception("flushing spans failed")
            return False

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()
        except Exception:
            _log.exception("shutting down the tracer provider failed")
