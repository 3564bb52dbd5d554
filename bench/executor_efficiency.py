"""Executor efficiency: does the executor reach the lower bound of DESIGN.md?

For each bundled scenario and each of its variants, run N runs in process with
the simulated provider, read the spans back from disk, and compare each run's
observed makespan (run span start → end) with two references built from the
same run's measured step service times:

* the lower bound ``max(L, W/m)`` — ``L`` the critical path of the declared DAG,
  ``W`` the sum of service times, ``m`` the cap (1 sequential, ∞ parallel, N for
  ``max_concurrency``). No schedule can beat it.
* the replay — ``harness.dag.replay`` of the same durations under the
  executor's own policy (topological order for sequential; for a cap, the ready
  step with the longest remaining path over *median* durations first, which is
  the priority the executor uses). Makespan ÷ replay is pure executor overhead.

For sequential and uncapped parallel variants the two coincide (list scheduling
is optimal there) and the target applies to the bound ratio. For a capped
variant the bound is often unattainable: three ~6.7 s branches on two slots
cannot pack, so one branch waits a whole branch length whatever the schedule.
There the bound ratio is reported, and the target applies to the replay ratio.

Usage::

    python bench/executor_efficiency.py                 # defaults: 20 runs, time scale 0.05
    python bench/executor_efficiency.py --write-docs    # also rewrite docs/benchmarks.md
    python bench/executor_efficiency.py --runs 5 --time-scale 0.1 1.0 --json out.json

Exit status: 0 when every variant meets the target, 1 when one does not, 2 on
a usage error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _docs import DOCS_PATH, REPO, marks, rewrite_section
from _machine import machine_facts
from rich.console import Console
from rich.table import Table

from harness import dag
from harness.analysis.ingest import read_spans
from harness.analysis.runs import runs_table, steps_table
from harness.analysis.summary import efficiency_table
from harness.errors import ScenarioError
from harness.runner import run_batch
from harness.scenario import Plan, Scenario, bundled_scenarios, load_scenario

TARGET = 1.02
SECTION_TITLE = "## Executor efficiency"
# Each benchmark owns one marked section of docs/benchmarks.md and rewrites only it.
START_MARK, END_MARK = marks("executor-efficiency")


def policy_replay_ms(plan: Plan, service_ms: dict[str, float]) -> float:
    """Makespan of ``plan`` replayed with these durations under the executor's policy."""
    if plan.max_concurrency == 1:
        return dag.replay(plan.deps, service_ms, 1, order=plan.order).makespan
    # The executor ranks ready steps by bottom level over median durations (it
    # cannot know the measured ones in advance); the replay must do the same.
    medians = {sid: plan.median_duration_s(step) for sid, step in plan.steps.items()}
    return dag.replay(
        plan.deps,
        service_ms,
        plan.max_concurrency,
        order=plan.order,
        priority=dag.bottom_levels(plan.deps, medians),
    ).makespan


def measure(
    scenario: Scenario, *, runs: int, time_scale: float, seed: int, out_dir: Path
) -> list[dict[str, Any]]:
    """Run every variant ``runs`` times; one result row per variant."""
    batch = run_batch(
        scenario,
        variants=list(scenario.variants),
        runs=runs,
        out_dir=out_dir,
        seed=seed,
        time_scale=time_scale,
        concurrency=1,  # one run at a time: no run competes with another for the loop
    )
    if batch.interrupted:
        raise KeyboardInterrupt
    spans, _quality = read_spans(batch.spans_path)
    run_rows = runs_table(spans)
    step_rows = steps_table(spans, run_rows)
    eff = efficiency_table(run_rows, step_rows)
    service_by_trace = {
        trace: dict(zip(group.step_id, group.service_ms, strict=True))
        for trace, group in step_rows.groupby("trace_id", sort=False)
    }
    rows = []
    for variant in scenario.variants:
        plan = scenario.plan(variant)
        attempted = run_rows[run_rows.variant == variant]
        per_run = []
        for run in eff[eff.variant == variant].itertuples(index=False) if not eff.empty else []:
            service = service_by_trace[run.trace_id]
            if set(service) != set(plan.steps):
                continue  # a trace that is not this plan's: never compare apples and pears
            replay_ms = policy_replay_ms(plan, service)
            per_run.append(
                {
                    "trace_id": run.trace_id,
                    "makespan_ms": float(run.makespan_ms),
                    "critical_path_ms": float(run.critical_path_ms),
                    "work_ms": float(run.work_ms),
                    "lower_bound_ms": float(run.lower_bound_ms),
                    "replay_ms": float(replay_ms),
                    "bound_ratio": float(run.makespan_ms / run.lower_bound_ms),
                    "replay_ratio": float(run.makespan_ms / replay_ms),
                }
            )
        rows.append(summarize_variant(scenario.name, plan, time_scale, len(attempted), per_run))
    return rows


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "max": None}
    return {"median": float(np.median(values)), "max": float(np.max(values))}


def summarize_variant(
    scenario: str, plan: Plan, time_scale: float, attempted: int, per_run: list[dict[str, Any]]
) -> dict[str, Any]:
    """Median/max of both ratios for one variant, and its verdict against the target."""
    cap = plan.max_concurrency
    capped = cap is not None and cap > 1
    checked = "replay_ratio" if capped else "bound_ratio"
    bound_ratio = _stats([r["bound_ratio"] for r in per_run])
    replay_ratio = _stats([r["replay_ratio"] for r in per_run])
    worst = (replay_ratio if capped else bound_ratio)["max"]
    problems = []
    if len(per_run) < attempted or not per_run:
        problems.append(f"{attempted - len(per_run)} of {attempted} runs did not complete")
    if worst is not None and worst > TARGET:
        problems.append(f"worst {checked.replace('_', ' ')} {worst:.4f} > {TARGET}")
    return {
        "time_scale": time_scale,
        "scenario": scenario,
        "variant": plan.variant,
        "mode": plan.mode,
        "max_concurrency": cap,
        "runs": attempted,
        "completed": len(per_run),
        "makespan_ms": _stats([r["makespan_ms"] for r in per_run]),
        "lower_bound_ms": _stats([r["lower_bound_ms"] for r in per_run]),
        "replay_ms": _stats([r["replay_ms"] for r in per_run]),
        "bound_ratio": bound_ratio,
        "replay_ratio": replay_ratio,
        # How far the policy's own schedule sits above the bound: 1.0 = attainable.
        "replay_over_bound": _stats([r["replay_ms"] / r["lower_bound_ms"] for r in per_run]),
        "checked": checked,
        "passed": not problems,
        "problems": problems,
        "per_run": per_run,
    }


def _cap_label(cap: int | None) -> str:
    return "∞" if cap is None else str(cap)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _verdict(row: dict[str, Any]) -> str:
    on = "replay" if row["checked"] == "replay_ratio" else "bound"
    return f"{'pass' if row['passed'] else 'FAIL'} ({on})"


def print_table(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"Executor efficiency (target: checked ratio ≤ {TARGET} in every run)")
    for name in ("scale", "scenario", "variant", "cap", "runs", "p50 ms"):
        table.add_column(name, justify="left" if name in ("scenario", "variant") else "right")
    for name in ("bound p50", "bound max", "replay p50", "replay max", "rep÷bnd", "target"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            f"{row['time_scale']:g}",
            row["scenario"],
            row["variant"],
            _cap_label(row["max_concurrency"]),
            f"{row['completed']}/{row['runs']}",
            _fmt(row["makespan_ms"]["median"], 1),
            _fmt(row["bound_ratio"]["median"]),
            _fmt(row["bound_ratio"]["max"]),
            _fmt(row["replay_ratio"]["median"]),
            _fmt(row["replay_ratio"]["max"]),
            _fmt(row["replay_over_bound"]["median"], 3),
            f"[{'green' if row['passed'] else 'red'}]{_verdict(row)}",
        )
    console.print(table)
    console.print(
        "bound ratio = makespan ÷ max(L, W/m); replay ratio = makespan ÷ replay of the same "
        "durations under the executor's policy (pure executor overhead).\n"
        "Capped variants (cap 2..N) are checked on the replay ratio: max(L, W/m) is not "
        "attainable when equal branches do not pack into m slots; replay÷bound shows by how much."
    )


def docs_section(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The "Executor efficiency" section of docs/benchmarks.md, from measured rows."""
    m = meta["machine"]
    passed = all(r["passed"] for r in rows)
    lines = [
        START_MARK,
        SECTION_TITLE,
        "",
        'Does the executor reach the lower bound of DESIGN.md ("Lower bound for a run")? '
        "Each bundled scenario's variants run in process with the simulated provider, one run "
        "at a time; the spans are read back from `spans.jsonl` and every completed run is "
        "compared with two references built from its own measured step service times:",
        "",
        "- **bound ratio** = makespan ÷ max(L, W/m), with L the critical path of the declared "
        "DAG, W the sum of service times and m the cap (1 sequential, ∞ parallel, N for "
        "`max_concurrency`). Executor efficiency in DESIGN.md is its inverse.",
        "- **replay ratio** = makespan ÷ `dag.replay` of the same durations under the "
        "executor's own policy (topological order; under a cap, the ready step with the "
        "longest remaining path over median durations first). It isolates executor overhead: "
        "span bookkeeping, task start-up, event-loop wake-ups.",
        "- **replay÷bound** = how far the policy's own schedule sits above the bound "
        "(1.000 = the bound is reached by the schedule itself).",
        "",
        f"Target: the checked ratio is ≤ {TARGET} in **every** run (the max column). "
        "For sequential and uncapped parallel variants the two ratios coincide and the bound "
        "ratio is checked. **For capped variants the bound ratio is reported but not checked**: "
        "max(L, W/m) is not attainable by any schedule when equal-length branches do not pack "
        "into m slots — research_assistant's three ~6.7 s research branches on 2 slots leave "
        "one branch to run after another whatever the order, and map_reduce_summarizer's "
        "eight equal chunks on 4 slots take two waves where L counts one — so the replay "
        "ratio is checked there.",
        "",
        f"Makespans are in milliseconds at time scale {_scales(rows)} (every simulated sleep "
        "is multiplied by it). A smaller scale is the harsher test: the executor's fixed "
        "per-step overhead is a larger share of a shorter makespan.",
        "",
        "| scale | scenario | variant | cap | runs | makespan p50 ms | bound ratio p50 "
        "| bound ratio max | replay ratio p50 | replay ratio max | replay÷bound p50 | target |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['time_scale']:g}",
                    r["scenario"],
                    r["variant"],
                    _cap_label(r["max_concurrency"]),
                    f"{r['completed']}/{r['runs']}",
                    _fmt(r["makespan_ms"]["median"], 1),
                    _fmt(r["bound_ratio"]["median"]),
                    _fmt(r["bound_ratio"]["max"]),
                    _fmt(r["replay_ratio"]["median"]),
                    _fmt(r["replay_ratio"]["max"]),
                    _fmt(r["replay_over_bound"]["median"], 3),
                    _verdict(r) if r["passed"] else f"**{_verdict(r)}**",
                ]
            )
            + " |"
        )
    failed = [r for r in rows if not r["passed"]]
    lines += [
        "",
        f"**Result: {'PASS' if passed else 'FAIL'}** — "
        + (
            f"all {len(rows)} variants within {TARGET}."
            if passed
            else "; ".join(
                f"{r['scenario']}/{r['variant']}: {', '.join(r['problems'])}" for r in failed
            )
        ),
        "",
        f"- Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, {m['platform']}, "
        f"Python {m['python']}",
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['date']}; the benchmark took {meta['elapsed_s']:.0f} s",
        END_MARK,
        "",
    ]
    return "\n".join(lines)


def _scales(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s:g}" for s in dict.fromkeys(r["time_scale"] for r in rows))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Check that the executor reaches the lower bound max(L, W/m) of DESIGN.md.",
    )
    parser.add_argument("--runs", type=int, default=20, help="runs per variant (default: 20)")
    parser.add_argument(
        "--time-scale",
        type=float,
        nargs="+",
        default=[0.05],
        metavar="SCALE",
        help="factor on every simulated sleep; several values run the whole set once per "
        "value (default: 0.05, which keeps the default run under 3 minutes on 2 cores)",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        metavar="SCENARIO",
        help="scenario names or files (default: every bundled scenario)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="keep each batch's spans.jsonl and summary.json under DIR "
        "(default: a temporary directory, removed at the end)",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"rewrite the 'Executor efficiency' section of {DOCS_PATH.relative_to(REPO)}",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if any(s <= 0 for s in args.time_scale):
        parser.error("--time-scale must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Logs and CI are not terminals: give the table room rather than rich's 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        scenarios = [load_scenario(name) for name in (args.scenarios or bundled_scenarios())]
    except ScenarioError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    command = shlex.join(["python", "bench/executor_efficiency.py", *sys.argv[1:]])
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="parabench-bench-") as tmp:
        root = args.out or Path(tmp)
        for scale in args.time_scale:
            for scenario in scenarios:
                t0 = time.perf_counter()
                rows += measure(
                    scenario,
                    runs=args.runs,
                    time_scale=scale,
                    seed=args.seed,
                    out_dir=root / f"scale-{scale:g}" / scenario.name,
                )
                console.print(
                    f"{scenario.name} at time scale {scale:g}: "
                    f"{args.runs} runs × {len(scenario.variants)} variants "
                    f"in {time.perf_counter() - t0:.1f} s"
                )
    elapsed = time.perf_counter() - started
    meta = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": elapsed,
        "machine": machine_facts(),
        "target": TARGET,
        "runs": args.runs,
        "time_scales": args.time_scale,
        "seed": args.seed,
    }
    print_table(console, rows)
    passed = all(r["passed"] for r in rows)
    console.print(
        f"{'[green]PASS' if passed else '[red]FAIL'}[/] in {elapsed:.0f} s "
        f"({meta['machine']['nproc']} CPUs, {meta['machine']['cpu']})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"meta": meta, "passed": passed, "results": rows}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        console.print(f"results: {args.json}")
    if args.write_docs:
        rewrite_section(DOCS_PATH, docs_section(rows, meta), START_MARK, END_MARK)
        console.print(f"rewrote the executor efficiency section of {DOCS_PATH}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
