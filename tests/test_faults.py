"""Faults end to end: no run lost, none hung, every failure visible, no span dropped.

Real parts only: the OpenAI-compatible simulator on 127.0.0.1 injecting the
faults, the official ``openai`` client (``OpenAICompatProvider``), the agent
service, Locust through ``run_load``, and the report written from the run
directory. Time is scaled down and the client timeout is short, so a hang
resolves into a ``timeout`` attempt in half a second instead of never.

What a test proves, for every run it starts:

* it ends ``completed``, ``partial`` or ``failed`` (``cancelled`` only when
  the test stops the service on purpose) — runs started == run spans == final
  events (load samples), joined one to one by trace id;
* it ends within a bound computed from the scenario, the client timeout, the
  retry policy and the rate limit (and each test has a hard wall-clock limit);
* each failed attempt is a ``chat`` span with ``error.type`` and status ERROR,
  counted by type in ``parabench_llm_errors_total`` (and the GenAI duration
  histogram), each run outcome in ``parabench_run_duration_seconds``, and both
  show in the report (``summary.json``, ``report.md``);
* the step spans exported to ``spans.jsonl`` are exactly the steps executed,
  counted apart from the span pipeline, shutdown included.

The last tests pin what these found: a Retry-After of a minute held a run for
a minute; the SDK's batch processor behind the spans file dropped spans when
its queue was full; a run ending after uvicorn's graceful timeout lost its
spans; cancelled attempts were in the spans but not the metrics; the report
showed neither partial runs nor error types outside report.html; and Locust
spun on a stopped service, writing thousands of error samples a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import read_spans as read_span_file
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.executor import Executor, RetryPolicy
from harness.load import LoadOptions, run_load
from harness.load.samples import read_samples
from harness.providers.openai_compat import OpenAICompatProvider
from harness.report import write_report
from harness.runner import run_batch
from harness.scenario import Scenario, load_scenario
from harness.service import ServiceConfig, ServiceServer
from harness.service.app import create_app
from harness.service.state import ServiceState
from harness.simulator import SimulatorConfig, SimulatorServer
from harness.telemetry import Telemetry
from harness.telemetry.metrics import Metrics as HarnessMetrics
from harness.telemetry.processor import QueuedSpanProcessor

MODEL = "sim-fault"
#: Every LLM attempt, in model time: 200 ms to the first token + 19 × 5 ms.
TTFT_MS, ITL_MS, OUTPUT_TOKENS = 200.0, 5.0, 20
TOOL_MS = 150.0
MAX_ATTEMPTS = 2
#: Seconds (real) the client waits for an answer: a hung request becomes a timeout.
CLIENT_TIMEOUT_S = 0.5
#: Real seconds a hung request would sleep: far beyond any bound, so only the timeout ends it.
HANG_S = 60.0
#: Real seconds per attempt for HTTP, the event loop and a busy shared machine.
OVERHEAD_S = 0.3


def scenario_yaml(ttft_ms: float = TTFT_MS, max_attempts: int = MAX_ATTEMPTS) -> str:
    """faulty_agent: plan → (draft_a ‖ draft_b ‖ lookup) → answer; no jitter, so bounds hold."""
    llm = f"input_tokens: 100, output_tokens: {OUTPUT_TOKENS}, max_attempts: {max_attempts}"
    return f"""
name: faulty_agent
description: plan, three branches (two LLM, one tool), then an answer
baseline_variant: sequential
models:
  {MODEL}:
    price: {{input_usd_per_mtok: 1.0, output_usd_per_mtok: 4.0}}
    latency: {{ttft_ms: {ttft_ms}, itl_ms: {ITL_MS}, jitter_sigma: 0, prefill_ms_per_1k_input: 0}}
defaults:
  model: {MODEL}
steps:
  - {{id: plan, kind: llm, {llm}, card: true}}
  - {{id: draft_a, kind: llm, depends_on: [plan], {llm}, card: true}}
  - {{id: draft_b, kind: llm, depends_on: [plan], {llm}}}
  - {{id: lookup, kind: tool, depends_on: [plan], latency_ms: {TOOL_MS}, card: true}}
  - {{id: answer, kind: llm, depends_on: [draft_a, draft_b, lookup], {llm}, card: true}}
variants:
  sequential: {{mode: sequential}}
  parallel: {{mode: parallel}}
"""


STEPS = 5
LLM_STEPS = 4
LLM_STEPS_ON_PATH = 3  # plan → draft_a | draft_b (‖ lookup) → answer


# -- setup -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_collector_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "faulty_agent.yaml"
    path.write_text(scenario_yaml(), encoding="utf-8")
    return path


@pytest.fixture
def scenario(scenario_file: Path) -> Scenario:
    return load_scenario(str(scenario_file))


def simulator(scenario: Scenario, time_scale: float, **faults: Any) -> SimulatorServer:
    config = SimulatorConfig(
        time_scale=time_scale,
        profiles=scenario.latency_overrides,
        hang_s=HANG_S,
        seed=11,
        **faults,
    )
    return SimulatorServer(config).start()


def service(
    scenario_file: Path, sim: SimulatorServer, run_dir: Path, time_scale: float
) -> ServiceServer:
    """The agent service calling ``sim`` with the openai client, writing run_dir/spans.jsonl."""
    config = ServiceConfig(
        port=0,
        time_scale=time_scale,
        scenarios=(str(scenario_file),),
        spans_path=run_dir / "spans.jsonl",
        provider={"kind": "openai", "base_url": sim.url, "timeout_s": CLIENT_TIMEOUT_S},
        keepalive_s=None,
    )
    return ServiceServer(config).start()


# -- bounds ------------------------------------------------------------------------------------


def llm_attempt_s(time_scale: float, ttft_ms: float = TTFT_MS) -> float:
    """Real seconds of one answered attempt (no jitter in the scenario's latency profile)."""
    return (ttft_ms + ITL_MS * (OUTPUT_TOKENS - 1)) / 1000.0 * time_scale


def run_bound_s(
    time_scale: float,
    *,
    ttft_ms: float = TTFT_MS,
    max_attempts: int = MAX_ATTEMPTS,
    retry_wait_s: float = 0.0,
) -> float:
    """The longest a run of faulty_agent can take, in real seconds.

    An attempt lasts at most the longer of an answer and the client timeout
    (a hang), plus overhead. Before attempt k+1 the executor waits its backoff
    (≤ min(max_s, base_s × 2^k) × time scale) or the provider's Retry-After
    (≤ ``retry_wait_s``). The critical path holds three LLM steps; the tool
    runs beside the two drafts and is shorter than either.
    """
    attempt = max(llm_attempt_s(time_scale, ttft_ms), CLIENT_TIMEOUT_S) + OVERHEAD_S
    policy = RetryPolicy()
    waits = sum(
        max(min(policy.max_s, policy.base_s * 2**k) * time_scale, retry_wait_s)
        for k in range(max_attempts - 1)
    )
    step = max_attempts * attempt + waits
    return LLM_STEPS_ON_PATH * step + 1.0  # + one second of slack for a loaded machine


# -- reading what was written ------------------------------------------------------------------


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Every span of an OTLP JSON lines file (no analysis code), with its duration in seconds."""
    spans = read_span_file(path)
    for span in spans:
        start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
        span["duration_s"] = (end - start) / 1e9
    return spans


def of_kind(spans: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"].startswith(prefix)]


def is_error(span: dict[str, Any]) -> bool:
    return span.get("status", {}).get("code") == 2


Metrics = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Metrics:
    out: Metrics = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def scrape(url: str) -> Metrics:
    """The service's /metrics, as scraped."""
    return parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)


def registry_metrics(registry: CollectorRegistry) -> Metrics:
    """What /metrics would show for ``registry`` (also after the service stopped)."""
    return parse_metrics(generate_latest(registry).decode())


def total(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(
        v
        for lab, v in metrics.get(name, [])
        if all(lab.get(k) == want for k, want in labels.items())
    )


def by_label(metrics: Metrics, name: str, label: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for lab, v in metrics.get(name, []):
        if v:
            out[lab[label]] += int(v)
    return out


# -- the checks every test shares --------------------------------------------------------------


def check_spans_against_metrics(spans: list[dict[str, Any]], metrics: Metrics) -> dict[str, Any]:
    """Failures in spans == failures in metrics; exported step spans == executed steps."""
    runs = of_kind(spans, "invoke_agent ")
    steps = of_kind(spans, "step ")
    chats = of_kind(spans, "chat ")
    tools = of_kind(spans, "execute_tool ")

    # Run outcomes: one histogram observation per run span, per outcome.
    outcomes = Counter(r["attrs"]["parabench.outcome"] for r in runs)
    assert by_label(metrics, "parabench_run_duration_seconds_count", "outcome") == outcomes
    for run in runs:
        outcome = run["attrs"]["parabench.outcome"]
        assert is_error(run) == (outcome != "completed"), run["attrs"]
        if outcome in ("partial", "failed"):
            assert run["attrs"]["error.type"] == "step_failed"

    # Failed attempts: error.type and status ERROR on the span, counted by type in
    # parabench_llm_errors_total and in the GenAI operation-duration histogram.
    failed_chats = [c for c in chats if "error.type" in c["attrs"]]
    assert all(is_error(c) for c in failed_chats)
    assert not any(is_error(c) for c in chats if "error.type" not in c["attrs"])
    errors = Counter(c["attrs"]["error.type"] for c in failed_chats)
    assert by_label(metrics, "parabench_llm_errors_total", "error_type") == errors
    genai = by_label(metrics, "gen_ai_client_operation_duration_seconds_count", "error_type")
    assert genai.pop("", 0) == len(chats) - len(failed_chats)
    assert genai == errors

    # Steps. Executed steps are counted apart from the span pipeline: the executor
    # observes parabench_step_duration_seconds once per step it ran (ok, failed or
    # cancelled) in the same call that ends the step span, but into an in-memory
    # Prometheus registry. A span lost on its way to spans.jsonl (a full queue, an
    # export after shutdown) is missing from the file and not from this count.
    executed = [s for s in steps if s["attrs"]["parabench.step.status"] != "skipped"]
    assert total(metrics, "parabench_step_duration_seconds_count") == len(executed)
    # Every attempt of an executed step is exactly one operation span, under its step.
    tries = {s["spanId"]: int(s["attrs"]["parabench.step.attempts"]) for s in executed}
    assert sum(tries.values()) == len(chats) + len(tools)
    attempts = Counter(op["parentSpanId"] for op in chats + tools)
    assert all(attempts[span_id] == n for span_id, n in tries.items())
    last_error = {c["parentSpanId"]: c["attrs"].get("error.type") for c in chats + tools}
    for step in steps:
        status = step["attrs"]["parabench.step.status"]
        assert is_error(step) == (status != "ok"), step["attrs"]
        if status == "skipped":
            assert step["attrs"]["error.type"] == "dependency_failed"
        elif status != "ok":  # failed, or cancelled: the reason of its last attempt
            assert step["attrs"]["error.type"] in (last_error.get(step["spanId"]), "cancelled")
    # A run that was not cancelled has a span for every step (executed or skipped).
    per_run = Counter(s["traceId"] for s in steps)
    for run in runs:
        if run["attrs"]["parabench.outcome"] != "cancelled":
            assert per_run[run["traceId"]] == STEPS

    # The span pipeline itself lost nothing.
    assert total(metrics, "parabench_telemetry_spans_dropped_total") == 0
    return {
        "runs": len(runs),
        "outcomes": dict(outcomes),
        "errors": dict(errors),
        # What the report counts: failed LLM and tool attempts (a tool can be cancelled).
        "attempt_errors": dict(
            Counter(
                op["attrs"]["error.type"] for op in chats + tools if "error.type" in op["attrs"]
            )
        ),
        "step_spans": len(steps),
        "executed_steps": len(executed),
        "attempt_spans": len(chats) + len(tools),
    }


def check_samples_join_runs(
    samples: list[dict[str, Any]], runs: list[dict[str, Any]], *, shutdown: bool = False
) -> None:
    """One run span per accepted request, one final event per run, the same outcome."""
    accepted = [s for s in samples if s["http_status"] == 200]
    by_trace = {r["traceId"]: r for r in runs}
    assert len(by_trace) == len(runs) == len(accepted)
    for sample in accepted:
        run = by_trace[sample["trace_id"]]
        outcome = run["attrs"]["parabench.outcome"]
        if outcome == "cancelled":
            # Only the service stopping cancels a run here; its stream still ended. A card
            # its step had just shown may not have been sent before the stream was cut.
            assert shutdown
            assert sample["outcome"] == "failed", sample
            assert sample["cards"] <= int(run["attrs"]["parabench.cards"])
        else:
            assert sample["outcome"] == outcome, (sample, run["attrs"])
            assert sample["cards"] == int(run["attrs"]["parabench.cards"])


def check_report(run_dir: Path, figures: dict[str, Any], samples: Sequence[dict] = ()) -> str:
    """The report of ``run_dir`` shows every outcome and every failed attempt by type."""
    result = write_report(run_dir)
    summary = json.loads(result.summary_path.read_text(encoding="utf-8"))
    (entry,) = summary["variants"]
    assert entry["runs"] == figures["runs"]
    assert entry["outcomes"] == figures["outcomes"]
    assert entry["errors"] == figures["attempt_errors"]
    if samples:
        client = entry["client"]["outcomes"]
        assert {k: n for k, n in client.items() if n} == Counter(s["outcome"] for s in samples)
    markdown = result.markdown_path.read_text(encoding="utf-8").replace("\\", "")
    assert "### Failures" in markdown
    failures = markdown.split("### Failures")[1].split("###")[0]
    server_row = next(line for line in failures.splitlines() if "| server |" in line)
    for outcome in ("completed", "partial", "failed", "cancelled"):
        assert f"| {figures['outcomes'].get(outcome, 0)} |" in server_row, (outcome, server_row)
    for kind, n in figures["attempt_errors"].items():
        assert f"{kind} × {n}" in server_row
        assert f"{kind} × {n}" in result.headline["summary"]
    bad = sum(n for k, n in figures["outcomes"].items() if k != "completed")
    assert f"{bad} of {figures['runs']} runs did not complete" in result.headline["summary"]
    html = result.html_path.read_text(encoding="utf-8")
    assert "How runs ended" in html and all(kind in html for kind in figures["attempt_errors"])
    assert "nan" not in markdown.lower().replace("nanosecond", "")
    return markdown


# -- faults under load, through the service ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_fault_mix_under_load(scenario: Scenario, scenario_file: Path, tmp_path: Path) -> None:
    """10% 5xx, disconnects and hangs under Locust: every run accounted for, every failure shown."""
    scale = 0.1
    run_dir = tmp_path / "run"
    faults = {
        "error_500_rate": 0.05,
        "error_503_rate": 0.05,  # 10 % 5xx in all
        "disconnect_rate": 0.15,  # the stream drops after about half of its chunks
        "hang_rate": 0.15,  # no answer for HANG_S: the client timeout ends the attempt
    }
    bound_s = run_bound_s(scale)
    with simulator(scenario, scale, **faults) as sim:
        server = service(scenario_file, sim, run_dir, scale)
        try:
            options = LoadOptions(
                host=server.url,
                scenario="faulty_agent",
                variants=("parallel",),
                users=8,
                duration_s=6,
                out_dir=run_dir,
                # Locust lets the runs in flight finish: none can take longer than this.
                stop_timeout_s=math.ceil(bound_s) + 2,
            )
            load = run_load(options, progress=False)
            metrics = scrape(server.url)
        finally:
            server.stop()
        injected = Counter(sim.state.outcomes)
        requests_seen = sim.state.requests_total

    samples = read_samples(load.samples_path)
    spans = read_spans(run_dir / "spans.jsonl")
    runs = of_kind(spans, "invoke_agent ")
    figures = check_spans_against_metrics(spans, metrics)
    # None lost: every request is a run span and a final event, with the same outcome.
    check_samples_join_runs(samples, runs)
    assert {s["outcome"] for s in samples} <= {"completed", "partial", "failed"}
    assert set(figures["outcomes"]) <= {"completed", "partial", "failed"}
    assert len(samples) >= 40, len(samples)
    # Every fault the simulator injected is one failed attempt of its own type.
    assert len(of_kind(spans, "chat ")) == requests_seen
    assert figures["errors"] == {
        "http_500": injected["500"],
        "http_503": injected["503"],
        "disconnect": injected["disconnect"],
        "timeout": injected["hang"],
    }
    assert all(figures["errors"].values()), figures
    # None hung: no run outlived the computed maximum, on either side.
    assert max(r["duration_s"] for r in runs) < bound_s
    assert max(s["e2e_ms"] for s in samples) / 1000 < bound_s + 1
    check_report(run_dir, figures, samples)
    longest = max(r["duration_s"] for r in runs)
    print(f"fault mix: {figures}; longest run {longest:.2f} s, bound {bound_s:.2f} s")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_shutdown_mid_load(scenario: Scenario, scenario_file: Path, tmp_path: Path) -> None:
    """Stopping the service under load: cut runs end run.failed (cancelled), no span lost."""
    scale = 0.5  # runs of about a second, so several are in flight at any moment
    run_dir = tmp_path / "run"
    faults = {"error_500_rate": 0.05, "error_503_rate": 0.05, "disconnect_rate": 0.1}
    bound_s = run_bound_s(scale)
    users, duration_s = 8, 4
    samples_path = run_dir / "samples.jsonl"
    with simulator(scenario, scale, **faults) as sim:
        server = service(scenario_file, sim, run_dir, scale)
        state = server.state
        in_flight_at_stop: list[int] = []

        def stop_mid_load() -> None:
            # Once some runs have ended and at least half the users are mid-run.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ended = samples_path.exists() and len(samples_path.read_bytes().splitlines())
                if ended and ended >= users and state.active_runs >= users // 2:
                    break
                time.sleep(0.01)
            in_flight_at_stop.append(state.active_runs)
            server.stop()

        stopper = threading.Thread(target=stop_mid_load)
        stopper.start()
        try:
            options = LoadOptions(
                host=server.url,
                scenario="faulty_agent",
                variants=("parallel",),
                users=users,
                duration_s=duration_s,
                out_dir=run_dir,
                stop_timeout_s=math.ceil(bound_s) + 2,
            )
            load = run_load(options, progress=False)
        finally:
            stopper.join()
    # The registry outlives the service: what /metrics showed last, after every span ended.
    metrics = registry_metrics(state.registry)
    samples = read_samples(load.samples_path)
    spans = read_spans(run_dir / "spans.jsonl")
    runs = of_kind(spans, "invoke_agent ")
    figures = check_spans_against_metrics(spans, metrics)
    # Every span that ended reached the file: the exporter's count is the file's.
    assert total(metrics, "parabench_telemetry_spans_exported_total") == len(spans)
    check_samples_join_runs(samples, runs, shutdown=True)
    # The runs in flight at the stop were cancelled, and their streams ended run.failed.
    assert in_flight_at_stop and in_flight_at_stop[0] >= users // 2
    assert figures["outcomes"].get("cancelled", 0) >= 1, figures
    outcomes = Counter(s["outcome"] for s in samples)
    assert set(outcomes) <= {"completed", "partial", "failed", "error"}
    # After the stop, users find nothing listening: an error sample each, a second apart.
    assert all(s["http_status"] == 0 for s in samples if s["outcome"] == "error")
    assert outcomes["error"] <= users * (duration_s + 2), outcomes
    check_report(run_dir, figures, samples)
    print(f"shutdown: {in_flight_at_stop[0]} in flight at the stop; {figures}; {dict(outcomes)}")


# -- a 429 storm, in a batch -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_429_storm(tmp_path: Path) -> None:
    """An RPM limit at a third of the demand: 429s honoured and retried; every run accounted for."""
    ttft_ms, attempts, scale = 2000.0, 4, 0.02
    concurrency, runs = 4, 40
    # The demand of the batch, in model time (the simulator's rate limits count model
    # time, scale_rate_limits): run_batch keeps `concurrency` runs in flight the whole
    # time; an unthrottled parallel run sends LLM_STEPS requests over a makespan of
    # LLM_STEPS_ON_PATH answers back to back (the tool beside the drafts is shorter).
    # So the batch asks concurrency × LLM_STEPS / makespan requests per model second.
    makespan_s = LLM_STEPS_ON_PATH * llm_attempt_s(1.0, ttft_ms)
    demand_rpm = concurrency * LLM_STEPS / makespan_s * 60  # ≈ 153
    rpm_limit = demand_rpm / 3
    # A 429's Retry-After is the time until one request's worth is back in the
    # bucket: at most 60 / rpm_limit model seconds, told in real seconds.
    retry_wait_s = 60 / rpm_limit * scale
    bound_s = run_bound_s(scale, ttft_ms=ttft_ms, max_attempts=attempts, retry_wait_s=retry_wait_s)
    path = tmp_path / "faulty_agent.yaml"
    path.write_text(scenario_yaml(ttft_ms, attempts), encoding="utf-8")
    scenario = load_scenario(str(path))
    out = tmp_path / "run"
    registry = CollectorRegistry()
    with simulator(scenario, scale, rpm_limit=rpm_limit) as sim:
        # The bucket starts full: a minute's worth of requests would pass at once and
        # soften the storm. Spend it first, as an hour of busy traffic would have.
        spent = spend_rate_limit(sim)
        provider = OpenAICompatProvider(
            base_url=sim.url, api_key="unused", simulator=True, timeout_s=CLIENT_TIMEOUT_S
        )
        batch = run_batch(
            scenario,
            variants=["parallel"],
            runs=runs,
            out_dir=out,
            time_scale=scale,
            concurrency=concurrency,
            provider=provider,
            metrics=HarnessMetrics(registry),
        )
        refused = sim.state.outcomes["429"] - 1  # the one that ended the spending
        requests_seen = sim.state.requests_total - spent
    spans = read_spans(batch.spans_path)
    metrics = registry_metrics(registry)
    figures = check_spans_against_metrics(spans, metrics)
    assert total(metrics, "parabench_telemetry_spans_exported_total") == len(spans)
    run_spans = of_kind(spans, "invoke_agent ")
    # None lost: every run asked for is a result, a run span and a summary entry.
    assert len(batch.results) == len(run_spans) == runs == batch.summary["runs"]
    assert {r.trace_id for r in batch.results} == {r["traceId"] for r in run_spans}
    assert {r.outcome for r in batch.results} <= {"completed", "partial", "failed"}
    assert batch.summary["variants"][0]["outcomes"] == figures["outcomes"]
    assert batch.summary["variants"][0]["errors"] == figures["attempt_errors"]
    # A storm: many attempts were refused, each one a rate_limited chat span.
    chats = of_kind(spans, "chat ")
    assert len(chats) == requests_seen
    assert figures["errors"] == {"rate_limited": refused}
    # Throttled, the batch's own waiting (Retry-After) lowers what it asks: about 40 % of
    # attempts are refused here; a quarter at least, even on a busy machine.
    assert refused > len(chats) / 4, (refused, len(chats))
    # None hung: Retry-After is honoured, then the step retries or gives up.
    assert max(r["duration_s"] for r in run_spans) < bound_s
    markdown = check_report(out, figures)
    # Only the parallel variant ran: the report names it rather than claiming nothing ran.
    assert "The baseline variant was not measured" in markdown
    longest = max(r["duration_s"] for r in run_spans)
    print(
        f"429 storm: {rpm_limit:.1f} rpm, {refused} refused; {figures}; longest run "
        f"{longest:.2f} s, bound {bound_s:.2f} s"
    )


def spend_rate_limit(sim: SimulatorServer) -> int:
    """Send instant requests until the simulator answers 429; return how many were sent."""
    headers = {"x-parabench-ttft-ms": "0", "x-parabench-itl-ms": "0"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=10) as client:
        for sent in range(1, 10_000):
            if client.post("/chat/completions", json=body).status_code == 429:
                return sent
    raise AssertionError("the rate limit never answered 429")


# -- regressions -------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_huge_retry_after_is_capped(scenario_file: Path, scenario: Scenario, tmp_path: Path):
    """A provider asking to retry in a minute cannot hold a run: the wait is capped."""
    # One request per minute of real time: the second asks for Retry-After ≈ 60 s.
    with simulator(scenario, 0.02, rpm_limit=1, scale_rate_limits=False) as sim:
        telemetry = Telemetry(spans_path=tmp_path / "spans.jsonl", otlp_from_env=False)

        async def main() -> Any:
            provider = OpenAICompatProvider(base_url=sim.url, api_key="unused", simulator=True)
            executor = Executor(
                scenario,
                telemetry=telemetry,
                provider=provider,
                time_scale=0.02,
                retry=RetryPolicy(max_retry_after_s=0.1),
            )
            try:
                return await executor.run("sequential", seed=1)
            finally:
                await provider.aclose()

        started = time.monotonic()
        result = asyncio.run(main())
        elapsed = time.monotonic() - started
        telemetry.shutdown()
    assert result.outcome == "partial"  # plan got the one request; draft_a gave up
    assert result.steps["draft_a"].error_type == "rate_limited"
    assert elapsed < 5, elapsed
    assert RetryPolicy().max_retry_after_s == 60.0


class _SlowExporter(SpanExporter):
    """Writes nothing, slowly: a disk that cannot keep up."""

    def __init__(self, delay_s: float, fail: bool = False) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(self.delay_s)
        self.spans += len(spans)
        return SpanExportResult.FAILURE if self.fail else SpanExportResult.SUCCESS


def _end_spans(telemetry: Telemetry, count: int) -> None:
    for i in range(count):
        telemetry.tracer.start_span("span", attributes={"i": i}).end()


def test_a_full_queue_never_drops_a_span_of_the_file(tmp_path: Path) -> None:
    """The spans file under overload: a queue of 8 behind a slow disk loses nothing.

    The SDK's BatchSpanProcessor the file used to sit behind drops the oldest span
    when its queue is full, with one log line; the step spans then no longer add up.
    """
    registry = CollectorRegistry()
    telemetry = Telemetry(
        spans_path=tmp_path / "spans.jsonl",
        metrics=HarnessMetrics(registry),
        otlp_from_env=False,
        max_queue_size=8,
    )
    exporter = telemetry.file_exporter
    assert exporter is not None
    original = exporter.export

    def slow_export(spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(0.01)
        return original(spans)

    exporter.export = slow_export  # type: ignore[method-assign]
    _end_spans(telemetry, 300)
    telemetry.shutdown()
    assert len(read_spans(tmp_path / "spans.jsonl")) == 300
    assert telemetry.span_counts() == {"file": {"exported": 300}}
    metrics = registry_metrics(registry)
    assert total(metrics, "parabench_telemetry_spans_exported_total", exporter="file") == 300
    assert total(metrics, "parabench_telemetry_spans_dropped_total") == 0


def test_drops_are_counted_never_silent(caplog: pytest.LogCaptureFixture) -> None:
    """A collector queue that overflows, a failed export, a span after shutdown: all counted."""
    dropped: Counter[str] = Counter()
    exported: list[int] = []
    # A stalled collector: a queue of 4, each export takes 50 ms.
    slow = _SlowExporter(0.05)
    processor = QueuedSpanProcessor(
        slow,
        max_queue_size=4,
        schedule_delay_s=60,
        when_full="drop",
        on_export=exported.append,
        on_drop=lambda n, reason: dropped.update({reason: n}),
    )
    telemetry = Telemetry(otlp_from_env=False)
    telemetry.provider.add_span_processor(processor)
    with caplog.at_level(logging.WARNING):
        _end_spans(telemetry, 50)
        telemetry.force_flush()
        telemetry.shutdown()
        _end_spans(telemetry, 3)  # after shutdown: counted, and never raises
    assert dropped["queue_full"] > 0
    assert processor.exported + dropped["queue_full"] == 50 == slow.spans + dropped["queue_full"]
    assert sum(exported) == processor.exported
    assert dropped["after_shutdown"] == 3 == processor.dropped["after_shutdown"]
    assert sum("queue_full" in r.message for r in caplog.records) == 1  # once, then counted
    # An exporter that fails: its spans are counted as export_failed.
    failing = QueuedSpanProcessor(_SlowExporter(0, fail=True))
    telemetry = Telemetry(otlp_from_env=False)
    telemetry.provider.add_span_processor(failing)
    _end_spans(telemetry, 5)
    telemetry.shutdown()
    assert failing.dropped == Counter({"export_failed": 5}) and failing.exported == 0
    # An exporter that hangs cannot hold shutdown past its timeout; what is left is counted.
    hanging = _SlowExporter(1.0)
    stuck = QueuedSpanProcessor(hanging, max_export_batch_size=2, schedule_delay_s=0.01)
    telemetry = Telemetry(otlp_from_env=False)
    telemetry.provider.add_span_processor(stuck)
    _end_spans(telemetry, 10)
    started = time.monotonic()
    stuck.shutdown(timeout_millis=200)
    assert time.monotonic() - started < 1.5
    assert stuck.dropped["shutdown_timeout"] >= 6
    stuck._worker.join(5)  # the batch it was writing when shutdown gave up
    assert stuck.exported + stuck.dropped["shutdown_timeout"] == 10


@pytest.mark.timeout(30)
def test_shutdown_waits_for_runs_before_closing_the_spans_file(tmp_path: Path) -> None:
    """A request still ending when uvicorn gives up on it still gets its spans written.

    Uvicorn cancels the requests left after its graceful timeout and moves straight
    to the app's shutdown, which closes the telemetry: a run ending a moment later
    used to lose its spans (ignored by the SDK after shutdown).
    """
    spans_path = tmp_path / "spans.jsonl"
    state = ServiceState(ServiceConfig(port=0, spans_path=spans_path, time_scale=0.05))
    app = create_app(state.config, state)

    async def slow_to_end() -> None:
        task = asyncio.current_task()
        assert task is not None
        state.requests.add(task)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # ending the run takes a moment
            state.telemetry.tracer.start_span("step late", attributes={"late": True}).end()
            raise
        finally:
            state.requests.discard(task)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            request = asyncio.create_task(slow_to_end())
            await asyncio.sleep(0.05)
            request.cancel()  # what uvicorn does after its graceful timeout
        assert request.done()

    asyncio.run(main())
    assert [s["name"] for s in read_spans(spans_path)] == ["step late"]
    assert state.telemetry.span_counts() == {"file": {"exported": 1}}
