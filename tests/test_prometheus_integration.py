"""The dashboard and the rules against a real Prometheus scraping a live service under load.

A rate-limited simulator (so 429s happen), the service calling it, and the
``prometheus`` binary of Debian's package scraping the service every second
with the shipped configuration (target and intervals changed) and the shipped
rules. After a short load every panel query, every variable and every
recorded series returns data through the HTTP API, every rule evaluates, and
the latency panels' exemplars carry the trace ids the clients saw.

Without the binary the tests skip loudly; .ci/run sets
PARABENCH_REQUIRE_SYSTEM_DEPS=1, which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dashboard_checks import (
    DASHBOARDS,
    RECORDING_RULES,
    RULES_DIR,
    level_labels,
    load_dashboard,
    panel_queries,
    rules,
    substitute,
    variable_queries,
)
from helpers import system_binary

from harness.scenario import load_scenario
from harness.service import ServiceConfig, ServiceServer
from harness.simulator import SimulatorConfig, SimulatorServer
from harness.sse import SseParser

pytestmark = pytest.mark.slow

SCENARIO = "research_assistant"
SCALE = 0.05  # a run takes 0.6–1.5 s
LOAD_S = 20.0
CLIENTS = 8
# Requests per minute per model, in model time. Eight clients ask ~75 of gpt-4o-mini
# (the run time is mostly simulated waits, so a busy machine asks little less):
# hundreds of calls are answered 429, and many runs still complete.
RPM_LIMIT = 45
# Grafana's $__rate_interval for this test: wide enough to hold the whole load.
RATE_WINDOW = "2m"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
SHIPPED_CONFIG = DASHBOARDS / "prometheus" / "prometheus.local.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """A `prometheus` process on a free loopback port, with a temporary config and data dir."""

    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.target = target
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        """The shipped config, scraping ``target`` every second with the shipped rules."""
        config = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(SHIPPED_CONFIG.parent / f) for f in config["rule_files"]]
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": [self.target]}]
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def start(self, timeout_s: float = 30.0) -> Prometheus:
        """Start on a free port and wait until ready; retry if another process took the port."""
        config = self.write_config()
        for _ in range(3):
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            with (self.workdir / "prometheus.log").open("wb") as log:
                self._proc = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--enable-feature=exemplar-storage",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + timeout_s
            while self._proc.poll() is None and time.monotonic() < deadline:
                if self._ready():
                    return self
                time.sleep(0.1)
            self.stop()
            if "address already in use" not in self.log():
                break
        pytest.fail(f"prometheus did not start:\n{self.log()[-3000:]}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_until(self, expr: str, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """The result once it has a finite value (rules evaluate each second), else the last one."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if any(math.isfinite(float(s["value"][1])) for s in result):
                return result
            if time.monotonic() > deadline:
                return result
            time.sleep(0.5)


@dataclass
class Load:
    """What the clients saw: outcomes and the trace id of every run."""

    outcomes: dict[str, int] = field(default_factory=dict)
    trace_ids: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def drive_load(url: str, variants: list[str], duration_s: float) -> Load:
    """``CLIENTS`` threads posting runs, cycling through ``variants``, for ``duration_s``."""
    load = Load()
    deadline = time.monotonic() + duration_s

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for index in range(10_000):  # bounded; the deadline ends it long before
                if time.monotonic() > deadline:
                    return
                body = {"scenario": SCENARIO, "variant": variants[(number + index) % len(variants)]}
                parser, events = SseParser(), []
                try:
                    with http.stream("POST", "/v1/runs", json=body) as response:
                        for chunk in response.iter_raw():
                            events.extend(parser.feed(chunk))
                except httpx.HTTPError as exc:
                    with load.lock:
                        load.errors.append(repr(exc))
                    continue
                final = events[-1].json() if events else {}
                with load.lock:
                    outcome = final.get("outcome", f"http {response.status_code}")
                    load.outcomes[outcome] = load.outcomes.get(outcome, 0) + 1
                    if "trace_id" in final:
                        load.trace_ids.add(final["trace_id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration_s + 60)
    assert not any(t.is_alive() for t in threads), "a load client did not finish"
    return load


@dataclass
class Stack:
    prometheus: Prometheus
    load: Load
    variants: list[str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = system_binary("prometheus", "the dashboard against a real Prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    variants = list(load_scenario(SCENARIO).variants)
    assert len(variants) == 3
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            patch.delenv(name, raising=False)
        simulator = SimulatorServer(SimulatorConfig(time_scale=SCALE, rpm_limit=RPM_LIMIT))
        stack.enter_context(simulator.start())
        service = ServiceServer(
            ServiceConfig(
                port=0,
                time_scale=SCALE,
                scenarios=(SCENARIO,),
                provider={"kind": "openai", "base_url": simulator.url},
                # An exporter, so the Telemetry row has series (a service with neither a
                # spans file nor OTLP has no span pipeline to watch).
                spans_path=workdir / "spans.jsonl",
            )
        )
        stack.enter_context(service.start())
        prometheus = Prometheus(binary, workdir, service.url.removeprefix("http://")).start()
        stack.callback(prometheus.stop)
        load = drive_load(service.url, variants, LOAD_S)
        assert load.errors == [] and sum(load.outcomes.values()) >= 30, load
        # Wait until Prometheus holds the final counts: the last runs have been scraped.
        runs = sum(load.outcomes.values())
        deadline = time.monotonic() + 20
        while True:
            result = prometheus.query("sum(parabench_run_duration_seconds_count)")
            if result and float(result[0]["value"][1]) == runs:
                break
            assert time.monotonic() < deadline, (result, runs, prometheus.log()[-2000:])
            time.sleep(0.5)
        yield Stack(prometheus, load, variants)


class TestPanelsOnRealPrometheus:
    def test_the_load_completed_runs_and_hit_rate_limits(self, stack: Stack) -> None:
        """The premise: runs completed, and some LLM calls were answered 429."""
        assert stack.load.outcomes.get("completed", 0) >= 20, stack.load.outcomes
        limited = stack.prometheus.query('parabench_llm_errors_total{error_type="rate_limited"}')
        assert sum(float(s["value"][1]) for s in limited) > 0

    def test_every_panel_query_returns_data(self, stack: Stack) -> None:
        """Each panel target, all variables at "All", returns at least one finite value."""
        queries = panel_queries(load_dashboard())
        empty = []
        for query in queries:
            result = stack.prometheus.query_until(substitute(query.expr, RATE_WINDOW))
            if not any(math.isfinite(float(s["value"][1])) for s in result):
                empty.append(query.where)
        assert empty == [], f"{len(empty)} of {len(queries)} queries without data"

    def test_every_panel_query_returns_data_for_one_selection(self, stack: Stack) -> None:
        """With one scenario, variant and step chosen, every panel still has data."""
        values = {"scenario": SCENARIO, "variant": "parallel", "step": "search_docs"}
        empty = []
        for query in panel_queries(load_dashboard()):
            result = stack.prometheus.query_until(substitute(query.expr, RATE_WINDOW, values))
            if not any(math.isfinite(float(s["value"][1])) for s in result):
                empty.append(query.where)
            for series in result:
                for label in ("scenario", "variant", "step"):
                    assert series["metric"].get(label, values[label]) == values[label], query
        assert empty == []

    def test_variables_list_the_served_values(self, stack: Stack) -> None:
        """Each variable's label_values query lists the scenario, its variants and its steps."""
        expected = {
            "scenario": {SCENARIO},
            "variant": set(stack.variants),
            "step": set(load_scenario(SCENARIO).plan("parallel").steps),
        }
        for name, selector, label in variable_queries(load_dashboard()):
            listed = stack.prometheus.api(
                f"label/{label}/values", **{"match[]": substitute(selector, RATE_WINDOW)}
            )
            assert set(listed) == expected[name], name

    def test_recorded_series_exist_with_their_level_labels(self, stack: Stack) -> None:
        """Every recording rule yields series labelled exactly by its name's level."""
        for rule in rules(RECORDING_RULES):
            name = rule["record"]
            result = stack.prometheus.query_until(name)
            assert result, name
            for series in result:
                assert set(series["metric"]) - {"__name__"} == level_labels(name), series

    def test_every_rule_evaluates_cleanly(self, stack: Stack) -> None:
        """Prometheus loaded every shipped rule and each evaluates without error."""
        groups = stack.prometheus.api("rules")["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        shipped = sum(len(rules(RULES_DIR / name)) for name in ("recording.yml", "alerts.yml"))
        assert len(loaded) == shipped
        bad = [(r["name"], r["health"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
        assert bad == []

    def test_latency_panels_show_trace_exemplars(self, stack: Stack) -> None:
        """Each exemplar query of a latency panel returns trace ids the clients saw."""
        queries = [q for q in panel_queries(load_dashboard()) if q.exemplar]
        assert len(queries) >= 5
        end = time.time()
        for query in queries:
            data = stack.prometheus.api(
                "query_exemplars",
                query=substitute(query.expr, RATE_WINDOW),
                start=end - 600,
                end=end,
            )
            ids = {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
            assert ids, query.where
            assert all(HEX32.match(i) for i in ids), query.where
            # Run and step exemplars are the clients' run traces (LLM calls: the same traces).
            assert ids & stack.load.trace_ids, query.where
