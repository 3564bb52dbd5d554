"""Analysis at scale: a million step spans analysed end to end, against time and memory targets.

The script writes synthetic harness traces — OTLP JSON lines in exactly the
shape ``harness.telemetry.otlp_file`` writes, one ``ExportTraceServiceRequest``
of 512 spans per line, as the SDK's batch processor exports them — for N runs
(default 100,000) of a 10-step research agent, each a run span
(``invoke_agent``, with its card events) and 10 step spans carrying every
attribute the executor writes: 1,000,000 step spans, 1,100,000 spans in all.

The DAG has two forks::

    plan → {search_web, search_docs, search_code, search_news}      (fork of 4)
         → {analyze_market, analyze_risks}, each after all 4 searches (fork of 2)
         → merge → review → draft

Half the runs are the ``sequential`` variant (one step after another in
topological order), half ``parallel`` (each step starts when its last
dependency ends). Every gap between steps is a random 0–2 ms of executor
overhead; step durations are lognormal; the parallel variant re-sends the
gathered context to both analyses, so its LLM branches cost more. Generation
is not measured.

Then, in a fresh process (so its peak RSS is the analysis's own), the script
times each stage of the analysis with ``time.perf_counter``:

1. import — pandas and ``harness.analysis``;
2. ingest — ``harness.analysis.ingest.read_spans``;
3. tables — ``runs_table`` and ``steps_table``;
4. critical paths — ``harness.analysis.dagpaths.run_critical_paths``;
5. branches — ``harness.analysis.branches.branch_table`` (reported "not
   available" when that module cannot be imported).

Targets: all five within 60 s, peak RSS within 4 GB (10⁹ bytes).

In the same process, on the same steps table, a straightforward per-trace
networkx implementation computes the same critical paths: for each run an
``nx.DiGraph`` of its schedule graph (the declared ``depends_on`` edges for
parallel runs, the chain of steps in start order for sequential ones — the
definition in ``harness/analysis/dagpaths.py``), a source and a sink, edge
weight = the duration of the edge's tail step, ``nx.dag_longest_path``. The
two must agree on every trace (same path, same length within 1e-9 relative),
and ``run_critical_paths`` must be at least 10× faster. The networkx side runs
after the span table is freed and the rest of the heap frozen (``gc.freeze``),
so any garbage-collector cost of a large heap falls on ``run_critical_paths``
rather than on the baseline.

Usage::

    python bench/analysis_scale.py                  # 100,000 runs; about 70 s on 2 cores
    python bench/analysis_scale.py --write-docs     # also rewrite docs/benchmarks.md
    python bench/analysis_scale.py --runs 2000 --keep --json out.json

Exit status: 0 when every target is met, 1 when one is not (or a stage is not
available), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import resource
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _child import measure_in_child
from _docs import DOCS_PATH, marks, rewrite_section
from _machine import machine_facts
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # orjson is optional; json gives the same bytes, more slowly

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


TARGET_SECONDS = 60.0
TARGET_RSS_BYTES = 4 * 10**9  # 4 GB, decimal: the stricter reading
TARGET_RATIO = 10.0
REL_TOLERANCE = 1e-9
BATCH_SPANS = 512  # the SDK's BatchSpanProcessor default max_export_batch_size
START_MARK, END_MARK = marks("analysis-scale")

SCENARIO = "scale_research"
VALUE_OF_TIME_USD_PER_S = 0.01
PRICES = {"gpt-4o-mini": (0.15e-6, 0.60e-6), "gpt-4o": (2.50e-6, 10.0e-6)}  # USD per token
SEARCHES = ["search_web", "search_docs", "search_code", "search_news"]
ANALYSES = ["analyze_market", "analyze_risks"]
RESENT_CONTEXT_TOKENS = 3500  # what the parallel variant re-sends to each analysis


def _step(
    sid: str,
    kind: str,
    deps: list[str],
    median_ms: float,
    *,
    card: bool = False,
    model: str | None = None,
    tokens: tuple[int, int] = (0, 0),
    tool: str | None = None,
    tool_cost: float = 0.0,
) -> dict[str, Any]:
    return {
        "id": sid,
        "kind": kind,
        "deps": deps,
        "median_ms": median_ms,
        "card": card,
        "model": model,
        "tokens": tokens,
        "tool": tool,
        "tool_cost": tool_cost,
    }


# Declared in topological order: that is also the order the sequential variant runs them.
STEPS = [
    _step("plan", "llm", [], 900, model="gpt-4o-mini", tokens=(1200, 150)),
    _step("search_web", "tool", ["plan"], 600, card=True, tool="web_search", tool_cost=0.001),
    _step("search_docs", "tool", ["plan"], 450, tool="docs_search", tool_cost=0.0005),
    _step("search_code", "tool", ["plan"], 500, tool="code_search", tool_cost=0.0005),
    _step("search_news", "tool", ["plan"], 700, tool="news_search", tool_cost=0.001),
    _step("analyze_market", "llm", SEARCHES, 2500, card=True, model="gpt-4o", tokens=(3000, 400)),
    _step("analyze_risks", "llm", SEARCHES, 2200, card=True, model="gpt-4o", tokens=(2800, 350)),
    _step("merge", "llm", ANALYSES, 1500, model="gpt-4o", tokens=(2500, 300)),
    _step("review", "llm", ["merge"], 900, model="gpt-4o-mini", tokens=(2000, 120)),
    _step("draft", "llm", ["review"], 3500, card=True, model="gpt-4o", tokens=(3500, 700)),
]
STEP_IDS = [s["id"] for s in STEPS]
VARIANTS = ("sequential", "parallel")
SIGMA = 0.35  # lognormal spread of step durations


# --- generation ---------------------------------------------------------------------------


def _kv(key: str, value: Any) -> dict[str, Any]:
    """One OTLP/JSON attribute (int64 as a string, as protobuf's JSON mapping writes it)."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        if not value:
            return {"key": key, "value": {"arrayValue": {}}}
        return {
            "key": key,
            "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}},
        }
    return {"key": key, "value": {"stringValue": str(value)}}


def _priorities() -> dict[str, float]:
    """Longest remaining path at median durations (s): the executor's ``priority_s``."""
    from harness import dag

    deps = {s["id"]: s["deps"] for s in STEPS}
    return dag.bottom_levels(deps, {s["id"]: s["median_ms"] / 1000 for s in STEPS})


def _hex_ids(rng: np.random.Generator, count: int, nbytes: int) -> list[str]:
    text = rng.bytes(count * nbytes).hex()
    width = 2 * nbytes
    return [text[i : i + width] for i in range(0, count * width, width)]


def simulate(runs: int, seed: int) -> dict[str, Any]:
    """Every number of every span, as arrays (runs × steps where per step)."""
    rng = np.random.default_rng(seed)
    n_steps = len(STEPS)
    parallel = np.arange(runs) % 2 == 1  # alternate: half sequential, half parallel
    medians = np.array([s["median_ms"] for s in STEPS])
    dur_ns = np.round(medians * rng.lognormal(0.0, SIGMA, (runs, n_steps)) * 1e6).astype(np.int64)
    gap_ns = rng.integers(0, 2_000_000, (runs, n_steps), endpoint=True)  # 0–2 ms overhead
    tail_ns = rng.integers(20_000, 500_000, runs)
    card_lag_ns = rng.integers(5_000, 100_000, (runs, n_steps))
    run_start = 1_780_000_000_000_000_000 + np.arange(runs, dtype=np.int64) * 40_000_000
    start = np.zeros((runs, n_steps), dtype=np.int64)
    end = np.zeros((runs, n_steps), dtype=np.int64)
    col = {sid: j for j, sid in enumerate(STEP_IDS)}
    for j, s in enumerate(STEPS):
        after_prev = end[:, j - 1] if j else run_start  # sequential: the previous step
        deps = [col[d] for d in s["deps"]]  # parallel: after the last of its dependencies
        after_deps = np.max(end[:, deps], axis=1) if deps else run_start
        start[:, j] = np.where(parallel, after_deps, after_prev) + gap_ns[:, j]
        end[:, j] = start[:, j] + dur_ns[:, j]
    run_end = end.max(axis=1) + tail_ns
    attempts = np.where(rng.random((runs, n_steps)) < 0.02, 2, 1)
    input_tokens = np.zeros((runs, n_steps), dtype=np.int64)
    output_tokens = np.zeros((runs, n_steps), dtype=np.int64)
    cost = np.zeros((runs, n_steps))
    for j, s in enumerate(STEPS):
        if s["kind"] != "llm":
            cost[:, j] = s["tool_cost"]
            continue
        tin, tout = s["tokens"]
        base_in = np.full(runs, float(tin))
        if s["id"] in ANALYSES:
            base_in = np.where(parallel, tin + RESENT_CONTEXT_TOKENS, tin)
        input_tokens[:, j] = np.maximum(np.round(base_in * rng.lognormal(0, 0.1, runs)), 1)
        output_tokens[:, j] = np.maximum(np.round(tout * rng.lognormal(0, 0.25, runs)), 1)
        price_in, price_out = PRICES[str(s["model"])]
        cost[:, j] = input_tokens[:, j] * price_in + output_tokens[:, j] * price_out
    return {
        "parallel": parallel,
        "run_start": run_start,
        "run_end": run_end,
        "start": start,
        "end": end,
        "card_at": end + card_lag_ns,
        "attempts": attempts,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": cost,
        "trace_ids": _hex_ids(rng, runs, 16),
        "run_ids": _hex_ids(rng, runs, 16),
        "span_ids": _hex_ids(rng, runs * (n_steps + 1), 8),
    }


def _request(spans: list[dict[str, Any]], resource_attrs: list[dict[str, Any]]) -> bytes:
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": resource_attrs},
                "scopeSpans": [{"scope": {"name": "parabench"}, "spans": spans}],
            }
        ]
    }
    return _dumps(request) + b"\n"


def write_traces(path: Path, runs: int, seed: int, progress: Progress) -> dict[str, int]:
    """Write ``runs`` synthetic runs to ``path`` as OTLP JSON lines; return span counts."""
    sim = simulate(runs, seed)
    resource_attrs = [
        _kv("telemetry.sdk.language", "python"),
        _kv("telemetry.sdk.name", "opentelemetry"),
        _kv("telemetry.sdk.version", "1.45.2"),
        _kv("service.instance.id", f"bench-{seed}"),
        _kv("service.name", "parabench"),
    ]
    prio = _priorities()
    # Attributes that are the same in every span of a step are built once and shared.
    fixed = [
        [
            _kv("parabench.step.id", s["id"]),
            _kv("parabench.step.kind", s["kind"]),
            _kv("parabench.step.depends_on", list(s["deps"])),
            _kv("parabench.step.card", s["card"]),
            _kv("parabench.step.priority_s", prio[s["id"]]),
            _kv("parabench.step.status", "ok"),
        ]
        for s in STEPS
    ]
    queue = _kv("parabench.step.queue_ms", 0.0)  # no cap, no rate limit: nothing queued
    attempts_kv = {n: _kv("parabench.step.attempts", n) for n in (1, 2)}
    model_kv = [_kv("gen_ai.request.model", s["model"]) if s["model"] else None for s in STEPS]
    tool_kv = [_kv("gen_ai.tool.name", s["tool"]) if s["tool"] else None for s in STEPS]
    names = [f"step {sid}" for sid in STEP_IDS]
    cards = [j for j, s in enumerate(STEPS) if s["card"]]
    run_fixed = {
        variant: [
            _kv("gen_ai.operation.name", "invoke_agent"),
            _kv("gen_ai.agent.name", SCENARIO),
        ]
        for variant in VARIANTS
    }
    cols = {
        k: sim[k].tolist()
        for k in (
            "parallel",
            "run_start",
            "run_end",
            "start",
            "end",
            "card_at",
            "attempts",
            "input_tokens",
            "output_tokens",
            "cost",
        )
    }
    trace_ids, run_ids, span_ids = sim["trace_ids"], sim["run_ids"], sim["span_ids"]
    del sim
    per_run = len(STEPS) + 1
    batch: list[dict[str, Any]] = []
    counts = {"runs": runs, "step_spans": 0, "run_spans": 0, "lines": 0}
    task = progress.add_task("writing traces", total=runs)
    with path.open("wb") as out:
        for i in range(runs):
            trace_id = trace_ids[i]
            run_span_id = span_ids[i * per_run]
            variant = VARIANTS[int(cols["parallel"][i])]
            starts, ends = cols["start"][i], cols["end"][i]
            costs, tin, tout = cols["cost"][i], cols["input_tokens"][i], cols["output_tokens"][i]
            attempts = cols["attempts"][i]
            step_spans = []
            for j, s in enumerate(STEPS):
                attrs = [
                    *fixed[j],
                    attempts_kv[attempts[j]],
                    queue,
                    _kv("parabench.cost_usd", costs[j]),
                ]
                if s["kind"] == "llm":
                    attrs += [
                        model_kv[j],
                        _kv("gen_ai.usage.input_tokens", tin[j]),
                        _kv("gen_ai.usage.output_tokens", tout[j]),
                    ]
                else:
                    attrs.append(tool_kv[j])
                step_spans.append(
                    {
                        "traceId": trace_id,
                        "spanId": span_ids[i * per_run + 1 + j],
                        "parentSpanId": run_span_id,
                        "name": names[j],
                        "kind": 1,
                        "startTimeUnixNano": str(starts[j]),
                        "endTimeUnixNano": str(ends[j]),
                        "attributes": attrs,
                        "status": {},
                        "flags": 256,
                    }
                )
            # A span is exported when it ends: the steps in end order, then their run.
            step_spans.sort(key=lambda sp: int(sp["endTimeUnixNano"]))
            shown = sorted((cols["card_at"][i][j], STEP_IDS[j]) for j in cards)
            run_span = {
                "traceId": trace_id,
                "spanId": run_span_id,
                "name": f"invoke_agent {SCENARIO}",
                "kind": 1,
                "startTimeUnixNano": str(cols["run_start"][i]),
                "endTimeUnixNano": str(cols["run_end"][i]),
                "attributes": [
                    *run_fixed[variant],
                    _kv("parabench.run.id", run_ids[i]),
                    _kv("parabench.run.index", i // 2),
                    _kv("parabench.scenario", SCENARIO),
                    _kv("parabench.variant", variant),
                    _kv("parabench.variant.mode", variant),
                    _kv("parabench.variant.max_concurrency", 1 if variant == "sequential" else 0),
                    _kv("parabench.baseline_variant", "sequential"),
                    _kv("parabench.value_of_time_usd_per_s", VALUE_OF_TIME_USD_PER_S),
                    _kv("parabench.seed", seed),
                    _kv("parabench.time_scale", 1.0),
                    _kv("parabench.cost_usd", math.fsum(costs)),
                    _kv("parabench.cost.unpriced", False),
                    _kv("parabench.outcome", "completed"),
                    _kv("parabench.cards", len(shown)),
                ],
                "events": [
                    {
                        "timeUnixNano": str(at),
                        "name": "parabench.card",
                        "attributes": [
                            _kv("parabench.step.id", sid),
                            _kv("parabench.card.index", index),
                        ],
                    }
                    for index, (at, sid) in enumerate(shown)
                ],
                "status": {},
                "flags": 256,
            }
            batch += step_spans
            batch.append(run_span)
            counts["step_spans"] += len(step_spans)
            counts["run_spans"] += 1
            if len(batch) >= BATCH_SPANS:
                out.write(_request(batch[:BATCH_SPANS], resource_attrs))
                counts["lines"] += 1
                batch = batch[BATCH_SPANS:]
            if i % 1000 == 999:
                progress.update(task, completed=i + 1)
        if batch:
            out.write(_request(batch, resource_attrs))
            counts["lines"] += 1
    progress.update(task, completed=runs)
    counts["spans"] = counts["step_spans"] + counts["run_spans"]
    counts["bytes"] = path.stat().st_size
    return counts


# --- measurement (in a child process) -------------------------------------------------------


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec``, so a child
    would inherit its parent's peak (the parent held the generated arrays).
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def networkx_critical_paths(
    steps: Any, runs: Any, on_progress: Callable[[int], None] | None = None
) -> dict[str, tuple[tuple[str, ...], float]]:
    """The straightforward way: one networkx DAG per trace and its longest path.

    Same schedule graph as ``run_critical_paths``: the declared dependencies for
    parallel runs, the steps chained in start order for sequential runs. Node
    weights become edge weights (an edge weighs its tail step's duration), with a
    source before the first steps and a sink after the last.
    """
    import networkx as nx

    source, sink = "__source__", "__sink__"
    mode_of = dict(zip(runs.trace_id.tolist(), runs["mode"].tolist(), strict=True))
    by_trace: dict[str, list[tuple[float, str, tuple[str, ...], float]]] = {}
    for trace_id, start_ms, sid, deps, duration in zip(
        steps.trace_id.tolist(),
        steps.start_ms.tolist(),
        steps.step_id.tolist(),
        steps.depends_on.tolist(),
        steps.duration_ms.tolist(),
        strict=True,
    ):
        by_trace.setdefault(trace_id, []).append((start_ms, sid, tuple(deps), max(duration, 0.0)))
    out: dict[str, tuple[tuple[str, ...], float]] = {}
    for done, (trace_id, rows) in enumerate(by_trace.items(), 1):
        rows.sort(key=lambda r: (r[0], r[1]))  # the order the steps started
        duration = {sid: d for _, sid, _, d in rows}
        graph = nx.DiGraph()
        graph.add_nodes_from(duration)
        if mode_of.get(trace_id, "parallel") == "sequential":
            graph.add_edges_from((a[1], b[1]) for a, b in itertools.pairwise(rows))
        else:
            graph.add_edges_from(
                (dep, sid) for _, sid, deps, _ in rows for dep in deps if dep in duration
            )
        roots = [v for v in duration if graph.in_degree(v) == 0]
        leaves = [u for u in duration if graph.out_degree(u) == 0]
        for u, v in graph.edges:
            graph[u][v]["weight"] = duration[u]
        graph.add_weighted_edges_from((source, v, 0.0) for v in roots)
        graph.add_weighted_edges_from((u, sink, duration[u]) for u in leaves)
        path = nx.dag_longest_path(graph, weight="weight")
        length = nx.path_weight(graph, path, "weight")
        out[trace_id] = (tuple(n for n in path if n not in (source, sink)), float(length))
        if on_progress is not None and done % 1000 == 0:
            on_progress(done)
    return out


def compare(ours: Any, theirs: dict[str, tuple[tuple[str, ...], float]]) -> dict[str, Any]:
    """Trace by trace: same path, same length within ``REL_TOLERANCE``."""
    mismatches: list[dict[str, Any]] = []
    max_rel = 0.0
    seen = set()
    for trace_id, path, length in zip(
        ours.trace_id.tolist(), ours.path.tolist(), ours.path_ms.tolist(), strict=True
    ):
        seen.add(trace_id)
        other = theirs.get(trace_id)
        if other is None:
            mismatches.append({"trace_id": trace_id, "why": "missing from networkx"})
            continue
        rel = abs(length - other[1]) / max(abs(length), abs(other[1]), 1e-300)
        max_rel = max(max_rel, rel)
        if tuple(path) != other[0] or rel > REL_TOLERANCE:
            mismatches.append(
                {
                    "trace_id": trace_id,
                    "path": list(path),
                    "path_ms": length,
                    "networkx_path": list(other[0]),
                    "networkx_ms": other[1],
                }
            )
    for trace_id in theirs.keys() - seen:
        mismatches.append({"trace_id": trace_id, "why": "missing from run_critical_paths"})
    return {
        "traces": len(theirs),
        "mismatches": len(mismatches),
        "examples": mismatches[:5],
        "max_rel_diff": max_rel,
    }


def measure(spans_path: Path, result_path: Path) -> None:
    """Time the analysis stages and the networkx baseline; write the figures as JSON."""
    console = Console() if sys.stdout.isatty() else Console(width=160)
    stages: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] = {"stages": stages, "rss_at_start": peak_rss_bytes()}

    def stage(name: str, seconds: float, **extra: Any) -> None:
        stages[name] = {"seconds": seconds, "peak_rss": peak_rss_bytes(), **extra}
        console.print(f"  {name}: {seconds:.2f} s, peak RSS {peak_rss_bytes() / 1e9:.2f} GB")

    t0 = time.perf_counter()
    import pandas as pd  # noqa: F401  (its import is part of the analysis)

    from harness.analysis.dagpaths import run_critical_paths
    from harness.analysis.ingest import read_spans
    from harness.analysis.runs import runs_table, steps_table

    stage("import", time.perf_counter() - t0)

    t0 = time.perf_counter()
    spans, quality = read_spans(spans_path)
    stage("ingest", time.perf_counter() - t0, rows=len(spans), quality=quality.to_dict())

    t0 = time.perf_counter()
    runs = runs_table(spans)
    steps = steps_table(spans, runs)
    stage("tables", time.perf_counter() - t0, runs=len(runs), steps=len(steps))

    t0 = time.perf_counter()
    paths = run_critical_paths(steps, runs)
    stage("critical paths", time.perf_counter() - t0, rows=len(paths))

    try:
        from harness.analysis.branches import branch_table
    except ImportError as exc:
        stages["branches"] = {"seconds": None, "available": False, "why": str(exc)}
        console.print(f"  branches: not available ({exc})")
    else:
        t0 = time.perf_counter()
        try:
            table = branch_table(steps, runs)
        except Exception as exc:  # report it with the other figures rather than lose them
            stages["branches"] = {"seconds": None, "available": True, "error": repr(exc)}
            console.print(f"  branches: [red]failed[/]: {exc!r}")
        else:
            seconds = time.perf_counter() - t0
            rows = {k: len(getattr(table, k)) for k in ("branches", "forks") if hasattr(table, k)}
            stage("branches", seconds, available=True, rows=rows)
    result["peak_rss"] = peak_rss_bytes()
    result["outcomes"] = runs.outcome.value_counts().to_dict()

    # The baseline, on the same steps table. The span table is no longer needed, and what
    # is left is frozen, so collecting a large heap's garbage does not slow the baseline.
    del spans
    gc.collect()
    gc.freeze()
    import networkx as nx

    result["networkx_version"] = nx.__version__
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("networkx longest paths", total=len(runs))
        t0 = time.perf_counter()
        theirs = networkx_critical_paths(
            steps, runs, lambda done: progress.update(task, completed=done)
        )
        result["networkx_seconds"] = time.perf_counter() - t0
    console.print(f"  networkx: {result['networkx_seconds']:.2f} s")
    result["check"] = compare(paths, theirs)
    result["peak_rss_with_baseline"] = peak_rss_bytes()
    result_path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


# --- report -------------------------------------------------------------------------------

STAGES = ["import", "ingest", "tables", "critical paths", "branches"]


def summarize(measured: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """Totals, the ratio and every target's verdict."""
    stages = measured["stages"]
    branches = stages.get("branches", {})
    available = branches.get("seconds") is not None
    total = sum(stages[s]["seconds"] for s in STAGES if stages.get(s, {}).get("seconds"))
    cp_s = stages["critical paths"]["seconds"]
    ratio = measured["networkx_seconds"] / cp_s if cp_s > 0 else math.inf
    check = measured["check"]
    data_ok = (
        stages["tables"]["runs"] == counts["runs"]
        and stages["tables"]["steps"] == counts["step_spans"]
        and stages["critical paths"]["rows"] == counts["runs"]
        and not stages["ingest"]["quality"]
    )
    targets = {
        "total": {
            "value": total,
            "target": f"≤ {TARGET_SECONDS:.0f} s",
            "passed": total <= TARGET_SECONDS and available,
        },
        "peak_rss": {
            "value": measured["peak_rss"],
            "target": f"≤ {TARGET_RSS_BYTES / 1e9:.0f} GB",
            "passed": measured["peak_rss"] <= TARGET_RSS_BYTES,
        },
        "ratio": {
            "value": ratio,
            "target": f"≥ {TARGET_RATIO:.0f}×",
            "passed": ratio >= TARGET_RATIO,
        },
        "equal": {
            "value": check["mismatches"],
            "target": "0 mismatches",
            "passed": check["mismatches"] == 0 and check["traces"] == counts["runs"],
        },
        "data": {"value": data_ok, "target": "every run and step read", "passed": data_ok},
    }
    problems = []
    if not available:
        problems.append(
            "branches "
            + ("failed: " + branches["error"] if "error" in branches else "not available")
            + "; the total covers the other stages only"
        )
    return {
        "total_seconds": total,
        "branches_available": available,
        "ratio": ratio,
        "targets": targets,
        "passed": all(t["passed"] for t in targets.values()),
        "problems": problems,
    }


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def _stage_rows(measured: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for name in STAGES:
        s = measured["stages"].get(name, {})
        if s.get("seconds") is None:
            what = "failed" if "error" in s else "not available"
            rows.append((name, what, "–"))
        else:
            rows.append((name, f"{s['seconds']:.2f}", _gb(s["peak_rss"])))
    return rows


def print_report(console: Console, report: dict[str, Any]) -> None:
    measured, summary = report["measured"], report["summary"]
    table = Table(title="Analysis at scale: stages (fresh process)")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("peak RSS so far", justify="right")
    for row in _stage_rows(measured):
        table.add_row(*row)
    table.add_row("[bold]total", f"[bold]{summary['total_seconds']:.2f}", _gb(measured["peak_rss"]))
    console.print(table)
    targets = Table(title="Targets")
    for name in ("figure", "value", "target", "result"):
        targets.add_column(name, justify="left" if name == "figure" else "right")
    for name, t in _target_rows(report):
        mark = "[green]pass" if t["passed"] else "[red]FAIL"
        targets.add_row(name, t["shown"], t["target"], mark)
    console.print(targets)
    for problem in summary["problems"]:
        console.print(f"[yellow]{problem}")


def _target_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    measured, t = report["measured"], report["summary"]["targets"]
    check = measured["check"]
    shown = {
        "total": f"{t['total']['value']:.1f} s",
        "peak_rss": _gb(t["peak_rss"]["value"]),
        "ratio": f"{t['ratio']['value']:.1f}× ({measured['networkx_seconds']:.2f} s ÷ "
        f"{measured['stages']['critical paths']['seconds']:.2f} s)",
        "equal": f"{check['mismatches']} of {check['traces']:,} traces "
        f"(max rel. diff {check['max_rel_diff']:.1e})",
        "data": "yes" if t["data"]["value"] else "no",
    }
    names = {
        "total": "end to end (import + ingest + tables + critical paths + branches)",
        "peak_rss": "peak RSS of the analysis process",
        "ratio": "networkx ÷ run_critical_paths",
        "equal": "critical paths differing from networkx",
        "data": "all runs and steps read, no data-quality finding",
    }
    return [(names[k], {**t[k], "shown": shown[k]}) for k in names]


def docs_section(report: dict[str, Any]) -> str:
    """The "Analysis at scale" section of docs/benchmarks.md."""
    meta, counts, measured, summary = (
        report["meta"],
        report["counts"],
        report["measured"],
        report["summary"],
    )
    m = meta["machine"]
    lines = [
        START_MARK,
        "## Analysis at scale",
        "",
        f"Synthetic harness traces: {counts['runs']:,} runs, each a run span (`invoke_agent`, "
        f"with its card events) and 10 step spans carrying every attribute the executor "
        f"writes — {counts['step_spans']:,} step spans, {counts['spans']:,} spans in all, "
        f"{counts['bytes'] / 1e9:.2f} GB of OTLP JSON lines in the shape "
        "`harness.telemetry.otlp_file` writes (512 spans per line). The DAG has two forks: "
        "`plan` → 4 searches → 2 analyses (each after all 4 searches) → `merge` → `review` → "
        "`draft`. Half the runs are `sequential`, half `parallel` (each step starts when its "
        "last dependency ends); every gap between steps is 0–2 ms, step durations are "
        "lognormal, and the parallel variant re-sends the gathered context to both analyses. "
        "The file was just written, so it is read from the page cache.",
        "",
        "The analysis runs in a fresh process, whose peak RSS (`VmHWM`; GB = 10⁹ bytes) is "
        "the figure below; each stage is timed with `time.perf_counter`. Then, in the same "
        "process and from the same steps table, a straightforward networkx implementation "
        "computes the same critical paths: per trace, an `nx.DiGraph` of its schedule graph "
        "(declared `depends_on` for parallel runs, the steps chained in start order for "
        "sequential ones), edge weight = the tail step's duration, `nx.dag_longest_path`. "
        "It runs after the span table is freed and the rest of the heap frozen "
        "(`gc.freeze`), so a large heap's garbage collection does not slow it. Both results "
        "must agree trace by trace: the same path and its length within "
        f"{REL_TOLERANCE:.0e} relative.".replace("e-0", "e-"),
        "",
        "| stage | seconds | peak RSS so far |",
        "|---|---:|---:|",
    ]
    for name, seconds, rss in _stage_rows(measured):
        code = {
            "import": "pandas, `harness.analysis`",
            "ingest": "`ingest.read_spans`",
            "tables": "`runs_table`, `steps_table`",
            "critical paths": "`dagpaths.run_critical_paths`",
            "branches": "`branches.branch_table`",
        }[name]
        lines.append(f"| {name} ({code}) | {seconds} | {rss} |")
    lines.append(
        f"| **total** | **{summary['total_seconds']:.2f}** | **{_gb(measured['peak_rss'])}** |"
    )
    lines += ["", "| figure | value | target | result |", "|---|---:|---:|---|"]
    for name, t in _target_rows(report):
        lines.append(
            f"| {name} | {t['shown']} | {t['target']} | {'pass' if t['passed'] else '**FAIL**'} |"
        )
    failed = [name for name, t in _target_rows(report) if not t["passed"]]
    lines += [
        "",
        f"**Result: {'PASS' if summary['passed'] else 'FAIL'}**"
        + (" — every target met." if summary["passed"] else f" — missed: {'; '.join(failed)}.")
        + "".join(f" Note: {p}." for p in summary["problems"]),
        "",
        f"- Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, {m['memory_gb']} GiB RAM, "
        f"{m['platform']}, Python {m['python']}, networkx {measured['networkx_version']}",
        f"- Command: `{meta['command']}` (seed {meta['seed']})",
        f"- Date: {meta['date']}; generating the traces took {meta['generate_s']:.0f} s (not "
        f"measured), the whole benchmark {meta['elapsed_s']:.0f} s",
        END_MARK,
        "",
    ]
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Analyse a million synthetic step spans end to end against time and "
        "memory targets, and against a per-trace networkx implementation.",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=100_000,
        help="runs to generate, 11 spans each (default: 100000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated spans.jsonl (its path is printed)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite the 'Analysis at scale' section of docs/benchmarks.md",
    )
    # Internal: the measuring child process.
    parser.add_argument("--measure", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 (half sequential, half parallel)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        measure(*args.measure)
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=160)
    command = shlex.join(["python", "bench/analysis_scale.py", *(argv or sys.argv[1:])])
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="parabench-analysis-scale-"))
    spans_path, result_path = tmp / "spans.jsonl", tmp / "measured.json"
    try:
        with Progress(console=console, transient=True) as progress:
            t0 = time.perf_counter()
            counts = write_traces(spans_path, args.runs, args.seed, progress)
            generate_s = time.perf_counter() - t0
        gc.collect()
        console.print(
            f"generated {counts['spans']:,} spans ({counts['step_spans']:,} steps) in "
            f"{counts['lines']:,} lines, {counts['bytes'] / 1e9:.2f} GB, in {generate_s:.1f} s"
        )
        console.print("measuring in a fresh process:")
        measured = measure_in_child(__file__, spans_path, result_path, console)
        if measured is None:
            return 1
    finally:
        if args.keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.perf_counter() - started,
        "generate_s": generate_s,
        "machine": machine_facts(),
        "seed": args.seed,
        "runs": args.runs,
        "children_peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }
    report = {"meta": meta, "counts": counts, "measured": measured}
    report["summary"] = summarize(measured, counts)
    print_report(console, report)
    passed = report["summary"]["passed"]
    console.print(f"{'[green]PASS' if passed else '[red]FAIL'}[/] in {meta['elapsed_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        console.print(f"results: {args.json}")
    if args.write_docs:
        rewrite_section(DOCS_PATH, docs_section(report), START_MARK, END_MARK)
        console.print(f"rewrote the analysis-scale section of {DOCS_PATH}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
