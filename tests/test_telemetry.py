"""Telemetry: the OTLP JSON file, OTLP/HTTP export, failing exporters and Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from harness.analysis.ingest import read_spans
from harness.executor import Executor
from harness.scenario import load_scenario
from harness.telemetry import Telemetry
from harness.telemetry.metrics import Metrics
from harness.telemetry.otlp_file import OtlpJsonFileExporter

# research_assistant: 1 run span + 5 step spans + 5 operation spans per completed run.
SPANS_PER_RUN = 11
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(autouse=True)
def _no_collector_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def _run_once(telemetry: Telemetry, variant: str = "parallel", seed: int = 0) -> Any:
    scenario = load_scenario("research_assistant")
    executor = Executor(scenario, telemetry=telemetry, time_scale=0.01)
    return asyncio.run(executor.run(variant, seed=seed))


class _ExplodingExporter(SpanExporter):
    """An exporter whose every export raises, like a collector client with a bug."""

    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise RuntimeError("collector client exploded")

    def shutdown(self) -> None:
        return None


class _Collector(BaseHTTPRequestHandler):
    """A tiny OTLP/HTTP receiver: keeps every POST and answers 200 with an empty response."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(  # type: ignore[attr-defined]
            (self.path, self.headers.get("Content-Type", ""), body)
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class TestOtlpJsonFileExporter:
    """Spans land on disk as OTLP JSON lines a Collector would also write."""

    def test_lines_are_export_requests_with_hex_ids(self, tmp_path: Path):
        """Each line is one ExportTraceServiceRequest; ids are hex, kinds are integers."""
        path = tmp_path / "spans.jsonl"
        telemetry = Telemetry(spans_path=path, otlp_from_env=False)
        result = _run_once(telemetry)
        telemetry.shutdown()
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines
        spans = []
        for line in lines:
            request = json.loads(line)
            assert list(request) == ["resourceSpans"]
            for resource_spans in request["resourceSpans"]:
                resource = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
                assert resource["service.name"] == {"stringValue": "parabench"}
                for scope_spans in resource_spans["scopeSpans"]:
                    spans.extend(scope_spans["spans"])
        assert len(spans) == SPANS_PER_RUN
        for span in spans:
            assert HEX32.match(span["traceId"]), span["traceId"]
            assert HEX16.match(span["spanId"]), span["spanId"]
            assert "parentSpanId" not in span or HEX16.match(span["parentSpanId"])
            assert isinstance(span["kind"], int) and span["kind"] in (1, 3)
            assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
        assert {s["traceId"] for s in spans} == {result.trace_id}
        roots = [s for s in spans if not s.get("parentSpanId")]
        assert [r["name"] for r in roots] == ["invoke_agent research_assistant"]
        # A client (LLM) span is kind 3, everything else here INTERNAL (1).
        assert {s["kind"] for s in spans if s["name"].startswith("chat ")} == {3}

    def test_full_disk_drops_spans_and_the_run_goes_on(self):
        """Writing to a full disk (/dev/full) loses the spans, counted, and never the run."""
        if not Path("/dev/full").exists():
            pytest.skip("needs /dev/full")
        telemetry = Telemetry(spans_path="/dev/full", otlp_from_env=False)
        result = _run_once(telemetry)
        assert telemetry.force_flush()
        telemetry.shutdown()
        assert result.outcome == "completed"
        exporter = telemetry.file_exporter
        assert exporter is not None
        assert exporter.exported_spans == 0
        assert exporter.dropped_spans == SPANS_PER_RUN

    def test_export_after_shutdown_reports_failure(self, tmp_path: Path):
        """Export after shutdown returns FAILURE instead of raising, and writes nothing."""
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        provider.get_tracer("test").start_span("late").end()
        exporter = OtlpJsonFileExporter(tmp_path / "spans.jsonl")
        exporter.shutdown()
        assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
        assert exporter.dropped_spans == 1
        assert (tmp_path / "spans.jsonl").read_text() == ""
        exporter.shutdown()  # a second shutdown is harmless


class TestTelemetry:
    """Trace export never gets in the way of a run, and reaches a collector when asked."""

    def test_raising_exporter_never_crashes_a_run(self, tmp_path: Path, caplog):
        """An exporter that raises on every export, sync or batched, leaves the run intact."""
        path = tmp_path / "spans.jsonl"
        telemetry = Telemetry(spans_path=path, otlp_from_env=False)
        sync, batched = _ExplodingExporter(), _ExplodingExporter()
        telemetry.provider.add_span_processor(SimpleSpanProcessor(sync))
        telemetry.provider.add_span_processor(BatchSpanProcessor(batched))
        with caplog.at_level(logging.ERROR):
            result = _run_once(telemetry)
            telemetry.force_flush()
        telemetry.shutdown()
        assert result.outcome == "completed"
        assert sync.calls == SPANS_PER_RUN
        assert batched.calls >= 1
        spans, quality = read_spans(path)
        assert quality.clean
        assert len(spans) == SPANS_PER_RUN

    def test_otlp_http_export_when_endpoint_is_set(self, tmp_path, collector, monkeypatch):
        """With OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, spans are POSTed as protobuf."""
        host, port = collector.server_address[:2]
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://{host}:{port}/v1/traces")
        telemetry = Telemetry(spans_path=tmp_path / "spans.jsonl")
        result = _run_once(telemetry)
        assert telemetry.force_flush(timeout_millis=10_000)
        telemetry.shutdown()
        assert collector.received, "the collector got nothing"
        names, trace_ids = [], set()
        for path, content_type, body in collector.received:
            assert path == "/v1/traces"
            assert content_type == "application/x-protobuf"
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        names.append(span.name)
                        trace_ids.add(span.trace_id.hex())
        assert len(names) == SPANS_PER_RUN
        assert "invoke_agent research_assistant" in names
        assert trace_ids == {result.trace_id}

    def test_no_http_export_without_endpoint(self, tmp_path, collector):
        """Without the OTEL_* endpoint variables nothing is sent anywhere."""
        telemetry = Telemetry(spans_path=tmp_path / "spans.jsonl")
        _run_once(telemetry)
        telemetry.force_flush()
        telemetry.shutdown()
        assert collector.received == []


RESEARCH_MODEL_LABELS = {
    "plan": "gpt-4o-mini",
    "search_web": "tool:web_search",
    "search_docs": "gpt-4o-mini",
    "analyze_data": "gpt-4o",
    "draft": "gpt-4o-mini",
}
RESEARCH_BRANCHES = ("search_web", "search_docs", "analyze_data")
CONTRACT_FAMILIES = {
    "parabench_run_duration_seconds": "histogram",
    "parabench_run_time_to_first_card_seconds": "histogram",
    "parabench_runs_in_flight": "gauge",
    "parabench_step_duration_seconds": "histogram",
    "parabench_step_queue_seconds": "histogram",
    "parabench_cost_usd_total": "counter",
    "parabench_llm_tokens_total": "counter",
    "parabench_llm_errors_total": "counter",
    "parabench_branch_saved_seconds_total": "counter",
    "gen_ai_client_operation_duration_seconds": "histogram",
    "gen_ai_client_token_usage": "histogram",
}


class TestMetrics:
    """The metrics contract of DESIGN.md, on a registry of the test's own."""

    def test_prepare_preinitialises_known_label_sets(self):
        """Before any run every contract metric exists, with its known label sets at 0."""
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        scenario = load_scenario("research_assistant")
        metrics.prepare(scenario)
        text = generate_latest(registry).decode()
        for family, kind in CONTRACT_FAMILIES.items():
            assert f"# TYPE {family} {kind}" in text, family
        value = registry.get_sample_value
        name = "research_assistant"
        for variant in ("sequential", "parallel", "parallel_capped"):
            base = {"scenario": name, "variant": variant}
            for outcome in ("completed", "partial", "failed", "cancelled"):
                labels = {**base, "outcome": outcome}
                assert value("parabench_run_duration_seconds_count", labels) == 0
            assert value("parabench_run_time_to_first_card_seconds_count", base) == 0
            assert value("parabench_runs_in_flight", base) == 0
            for step, model in RESEARCH_MODEL_LABELS.items():
                kind = "tool" if model.startswith("tool:") else "llm"
                step_labels = {**base, "step": step}
                duration_labels = step_labels | {"kind": kind}
                assert value("parabench_step_duration_seconds_count", duration_labels) == 0
                assert value("parabench_step_queue_seconds_count", step_labels) == 0
                assert value("parabench_cost_usd_total", step_labels | {"model": model}) == 0
        for variant in ("parallel", "parallel_capped"):
            for step in RESEARCH_BRANCHES:
                labels = {"scenario": name, "variant": variant, "step": step}
                assert value("parabench_branch_saved_seconds_total", labels) == 0
                assert value("parabench_branch_extra_cost_usd_total", labels) == 0
        for model in ("gpt-4o-mini", "gpt-4o"):
            genai = {
                "gen_ai_operation_name": "chat",
                "gen_ai_provider_name": "parabench.simulated",
                "gen_ai_request_model": model,
            }
            assert (
                value("gen_ai_client_operation_duration_seconds_count", genai | {"error_type": ""})
                == 0
            )
            for token_type in ("input", "output"):
                assert (
                    value("parabench_llm_tokens_total", {"model": model, "type": token_type}) == 0
                )
                usage = genai | {"gen_ai_token_type": token_type}
                assert value("gen_ai_client_token_usage_count", usage) == 0

    def test_runs_update_metrics_consistently_with_spans(self, record):
        """After runs the counts, tokens, costs and branch savings match the spans and theory."""
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        scenario = load_scenario("research_assistant")
        jobs = [("parallel", 3, 0), ("parallel", 3, 1), ("sequential", 3, 0)]
        rec = record(scenario, jobs, metrics=metrics)
        assert [r.outcome for r in rec.results] == ["completed"] * 3
        value = registry.get_sample_value
        name = "research_assistant"
        for variant, runs in (("parallel", 2), ("sequential", 1)):
            base = {"scenario": name, "variant": variant}
            assert (
                value("parabench_run_duration_seconds_count", base | {"outcome": "completed"})
                == runs
            )
            assert value("parabench_run_time_to_first_card_seconds_count", base) == runs
            assert value("parabench_runs_in_flight", base) == 0
            durations = sum(r.e2e_s for r in rec.results if r.variant == variant)
            assert value("parabench_run_duration_seconds_sum", base | {"outcome": "completed"}) == (
                pytest.approx(durations)
            )

        # Tokens: the counters equal the usage on the chat spans ...
        chats = rec.spans[rec.spans.name.str.startswith("chat ")]
        for model in ("gpt-4o-mini", "gpt-4o"):
            mine = chats[chats.attributes.map(lambda a, m=model: a["gen_ai.request.model"] == m)]
            for token_type in ("input", "output"):
                used = sum(a[f"gen_ai.usage.{token_type}_tokens"] for a in mine.attributes)
                assert (
                    value("parabench_llm_tokens_total", {"model": model, "type": token_type})
                    == used
                )
        # ... and the scenario's fixed token counts: parallel re-sends context to the branches.
        # mini input: parallel 1200 + 12000 + 6000, sequential 1200 + 6000 + 6000.
        tokens = {"model": "gpt-4o-mini", "type": "input"}
        assert value("parabench_llm_tokens_total", tokens) == 2 * 19200 + 13200
        assert value("parabench_llm_tokens_total", {"model": "gpt-4o", "type": "input"}) == (
            2 * 9000 + 3000
        )
        assert value("parabench_llm_tokens_total", {"model": "gpt-4o", "type": "output"}) == 3 * 350

        # Cost: every LLM step cost something, and the search tool its declared $0.005 a run.
        for variant in ("parallel", "sequential"):
            for step, model in RESEARCH_MODEL_LABELS.items():
                labels = {"scenario": name, "variant": variant, "step": step, "model": model}
                assert value("parabench_cost_usd_total", labels) > 0
        web = {"scenario": name, "step": "search_web", "model": "tool:web_search"}
        assert value("parabench_cost_usd_total", web | {"variant": "parallel"}) == pytest.approx(
            0.01
        )

        # Branches of the parallel fork each saved time.
        for step in RESEARCH_BRANCHES:
            labels = {"scenario": name, "variant": "parallel", "step": step}
            assert value("parabench_branch_saved_seconds_total", labels) > 0
        # Re-sent context makes the two LLM branches dearer than in the sequential baseline.
        for step in ("search_docs", "analyze_data"):
            labels = {"scenario": name, "variant": "parallel", "step": step}
            assert value("parabench_branch_extra_cost_usd_total", labels) > 0

        text = generate_latest(registry).decode()
        assert "_created" not in text
        openmetrics = generate_openmetrics(registry).decode()
        exemplar_ids = set(re.findall(r'# \{trace_id="([0-9a-f]{32})"\}', openmetrics))
        assert exemplar_ids
        assert exemplar_ids <= {r.trace_id for r in rec.results}
        run_lines = [
            line
            for line in openmetrics.splitlines()
            if line.startswith("parabench_run_duration_seconds_bucket") and "trace_id" in line
        ]
        assert run_lines

    def test_errors_are_counted_by_type(self, record):
        """Failed LLM attempts show up in parabench_llm_errors_total with their error type."""
        from harness.scenario import Scenario

        scenario = Scenario.from_dict(
            {
                "name": "broken",
                "steps": [
                    {
                        "id": "ask",
                        "kind": "llm",
                        "input_tokens": 10,
                        "output_tokens": 5,
                        "fail_rate": 1.0,
                        "max_attempts": 3,
                    }
                ],
                "variants": {"sequential": {"mode": "sequential"}},
            }
        )
        registry = CollectorRegistry()
        record(scenario, [("sequential", 0, 0)], metrics=Metrics(registry))
        labels = {"model": "gpt-4o-mini", "error_type": "simulated_error"}
        assert registry.get_sample_value("parabench_llm_errors_total", labels) == 3
        failed = {"scenario": "broken", "variant": "sequential", "outcome": "failed"}
        assert registry.get_sample_value("parabench_run_duration_seconds_count", failed) == 1

    def test_bad_values_never_raise(self, caplog):
        """Updates with a bad value or an oversized exemplar label are logged and dropped."""
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        with caplog.at_level(logging.ERROR, logger="harness.telemetry.metrics"):
            metrics.run_finished("s", "v", "completed", "not a number", None, None)  # type: ignore[arg-type]
            metrics.step_finished("s", "v", "step", "llm", 0.1, 0.0, 0.01, "m", "x" * 200)
            metrics.llm_attempt("p", "m", 0.1, -5, 3, None, None)
            metrics.branch("s", "v", "step", float("nan"), object())  # type: ignore[arg-type]
        assert len(caplog.records) >= 3
        assert all("dropping a metric update" in r.getMessage() for r in caplog.records)
        generate_latest(registry)  # the registry still renders
