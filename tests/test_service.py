"""The agent service over real HTTP: SSE contract, validation, tracing, overload, metrics."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import read_spans, system_binary
from prometheus_client.parser import text_string_to_metric_families

from harness.errors import ConfigError
from harness.scenario import load_scenario
from harness.service import ServiceConfig, ServiceServer
from harness.service.config import load_config
from harness.sse import SseEvent, SseParser

ROOT = Path(__file__).resolve().parents[1]
HEX32 = re.compile(r"^[0-9a-f]{32}$")
SCALE = 0.05  # research_assistant: sequential ≈ 1.2 s, parallel ≈ 0.6 s
STARTED_FIELDS = {"run_id", "trace_id", "scenario", "variant", "cards_expected"}
CARD_FIELDS = {"run_id", "step_id", "index", "at_ms"}
FINAL_FIELDS = {"run_id", "trace_id", "outcome", "e2e_ms", "ttfc_ms", "cost_usd", "cards"}
TIMEOUT = httpx.Timeout(15.0)


@pytest.fixture(autouse=True)
def _no_collector_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServiceServer]]:
    """Start a service on a free loopback port with fast time and a spans file."""
    started: list[ServiceServer] = []

    def start(**settings: Any) -> ServiceServer:
        settings.setdefault("port", 0)
        settings.setdefault("time_scale", SCALE)
        settings.setdefault("spans_path", tmp_path / f"spans-{len(started)}.jsonl")
        server = ServiceServer(ServiceConfig.model_validate(settings)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def service(serve: Callable[..., ServiceServer]) -> ServiceServer:
    return serve()


def run_events(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[SseEvent], SseParser]:
    """POST a run and parse the whole event stream."""
    parser = SseParser()
    events: list[SseEvent] = []
    with httpx.stream(
        "POST", f"{url}/v1/runs", json=body, headers=headers, timeout=TIMEOUT
    ) as response:
        for chunk in response.iter_raw():
            events.extend(parser.feed(chunk))
    return response, events, parser


def flushed_spans(server: ServiceServer, count: int = 1) -> list[dict[str, Any]]:
    """The spans written once ``count`` SERVER spans (requests) have ended.

    The server span ends just after the last byte of its response, so a client
    that has read everything can still be a moment ahead of it.
    """
    assert server.config.spans_path is not None
    deadline = time.monotonic() + 5
    while True:
        server.state.telemetry.force_flush()
        spans = read_spans(server.config.spans_path) if server.config.spans_path.exists() else []
        if sum(s["name"] == "POST /v1/runs" for s in spans) >= count:
            return spans
        assert time.monotonic() < deadline, f"{count} request span(s) never ended"
        time.sleep(0.01)


Samples = list[tuple[str, dict[str, str], float]]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition (parse once: it is large)."""
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def sample(rows: Samples, name: str, **labels: str) -> float | None:
    for sname, slabels, value in rows:
        if sname == name and all(slabels.get(k) == v for k, v in labels.items()):
            return value
    return None


def contract_metric_names() -> list[str]:
    """The metric names of docs/concepts.md's table."""
    text = (ROOT / "docs" / "concepts.md").read_text(encoding="utf-8")
    names = re.findall(r"^\| `((?:parabench|gen_ai)_[a-z_]+)` \|", text, flags=re.MULTILINE)
    assert len(names) >= 12, "the metrics table of docs/concepts.md moved; update this test"
    return names


def tiny_scenario(name: str, ttft_ms: float) -> str:
    """A one-step scenario YAML whose model latency is ``ttft_ms``."""
    return f"""
name: {name}
models:
  gpt-4o-mini: {{latency: {{ttft_ms: {ttft_ms}}}}}
steps:
  - {{id: answer, kind: llm, input_tokens: 100, output_tokens: 20, card: true}}
variants:
  sequential: {{mode: sequential}}
  parallel: {{mode: parallel}}
"""


class TestConfig:
    def test_builtin_http_simulator_serves_every_scenario(
        self, serve: Callable[..., ServiceServer]
    ) -> None:
        """With provider kind 'simulator', runs of any scenario go through one HTTP simulator."""
        service = serve(provider={"kind": "simulator"})
        assert service.state.simulator_url is not None
        assert httpx.get(f"{service.url}/healthz").json()["provider"] == "parabench.simulator"
        for scenario in ("research_assistant", "support_agent"):
            _, events, _ = run_events(service.url, {"scenario": scenario, "variant": "parallel"})
            assert events[-1].event == "run.completed", events[-1]
        text = httpx.get(f"{service.url}/metrics").text
        assert 'gen_ai_provider_name="parabench.simulator"' in text

    def test_scenarios_dir_loads_every_file(
        self, serve: Callable[..., ServiceServer], tmp_path: Path
    ) -> None:
        """A scenarios directory serves each of its files (budget files excluded)."""
        directory = tmp_path / "scenarios"
        directory.mkdir()
        (directory / "one.yaml").write_text(tiny_scenario("one", 100))
        (directory / "two.yaml").write_text(tiny_scenario("two", 100))
        (directory / "two.budget.yaml").write_text("not: a scenario")
        service = serve(scenarios_dir=directory)
        assert sorted(service.state.scenarios) == ["one", "two"]
        _, events, _ = run_events(service.url, {"scenario": "two", "variant": "parallel"})
        assert [e.event for e in events] == ["run.started", "card", "run.completed"]

    def test_load_config_names_the_bad_field(self, tmp_path: Path) -> None:
        """Settings from JSON plus overrides validate; a bad value names its field."""
        path = tmp_path / "service.json"
        path.write_text('{"port": 9000, "provider": {"kind": "simulator"}}')
        config = load_config(str(path), time_scale=0.5, api_key=None)
        assert (config.port, config.provider.kind, config.time_scale) == (9000, "simulator", 0.5)
        with pytest.raises(ConfigError, match="max_in_flight"):
            load_config('{"max_in_flight": 0}')
        with pytest.raises(ConfigError, match="not valid JSON"):
            load_config("{port")

    def test_conflicting_setups_fail_before_binding(self, tmp_path: Path) -> None:
        """Two files with one name, or one simulator with two latencies, fail at start."""
        first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
        first.write_text(tiny_scenario("same", 100))
        second.write_text(tiny_scenario("same", 100))
        with pytest.raises(ConfigError, match="two scenarios are named 'same'"):
            ServiceServer(ServiceConfig(port=0, scenarios=(str(first), str(second)))).start()
        second.write_text(tiny_scenario("other", 300))
        config = ServiceConfig(
            port=0, scenarios=(str(first), str(second)), provider={"kind": "simulator"}
        )
        with pytest.raises(ConfigError, match="different latencies"):
            ServiceServer(config).start()


class TestRunStream:
    def test_parallel_run_streams_started_then_cards_then_completed(
        self, service: ServiceServer
    ) -> None:
        """A parallel run sends run.started, one card per card step in order, then run.completed."""
        response, events, _ = run_events(
            service.url, {"scenario": "research_assistant", "variant": "parallel", "seed": 3}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        names = [e.event for e in events]
        card_steps = load_scenario("research_assistant").plan("parallel").card_steps
        assert names == ["run.started"] + ["card"] * len(card_steps) + ["run.completed"]
        started, *cards, final = [e.json() for e in events]
        assert set(started) == STARTED_FIELDS and set(final) == FINAL_FIELDS
        assert all(set(card) == CARD_FIELDS for card in cards)
        assert HEX32.match(started["trace_id"]) and final["trace_id"] == started["trace_id"]
        assert {c["run_id"] for c in cards} == {started["run_id"]} == {final["run_id"]}
        assert (started["scenario"], started["variant"]) == ("research_assistant", "parallel")
        assert started["cards_expected"] == len(card_steps) == final["cards"]
        assert sorted(c["step_id"] for c in cards) == sorted(card_steps)
        assert [c["index"] for c in cards] == list(range(len(cards)))
        at = [c["at_ms"] for c in cards]
        assert at == sorted(at) and at[0] > 0
        # plan comes first; the draft needs all three research steps.
        assert cards[0]["step_id"] == "plan" and cards[-1]["step_id"] == "draft"
        assert final["outcome"] == "completed"
        assert final["ttfc_ms"] == at[0]
        assert at[-1] <= final["e2e_ms"] < at[-1] + 100
        assert final["cost_usd"] > 0

    def test_card_count_equals_card_steps_for_every_scenario_and_variant(
        self, service: ServiceServer
    ) -> None:
        """Every variant of every bundled scenario sends exactly its card steps as cards."""
        jobs = [
            (name, variant)
            for name in service.state.scenarios
            for variant in service.state.scenarios[name].variants
        ]

        async def one(client: httpx.AsyncClient, scenario: str, variant: str) -> list[Any]:
            parser, events = SseParser(), []
            body = {"scenario": scenario, "variant": variant, "seed": 1}
            async with client.stream("POST", "/v1/runs", json=body) as response:
                async for chunk in response.aiter_raw():
                    events.extend(parser.feed(chunk))
            return events

        async def main() -> list[list[Any]]:
            async with httpx.AsyncClient(base_url=service.url, timeout=TIMEOUT) as client:
                return await asyncio.gather(*(one(client, s, v) for s, v in jobs))

        for (scenario, variant), events in zip(jobs, asyncio.run(main()), strict=True):
            expected = load_scenario(scenario).plan(variant).card_steps
            cards = [e.json()["step_id"] for e in events if e.event == "card"]
            assert sorted(cards) == sorted(expected), (scenario, variant)
            assert events[-1].event == "run.completed"
            assert events[-1].json()["cards"] == len(expected)

    def test_e2e_agrees_with_the_run_span(self, service: ServiceServer) -> None:
        """e2e_ms of run.completed is the run span's duration (within 5%), under a server span."""
        _, events, _ = run_events(
            service.url, {"scenario": "research_assistant", "variant": "sequential"}
        )
        final = events[-1].json()
        spans = flushed_spans(service)
        run = next(s for s in spans if s["attrs"].get("parabench.run.id") == final["run_id"]
                   and s["name"].startswith("invoke_agent"))  # fmt: skip
        span_ms = (int(run["endTimeUnixNano"]) - int(run["startTimeUnixNano"])) / 1e6
        assert final["e2e_ms"] == pytest.approx(span_ms, rel=0.05)
        assert run["attrs"]["parabench.outcome"] == "completed"
        server = next(s for s in spans if s["spanId"] == run["parentSpanId"])
        assert server["name"] == "POST /v1/runs" and server["kind"] == 2  # SERVER
        assert server["traceId"] == run["traceId"] == final["trace_id"]

    def test_keepalive_comments_are_not_cards(self, serve: Callable[..., ServiceServer]) -> None:
        """With a short keep-alive, comment lines arrive between events and cards stay exact."""
        service = serve(keepalive_s=0.02)
        _, events, parser = run_events(
            service.url, {"scenario": "research_assistant", "variant": "sequential"}
        )
        assert parser.comments > 0
        assert [e.event for e in events].count("card") == 5
        assert events[-1].event == "run.completed"


class TestSseParsing:
    STREAM = (
        b"\xef\xbb\xbf: keep-alive\r\n\r\n"
        b'event: run.started\r\ndata: {"a": "caf\xc3\xa9 \xe2\x82\xac"}\r\n\r\n'
        b'event: card\rdata: {"i": 1}\r\r'
        b"data: line one\ndata: line two\nid: 7\n\n"
        b"event: nothing\n\n"
        b'event: run.completed\ndata:{"done":true}\n\n'
    )

    def test_every_split_point_gives_the_same_events(self) -> None:
        """Splitting the stream anywhere (CRLF, UTF-8 sequences) never changes the events."""
        whole = SseParser().feed(self.STREAM)
        assert [(e.event, e.data) for e in whole] == [
            ("run.started", '{"a": "café €"}'),
            ("card", '{"i": 1}'),
            ("message", "line one\nline two"),
            ("run.completed", '{"done":true}'),
        ]
        assert whole[2].id == "7"
        for cut in range(1, len(self.STREAM)):
            parser = SseParser()
            events = parser.feed(self.STREAM[:cut]) + parser.feed(self.STREAM[cut:])
            assert events == whole, cut
            assert parser.comments == 1

    def test_one_byte_at_a_time(self) -> None:
        """Feeding single bytes parses the same events as feeding the whole stream."""
        parser = SseParser()
        events = [e for i in range(len(self.STREAM)) for e in parser.feed(self.STREAM[i : i + 1])]
        assert events == SseParser().feed(self.STREAM)

    def test_raw_socket_reading_five_bytes_at_a_time(self, service: ServiceServer) -> None:
        """A real response read from the socket 5 bytes at a time still yields every event."""
        body = json.dumps({"scenario": "research_assistant", "variant": "parallel"}).encode()
        request = (
            b"POST /v1/runs HTTP/1.0\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        parser, events, head, in_body = SseParser(), [], b"", False
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(request)
            reads = 0
            while chunk := sock.recv(5):
                reads += 1
                if in_body:
                    events.extend(parser.feed(chunk))
                    continue
                head += chunk
                if b"\r\n\r\n" in head:  # HTTP/1.0: no chunked framing, the body is raw
                    head, rest = head.split(b"\r\n\r\n", 1)
                    in_body = True
                    events.extend(parser.feed(rest))
        assert head.startswith(b"HTTP/1.1 200")
        assert reads > 100  # really read in tiny pieces
        assert [e.event for e in events] == ["run.started"] + ["card"] * 5 + ["run.completed"]
        assert len({e.json()["run_id"] for e in events}) == 1


class TestValidation:
    def post(self, server: ServiceServer, content: bytes | str, **headers: str) -> httpx.Response:
        if isinstance(content, str):
            content = content.encode()
        return httpx.post(
            f"{server.url}/v1/runs", content=content, headers=headers, timeout=TIMEOUT
        )

    def test_bad_json_is_400_naming_the_body(self, service: ServiceServer) -> None:
        """A body that is not JSON, or not an object, answers 400 with field 'body'."""
        for content in ("{", "[1, 2]", ""):
            response = self.post(service, content)
            assert response.status_code == 400
            assert response.json()["error"]["field"] == "body"

    def test_missing_or_mistyped_fields_are_400_with_choices(self, service: ServiceServer) -> None:
        """A missing or mistyped field answers 400 naming it, with the valid values."""
        names = sorted(service.state.scenarios)
        cases = [
            ({"variant": "parallel"}, "scenario", names),
            ({"scenario": 7, "variant": "parallel"}, "scenario", names),
            ({"scenario": "research_assistant"}, "variant", None),
            ({"scenario": "research_assistant", "variant": ["parallel"]}, "variant", None),
            ({"scenario": "research_assistant", "variant": "parallel", "seed": "1"}, "seed", None),
            ({"scenario": "research_assistant", "variant": "parallel", "seed": True}, "seed", None),
            ({"scenario": "research_assistant", "variant": "parallel", "sed": 1}, "sed", None),
        ]
        variants = ["sequential", "parallel", "parallel_capped"]
        for body, field, valid in cases:
            response = self.post(service, json.dumps(body))
            assert response.status_code == 400, body
            error = response.json()["error"]
            assert error["field"] == field and error["message"]
            if field == "scenario":
                assert error["valid"] == valid
            if field == "variant":
                assert error["valid"] == variants

    def test_unknown_scenario_is_404_naming_the_valid_ones(self, service: ServiceServer) -> None:
        """An unknown scenario answers 404 listing the scenarios served."""
        response = self.post(service, json.dumps({"scenario": "nope", "variant": "parallel"}))
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["field"] == "scenario" and "nope" in error["message"]
        assert error["valid"] == ["map_reduce_summarizer", "research_assistant", "support_agent"]

    def test_unknown_variant_is_404_naming_the_valid_ones(self, service: ServiceServer) -> None:
        """An unknown variant answers 404 listing that scenario's variants."""
        body = json.dumps({"scenario": "support_agent", "variant": "turbo"})
        response = self.post(service, body)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["field"] == "variant" and "turbo" in error["message"]
        assert error["valid"] == list(load_scenario("support_agent").variants)

    def test_body_over_the_limit_is_413(self, serve: Callable[..., ServiceServer]) -> None:
        """A body over max_body_bytes answers 413, declared length or not."""
        service = serve(max_body_bytes=1024)
        big = json.dumps({"scenario": "x" * 2000, "variant": "parallel"})
        assert self.post(service, big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked upload
            yield big.encode()

        response = httpx.post(f"{service.url}/v1/runs", content=chunks(), timeout=TIMEOUT)
        assert response.status_code == 413
        assert response.json()["error"]["field"] == "body"

    def test_bearer_token_guards_the_api(self, serve: Callable[..., ServiceServer]) -> None:
        """With an api_key, /v1/* answers 401 without the right token; health stays open."""
        service = serve(api_key="s3cret")
        body = json.dumps({"scenario": "research_assistant", "variant": "parallel"})
        assert self.post(service, body).status_code == 401
        wrong = self.post(service, body, authorization="Bearer nope")
        assert wrong.status_code == 401 and "www-authenticate" in wrong.headers
        assert httpx.get(f"{service.url}/v1/scenarios").status_code == 401
        assert httpx.get(f"{service.url}/healthz").status_code == 200
        response, events, _ = run_events(
            service.url,
            {"scenario": "research_assistant", "variant": "parallel"},
            {"authorization": "Bearer s3cret"},
        )
        assert response.status_code == 200 and events[-1].event == "run.completed"
        assert "s3cret" not in repr(service.config)

    def test_scenarios_endpoint_lists_variants_and_card_steps(self, service: ServiceServer) -> None:
        """GET /v1/scenarios names each scenario's variants, modes and card steps."""
        listing = httpx.get(f"{service.url}/v1/scenarios").json()
        assert listing["default_scenario"] == "research_assistant"
        assert listing["time_scale"] == SCALE
        support = next(s for s in listing["scenarios"] if s["name"] == "support_agent")
        plan = load_scenario("support_agent").plan("parallel")
        parallel = next(v for v in support["variants"] if v["name"] == "parallel")
        assert parallel["mode"] == "parallel"
        assert parallel["card_steps"] == plan.card_steps
        assert parallel["cards_expected"] == len(plan.card_steps)


class TestTracing:
    def test_traceparent_joins_the_callers_trace(self, service: ServiceServer) -> None:
        """With a traceparent, run.started carries the caller's trace id and spans join it."""
        trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        _, events, _ = run_events(
            service.url,
            {"scenario": "research_assistant", "variant": "parallel"},
            {"traceparent": f"00-{trace_id}-{parent_id}-01"},
        )
        assert events[0].json()["trace_id"] == trace_id
        assert events[-1].json()["trace_id"] == trace_id
        spans = flushed_spans(service)
        assert spans and all(s["traceId"] == trace_id for s in spans)
        server = next(s for s in spans if s["name"] == "POST /v1/runs")
        assert server["parentSpanId"] == parent_id
        run = next(s for s in spans if s["name"] == "invoke_agent research_assistant")
        assert run["parentSpanId"] == server["spanId"]

    def test_runs_without_traceparent_get_their_own_traces(self, service: ServiceServer) -> None:
        """Without a traceparent each run starts a new trace."""
        body = {"scenario": "research_assistant", "variant": "parallel"}
        ids = {run_events(service.url, body)[1][0].json()["trace_id"] for _ in range(2)}
        assert len(ids) == 2


class TestOverload:
    LIMIT = 4

    def test_three_times_max_in_flight_gets_fast_503s_then_recovers(
        self, serve: Callable[..., ServiceServer]
    ) -> None:
        """12 concurrent runs at max_in_flight=4 (3×): 4 served, 8 refused at once; then 4 again.

        Runs take ≈ 2.5 s (sequential at time scale 0.1), so all 12 requests arrive
        while the first 4 run even on a busy machine, and a refusal that waited for a
        slot would take seconds: 1 s separates "at once" from queued with room to spare.
        """
        service = serve(max_in_flight=self.LIMIT, time_scale=0.1)
        body = {"scenario": "research_assistant", "variant": "sequential"}  # ≈ 2.5 s

        async def one(client: httpx.AsyncClient) -> tuple[int, float, str | None, Any]:
            started = time.perf_counter()
            async with client.stream("POST", "/v1/runs", json=body) as response:
                status = response.status_code
                elapsed = time.perf_counter() - started
                data = await response.aread()
            retry_after = response.headers.get("retry-after")
            if status == 200:
                return status, elapsed, retry_after, SseParser().feed(data)[-1].event
            return status, elapsed, retry_after, json.loads(data)

        def burst(n: int) -> list[tuple[int, float, str | None, Any]]:
            async def main() -> list[tuple[int, float, str | None, Any]]:
                limits = httpx.Limits(max_connections=n)
                async with httpx.AsyncClient(
                    base_url=service.url, timeout=TIMEOUT, limits=limits
                ) as client:
                    return await asyncio.gather(*(one(client) for _ in range(n)))

            return asyncio.run(main())

        results = burst(3 * self.LIMIT)
        ok = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] == 503]
        assert len(ok) == self.LIMIT and len(refused) == 2 * self.LIMIT, [r[0] for r in results]
        assert all(r[3] == "run.completed" for r in ok)
        for _, elapsed, retry_after, error in refused:
            assert elapsed < 1.0
            assert retry_after == "1"
            assert f"maximum of {self.LIMIT} runs" in error["error"]["message"]
        # Recovered: nothing left in flight, and a full complement of runs is served again.
        assert httpx.get(f"{service.url}/healthz").json()["active_runs"] == 0
        again = burst(self.LIMIT)
        assert [(r[0], r[3]) for r in again] == [(200, "run.completed")] * self.LIMIT
        assert httpx.get(f"{service.url}/healthz").json()["active_runs"] == 0


class TestDisconnect:
    def test_client_leaving_cancels_its_run(self, service: ServiceServer) -> None:
        """A client that closes mid-stream cancels its run: outcome cancelled, nothing in flight."""
        body = {"scenario": "research_assistant", "variant": "sequential"}  # ≈ 1.2 s
        parser = SseParser()
        seen: list[SseEvent] = []
        left_at = time.perf_counter()
        with httpx.stream("POST", f"{service.url}/v1/runs", json=body, timeout=TIMEOUT) as response:
            for chunk in response.iter_raw():
                seen.extend(parser.feed(chunk))
                if any(e.event == "card" for e in seen):
                    left_at = time.perf_counter()
                    break  # leaving the block closes the connection mid-run
        run_id = seen[0].json()["run_id"]
        deadline = time.monotonic() + 5
        while True:
            rows = samples(httpx.get(f"{service.url}/metrics").text)
            in_flight = [v for n, _, v in rows if n == "parabench_runs_in_flight"]
            cancelled = sample(
                rows,
                "parabench_run_duration_seconds_count",
                scenario="research_assistant",
                variant="sequential",
                outcome="cancelled",
            )
            if cancelled == 1 and not any(in_flight):
                break
            assert time.monotonic() < deadline, (cancelled, in_flight)
            time.sleep(0.02)
        # Cancelled long before the ≈ 1.2 s the run would have taken.
        assert time.perf_counter() - left_at < 1.0
        assert httpx.get(f"{service.url}/healthz").json()["active_runs"] == 0
        spans = flushed_spans(service)
        run = next(
            s
            for s in spans
            if s["name"].startswith("invoke_agent") and s["attrs"]["parabench.run.id"] == run_id
        )
        assert run["attrs"]["parabench.outcome"] == "cancelled"
        server = next(s for s in spans if s["spanId"] == run["parentSpanId"])
        assert server["attrs"]["parabench.client_disconnected"] is True


class TestShutdown:
    def test_stopping_ends_open_streams_with_run_failed(
        self, serve: Callable[..., ServiceServer]
    ) -> None:
        """Stopping ends an open stream at once with run.failed and records its run cancelled."""
        service = serve(time_scale=1.0)  # a 25 s run: it cannot finish by itself
        events: list[SseEvent] = []
        parser = SseParser()
        with httpx.stream(
            "POST",
            f"{service.url}/v1/runs",
            json={"scenario": "research_assistant", "variant": "sequential"},
            timeout=TIMEOUT,
        ) as response:
            stopped_in = 0.0
            for chunk in response.iter_raw():
                events.extend(parser.feed(chunk))
                if events and not stopped_in:
                    state = service.state
                    started = time.perf_counter()
                    service.stop()
                    stopped_in = time.perf_counter() - started
        assert stopped_in < 1.0
        assert [e.event for e in events] == ["run.started", "run.failed"]
        final = events[-1].json()
        assert final["outcome"] == "failed" and "shutting down" in final["error"]
        assert set(final) == FINAL_FIELDS | {"error"}
        assert state.config.spans_path is not None
        runs = [s for s in read_spans(state.config.spans_path) if s["name"].startswith("invoke")]
        assert [r["attrs"]["parabench.outcome"] for r in runs] == ["cancelled"]


class TestMetrics:
    def test_every_contract_metric_is_exposed_before_any_run(self, service: ServiceServer) -> None:
        """Every metric of the contract is exposed, with zero-valued series before any run."""
        text = httpx.get(f"{service.url}/metrics").text
        exposed = {f.name for f in text_string_to_metric_families(text)}
        rows = samples(text)
        with_samples = {name for name, _, _ in rows}
        for name in contract_metric_names():
            family = name.removesuffix("_total")
            assert family in exposed, name
            # Error types are not known in advance, so no error series exists yet.
            if name != "parabench_llm_errors_total":
                assert any(s == name or s.startswith(name + "_") for s in with_samples), name
        for variant in load_scenario("research_assistant").variants:
            labels = {"scenario": "research_assistant", "variant": variant}
            assert sample(rows, "parabench_runs_in_flight", **labels) == 0
            for outcome in ("completed", "partial", "failed", "cancelled"):
                count = "parabench_run_duration_seconds_count"
                assert sample(rows, count, outcome=outcome, **labels) == 0
        assert "_created" not in text

    def test_openmetrics_carries_trace_id_exemplars_after_a_run(
        self, service: ServiceServer
    ) -> None:
        """Asked for OpenMetrics, /metrics shows the run's trace id as an exemplar."""
        _, events, _ = run_events(
            service.url, {"scenario": "research_assistant", "variant": "parallel"}
        )
        trace_id = events[-1].json()["trace_id"]
        response = httpx.get(
            f"{service.url}/metrics", headers={"accept": "application/openmetrics-text"}
        )
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.endswith("# EOF\n")
        exemplar = f'# {{trace_id="{trace_id}"}}'
        lines = [line for line in response.text.splitlines() if exemplar in line]
        assert any(line.startswith("parabench_run_duration_seconds_bucket") for line in lines)
        assert any(line.startswith("parabench_step_duration_seconds_bucket") for line in lines)
        plain = httpx.get(f"{service.url}/metrics")
        assert plain.headers["content-type"].startswith("text/plain")
        count = sample(
            samples(plain.text),
            "parabench_run_duration_seconds_count",
            scenario="research_assistant",
            variant="parallel",
            outcome="completed",
        )
        assert count == 1

    def test_promtool_accepts_the_exposition(self, service: ServiceServer) -> None:
        """`promtool check metrics` finds no problem in the exposition after a run."""
        promtool = system_binary("promtool", "the exposition")
        run_events(service.url, {"scenario": "research_assistant", "variant": "parallel"})
        text = httpx.get(f"{service.url}/metrics").text
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.strip() == "" and check.stderr.strip() == ""
