"""Load testing: the SSE parser, client-side measures, shapes, and Locust against the real service.

The unit tests need neither Locust nor a server. The integration tests start
the real agent service (``ServiceServer``) on loopback at a small time scale
and run Locust headless through ``run_load`` — always in a child process, so
gevent never patches the test process. Each Locust run lasts a few seconds.
"""

from __future__ import annotations

import csv
import itertools
import json
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.analysis.runs import speed_index_s
from harness.errors import ConfigError
from harness.load import LOCUSTFILE, LoadOptions, LoadResult, run_load
from harness.load.measure import RunRecorder, VariantPicker, parse_variants, speed_index_ms
from harness.load.samples import ConcurrencyTimeline, read_samples, summarize_samples
from harness.load.shapes import ConcurrencySweep, make_schedule
from harness.service import ServiceConfig, ServiceServer
from harness.sse import SseEvent, SseParser

STREAM = (
    "\ufeffevent: run.started\r\n"
    'data: {"run_id": "r1", "cards_expected": 2}\r\n'
    "\r\n"
    ": keep-alive\n"
    "\n"
    "event: card\r"
    'data: {"step_id": "plan", "note": "caf\u00e9 \u2615"}\r'
    "\r"
    "event: card\n"
    "data: first line\n"
    "data:second line\n"
    "id: 7\n"
    "\n"
    "event: run.completed\r\n"
    'data: {"outcome": "completed"}\r\n'
    "\r\n"
).encode()
EXPECTED = [
    SseEvent("run.started", '{"run_id": "r1", "cards_expected": 2}'),
    SseEvent("card", '{"step_id": "plan", "note": "caf\u00e9 \u2615"}'),
    SseEvent("card", "first line\nsecond line", id="7"),
    SseEvent("run.completed", '{"outcome": "completed"}', id="7"),
]


def feed_all(chunks: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


class TestSseParser:
    def test_whole_stream(self) -> None:
        """A stream fed at once gives every event, with LF, CRLF and lone-CR line endings."""
        assert feed_all([STREAM]) == EXPECTED

    def test_split_at_every_byte_boundary(self) -> None:
        """Splitting the stream in two at any byte gives the same events (CRLF and UTF-8 too)."""
        for cut in range(len(STREAM) + 1):
            assert feed_all([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut

    def test_one_byte_at_a_time(self) -> None:
        """Feeding one byte per read gives the same events, each as soon as its blank line ends."""
        assert feed_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED

    @given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
    def test_any_chunking(self, cuts: list[int]) -> None:
        """Any set of cut points gives the same events."""
        bounds = [0, *sorted(cuts), len(STREAM)]
        assert feed_all([STREAM[a:b] for a, b in itertools.pairwise(bounds)]) == EXPECTED

    def test_comments_are_counted_not_dispatched(self) -> None:
        """Keep-alive comments are counted and never become events."""
        parser = SseParser()
        assert parser.feed(b": keep-alive\n\n:\n\n") == []
        assert parser.comments == 2

    def test_event_without_data_is_not_dispatched(self) -> None:
        """An event with no data line is dropped and its type does not leak into the next."""
        assert feed_all([b"event: card\n\ndata: x\n\n"]) == [SseEvent("message", "x")]

    def test_field_rules(self) -> None:
        """Only one space after the colon is dropped; a bare field name has an empty value."""
        events = feed_all([b"data:  two spaces\ndata\nretry: 250\nnonsense: 1\n\n"])
        assert events == [SseEvent("message", " two spaces\n", retry_ms=250)]

    def test_unterminated_event_is_discarded(self) -> None:
        """An event cut off by the end of the stream is not dispatched, and close() says so."""
        parser = SseParser()
        assert parser.feed(b"event: run.completed\ndata: {}\n") == []
        assert parser.close() is True
        assert SseParser().close() is False


class TestSpeedIndex:
    def test_hand_examples(self) -> None:
        """All 5 cards at 10 s gives 10 s; one card every 2 s gives 6 s (DESIGN.md)."""
        assert speed_index_ms([10_000.0] * 5) == pytest.approx(10_000)
        assert speed_index_ms([2_000.0, 4_000.0, 6_000.0, 8_000.0, 10_000.0]) == pytest.approx(
            6_000
        )

    def test_order_and_empty(self) -> None:
        """Cards in any order give the same figure; no cards give None."""
        assert speed_index_ms([4_000.0, 1_000.0]) == pytest.approx(1_000 + 0.5 * 3_000)
        assert speed_index_ms([]) is None

    def test_agrees_with_the_span_analysis(self) -> None:
        """The client-side figure uses the same definition as the server-side analysis."""
        times_ms = [812.0, 6_900.0, 7_300.0, 7_350.0, 12_000.0]
        assert speed_index_ms(times_ms) == pytest.approx(
            speed_index_s([t / 1000 for t in times_ms]) * 1000
        )


class TestRunRecorder:
    def test_measures_from_the_request(self) -> None:
        """TTFC, card gaps and e2e are measured from the send time; keep-alives are not cards."""
        rec = RunRecorder(sent_s=100.0)
        parser = SseParser()
        timeline = [
            (100.01, b'event: run.started\ndata: {"run_id": "r", "cards_expected": 2}\n\n'),
            (100.50, b": keep-alive\n\n"),
            (101.00, b'event: card\ndata: {"index": 0}\n\n'),
            (103.00, b'event: card\ndata: {"index": 1}\n\n'),
            (103.25, b'event: run.partial\ndata: {"e2e_ms": 3200.0, "cost_usd": 0.01}\n\n'),
        ]
        for at, chunk in timeline:
            for event in parser.feed(chunk):
                rec.on_event(event, at)
        fields = rec.sample_fields()
        assert fields["ttfc_ms"] == pytest.approx(1_000)
        assert rec.card_gaps_ms == [pytest.approx(2_000)]
        assert fields["e2e_ms"] == pytest.approx(3_250)
        assert fields["speed_index_ms"] == pytest.approx(1_000 + 0.5 * 2_000)
        assert (rec.outcome, fields["cards"], fields["cards_expected"]) == ("partial", 2, 2)
        assert (fields["run_id"], fields["server_e2e_ms"]) == ("r", 3200.0)


class TestVariants:
    def test_round_robin(self) -> None:
        """Equal weights take turns."""
        pick = VariantPicker(parse_variants("parallel,sequential"))
        assert [pick() for _ in range(4)] == ["parallel", "sequential"] * 2

    def test_weighted(self) -> None:
        """Weights set the long-run mix, reproducibly for a seed."""
        pick = VariantPicker(parse_variants("parallel:3,sequential:1"), seed=1)
        counts = Counter(pick() for _ in range(4000))
        assert counts["parallel"] / 4000 == pytest.approx(0.75, abs=0.03)

    def test_bad_weight(self) -> None:
        """A weight that is not a positive number is a ConfigError that shows the syntax."""
        with pytest.raises(ConfigError, match="name:weight"):
            parse_variants("parallel:0")


class TestShapes:
    def test_constant(self) -> None:
        """A constant shape holds its users until its duration ends."""
        shape = make_schedule("constant", users=8, duration_s=5)
        assert shape.tick(4.9) == (8, 8.0)
        assert shape.tick(5.0) is None

    def test_step_ramp(self) -> None:
        """A step ramp adds step_users every hold_s up to users, then ends."""
        shape = make_schedule("step", users=25, step_users=10, hold_s=2, spawn_rate=50)
        assert [shape.tick(t) for t in (0, 2.5, 4.5, 6.0)] == [(10, 50), (20, 50), (25, 50), None]

    def test_sweep(self) -> None:
        """A sweep holds each level in turn and reaches each in about a second by default."""
        shape = make_schedule("sweep", users=1, levels="1,2,4,8", hold_s=3)
        assert isinstance(shape, ConcurrencySweep)
        assert [shape.tick(t) for t in (0, 3, 6, 9)] == [(lvl, 4.0) for lvl in (1, 2, 4, 8)]
        assert (shape.tick(12), shape.total_s) == (None, 12)

    @pytest.mark.parametrize(
        ("shape", "kwargs", "where"),
        [
            ("zigzag", {}, "--shape"),
            ("sweep", {"levels": "1,x", "hold_s": 1}, "--levels"),
            ("sweep", {"levels": "1,2"}, "--hold"),
            ("step", {"hold_s": 1, "step_users": 50}, "--step-users"),
        ],
    )
    def test_bad_options(self, shape: str, kwargs: dict[str, Any], where: str) -> None:
        """Bad shape options are a ConfigError naming the option to fix."""
        with pytest.raises(ConfigError) as caught:
            make_schedule(shape, users=10, **kwargs)
        assert caught.value.where == where


class TestSamples:
    def test_timeline(self) -> None:
        """A sample gets the level in force when it was sent."""
        timeline = ConcurrencyTimeline()
        for at, level in [(10.0, 1), (10.5, 1), (12.0, 4)]:
            timeline.record(at, level)
        assert [timeline.at(t) for t in (9.0, 11.9, 12.0)] == [None, 1, 4]
        assert timeline.changes() == [(10.0, 1), (12.0, 4)]

    def test_summary_from_raw_samples(self) -> None:
        """Percentiles come from numpy over raw samples; rejected runs count but have no e2e."""
        e2e = [100.0, 200.0, 300.0, 400.0, 1000.0]
        samples = [
            {"scenario": "s", "variant": "v", "outcome": "completed", "e2e_ms": x, "concurrency": 2}
            for x in e2e
        ] + [{"scenario": "s", "variant": "v", "outcome": "rejected", "e2e_ms": None}]
        summary = summarize_samples(samples)
        assert summary["outcomes"]["rejected"] == 1
        assert summary["e2e_ms"]["p95"] == pytest.approx(np.percentile(e2e, 95))
        assert summary["concurrency_levels"][0]["runs"] == 5


class TestImportWeight:
    def test_no_locust_in_the_caller(self) -> None:
        """Importing harness.load imports neither Locust nor gevent (no monkey-patching)."""
        code = (
            "import sys, harness.load, harness.load.runner;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "[]", out.stderr


# -- against the real service ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stats_rows(result: LoadResult) -> dict[str, dict[str, str]]:
    with (result.out_dir / "locust_stats.csv").open(encoding="utf-8") as fh:
        return {row["Name"]: row for row in csv.DictReader(fh)}


def run_spans(path: Path) -> dict[str, dict[str, float]]:
    """Run spans by trace id: e2e and first card, straight from the OTLP JSON lines."""
    runs: dict[str, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    if not span["name"].startswith("invoke_agent "):
                        continue
                    start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                    runs[span["traceId"]] = {"e2e_ms": (end - start) / 1e6}
    return runs


@pytest.fixture(scope="class")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoadResult, Path]]:
    """A 4-second, 4-user run of both variants against a service that writes its spans."""
    out = tmp_path_factory.mktemp("load")
    spans = out / "server-spans.jsonl"
    config = ServiceConfig(port=0, time_scale=0.05, spans_path=spans)
    with ServiceServer(config) as server:
        options = LoadOptions(
            host=server.url,
            variants=("parallel", "sequential"),
            users=4,
            duration_s=4,
            out_dir=out,
            seed=11,
        )
        result = run_load(options, progress=False)
    yield result, spans


@pytest.mark.slow
class TestRunLoad:
    def test_writes_samples_and_locust_reports(self, served_run: tuple[LoadResult, Path]) -> None:
        """One sample line per run, Locust's CSV and HTML, and Locust counted the same runs."""
        result, _ = served_run
        samples = read_samples(result.samples_path)
        lines = result.samples_path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(samples) >= 8
        assert {s["outcome"] for s in samples} == {"completed"}
        assert {s["variant"] for s in samples} == {"parallel", "sequential"}
        assert all(s["cards"] == s["cards_expected"] == 5 for s in samples)
        assert all(s["concurrency"] == 4 and s["worker"] == "local" for s in samples)
        assert result.html_path.stat().st_size > 0
        rows = stats_rows(result)
        e2e_counted = sum(
            int(rows[f"e2e {v}"]["Request Count"]) for v in ("parallel", "sequential")
        )
        assert e2e_counted == len(samples)
        assert result.summary["outcomes"]["completed"] == len(samples)

    def test_client_e2e_matches_server_run_span(self, served_run: tuple[LoadResult, Path]) -> None:
        """Joined on trace id, each client e2e covers the server's run span and is within 5%."""
        result, spans = served_run
        server = run_spans(spans)
        samples = read_samples(result.samples_path)
        assert {s["trace_id"] for s in samples} <= set(server)
        for s in samples:
            server_ms = server[s["trace_id"]]["e2e_ms"]
            assert server_ms <= s["e2e_ms"] <= server_ms * 1.05, s
            assert s["server_ttfc_ms"] <= s["ttfc_ms"] <= s["server_ttfc_ms"] + 0.05 * server_ms

    def test_master_and_two_workers(self, tmp_path: Path) -> None:
        """With --processes 2 both workers' samples reach the master's samples.jsonl."""
        with ServiceServer(ServiceConfig(port=0, time_scale=0.02)) as server:
            options = LoadOptions(
                host=server.url, users=4, duration_s=3, processes=2, out_dir=tmp_path
            )
            result = run_load(options, progress=False)
        samples = read_samples(result.samples_path)
        workers = Counter(s["worker"] for s in samples)
        assert len(workers) == 2 and min(workers.values()) >= 3, workers
        assert {s["outcome"] for s in samples} == {"completed"}
        assert {s["concurrency"] for s in samples} == {4}
        assert int(stats_rows(result)["e2e parallel"]["Request Count"]) == len(samples)

    def test_master_with_workers_started_apart(self, tmp_path: Path) -> None:
        """The multi-machine recipe: a master, and two plain `locust --worker` processes."""
        port = free_port()
        worker = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                  "--master-host", "127.0.0.1", "--master-port", str(port)]  # fmt: skip
        workers = [
            subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(2)
        ]
        try:
            with ServiceServer(ServiceConfig(port=0, time_scale=0.02)) as server:
                options = LoadOptions(
                    host=server.url,
                    users=4,
                    duration_s=3,
                    expect_workers=2,
                    master_bind_port=port,
                    out_dir=tmp_path,
                    extra_locust_args=("--master-bind-host", "127.0.0.1"),
                )
                result = run_load(options, progress=False)
            for proc in workers:
                assert proc.wait(timeout=30) == 0  # the master tells them to quit
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        samples = read_samples(result.samples_path)
        assert len(Counter(s["worker"] for s in samples)) == 2
        assert {s["outcome"] for s in samples} == {"completed"}
        assert int(stats_rows(result)["e2e parallel"]["Request Count"]) == len(samples)

    def test_rejections_are_counted(self, tmp_path: Path) -> None:
        """Over max_in_flight, 503s are samples with outcome rejected, not a crashed test."""
        config = ServiceConfig(port=0, time_scale=0.02, max_in_flight=2, retry_after_s=1)
        with ServiceServer(config) as server:
            options = LoadOptions(host=server.url, users=6, duration_s=2.5, out_dir=tmp_path)
            result = run_load(options, progress=False)
        samples = read_samples(result.samples_path)
        outcomes = Counter(s["outcome"] for s in samples)
        assert outcomes["rejected"] >= 4 and outcomes["completed"] >= 4, outcomes
        assert set(outcomes) == {"completed", "rejected"}
        assert {s["http_status"] for s in samples if s["outcome"] == "rejected"} == {503}
        assert result.summary["outcomes"]["rejected"] == outcomes["rejected"]

    def test_sweep_labels_each_sample(self, tmp_path: Path) -> None:
        """A concurrency sweep stamps each sample with the level in force when it was sent."""
        with ServiceServer(ServiceConfig(port=0, time_scale=0.02)) as server:
            options = LoadOptions(
                host=server.url, shape="sweep", levels=(1, 3), hold_s=2, out_dir=tmp_path
            )
            result = run_load(options, progress=False)
        levels = {row["concurrency"]: row["runs"] for row in result.summary["concurrency_levels"]}
        assert set(levels) == {1, 3} and levels[3] > levels[1] >= 3, levels

    def test_host_that_does_not_answer(self, tmp_path: Path) -> None:
        """A host with nothing listening is a ConfigError with a fix, before Locust starts."""
        with ServiceServer(ServiceConfig(port=0)) as server:
            url = server.url  # a port that was free a moment ago
        with pytest.raises(ConfigError, match="nothing answers") as caught:
            run_load(LoadOptions(host=url, out_dir=tmp_path), progress=False)
        assert "parabench serve" in (caught.value.fix or "")
        assert not (tmp_path / "locust.log").exists()

    def test_unknown_variant(self, tmp_path: Path) -> None:
        """A variant the scenario lacks is a ConfigError listing the real ones."""
        with pytest.raises(ConfigError, match="no variant 'turbo'") as caught:
            run_load(LoadOptions(host="http://127.0.0.1:9", variants=("turbo",)), progress=False)
        assert "parallel" in (caught.value.fix or "")
