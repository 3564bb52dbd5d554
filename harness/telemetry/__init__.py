"""Tracing and metrics for agent runs: the span and metrics contracts of DESIGN.md.

``Telemetry`` owns a tracer provider (never the global one, so two runs in one
process do not mix) that writes OTLP JSON lines to a file and, when the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
variables are set, also exports over OTLP/HTTP. Metrics go to a
``harness.telemetry.metrics.Metrics`` on a registry the caller controls.

Span attributes follow the OpenTelemetry GenAI semantic conventions as of
semconv 1.44.0 (development status); the harness's own facts are ``parabench.*``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from harness.telemetry.otlp_file import OtlpJsonFileExporter

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
        if spans_path is not None:
            self.file_exporter = OtlpJsonFileExporter(spans_path)
            self.provider.add_span_processor(
                BatchSpanProcessor(
                    self.file_exporter,
                    max_queue_size=max_queue_size,
                    max_export_batch_size=2048,
                    schedule_delay_millis=500,
                )
            )
        if otlp_from_env:
            exporter = _otlp_http_exporter()
            if exporter is not None:
                self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("parabench", schema_url=SEMCONV_SCHEMA_URL)

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
