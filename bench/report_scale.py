"""Report at scale: ``write_report`` on 10,000 runs of spans and load samples, against 20 s.

The script writes a run directory the way ``parabench demo`` leaves one:

* ``spans.jsonl`` — synthetic harness traces from ``analysis_scale.write_traces``
  (the 10-step research agent with two forks, half ``sequential``, half
  ``parallel``; 11 spans per run, every attribute the executor writes);
* ``samples.jsonl`` — one load sample per run (schema
  ``parabench.load.sample/1``) joined to its trace by trace id: client e2e =
  the run span's + 1–3 ms of transport, card times from the run's card events,
  a concurrency level cycling through 1, 2, 4, 8, 16 users, and 1% of the
  runs at 16 users refused (503).

Generation is not measured. Then, in a fresh process (so imports count and
the peak RSS is the report's own), it times ``harness.report.write_report``
end to end with ``time.perf_counter``: importing the report package, reading
and analysing the spans, reading the samples, the charts, and writing
``report.html``, ``report.md`` and ``summary.json``. The stages come from the
progress callback.

Target: import + ``write_report`` ≤ 20 s for 10,000 runs. Also reported: the
size of report.html (plotly.js alone is about 4.8 MB) and of the other files.

Usage::

    python bench/report_scale.py                 # 10,000 runs; about 20 s on 2 cores
    python bench/report_scale.py --write-docs    # also rewrite docs/benchmarks.md
    python bench/report_scale.py --runs 1000 --keep --json out.json

Exit status: 0 when the target is met, 1 when it is not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _child import measure_in_child
from _docs import DOCS_PATH, marks, rewrite_section
from _machine import machine_facts
from analysis_scale import SCENARIO, STEPS, VARIANTS, peak_rss_bytes, simulate, write_traces
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

TARGET_SECONDS = 20.0
LEVELS = (1, 2, 4, 8, 16)
START_MARK, END_MARK = marks("report-scale")


def write_samples(path: Path, runs: int, seed: int) -> int:
    """One client sample per run of ``write_traces(…, runs, seed)``; returns how many."""
    from harness.measures import speed_index

    sim = simulate(runs, seed)  # the same draws write_traces made: same seed, same runs
    rng = np.random.default_rng(seed + 1)
    transport_ms = rng.uniform(1.0, 3.0, runs)
    cards = [j for j, s in enumerate(STEPS) if s["card"]]
    lines = []
    for i in range(runs):
        level = LEVELS[i % len(LEVELS)]
        refused = level == LEVELS[-1] and rng.random() < 0.05  # 1% of all runs
        start = sim["run_start"][i]
        card_ms = sorted(
            float((sim["card_at"][i, j] - start) / 1e6 + transport_ms[i] / 2) for j in cards
        )
        e2e_ms = float((sim["run_end"][i] - start) / 1e6 + transport_ms[i])
        si = speed_index([t / 1000 for t in card_ms])
        sample = {
            "schema": "parabench.load.sample/1",
            "send_time_unix_s": start / 1e9,
            "scenario": SCENARIO,
            "variant": VARIANTS[int(sim["parallel"][i])],
            "outcome": "rejected" if refused else "completed",
            "http_status": 503 if refused else 200,
            "trace_id": sim["trace_ids"][i],
            "concurrency": level,
            "worker_users": level,
            "error": "503 over capacity (Retry-After: 1 s)" if refused else None,
            "e2e_ms": None if refused else round(e2e_ms, 3),
            "ttfc_ms": None if refused else round(card_ms[0], 3),
            "speed_index_ms": None if refused or si is None else round(si * 1000, 3),
            "cards": 0 if refused else len(card_ms),
            "cards_expected": None if refused else len(card_ms),
            "card_times_ms": [] if refused else [round(t, 3) for t in card_ms],
            "server_e2e_ms": None if refused else round(e2e_ms - transport_ms[i], 3),
            "server_ttfc_ms": None,
            "cost_usd": None if refused else float(sim["cost"][i].sum()),
            "run_id": None if refused else sim["run_ids"][i],
            "worker": "local",
        }
        lines.append(json.dumps(sample, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return runs


# --- measurement (in a child process) -------------------------------------------------------


def measure(run_dir: Path, result_path: Path) -> None:
    """Time the import and ``write_report``; write the figures as JSON."""
    marks_at: list[tuple[str, float]] = []

    def progress(stage: str) -> None:
        # "reading /tmp/…/spans.jsonl" → "reading spans.jsonl"
        marks_at.append((stage.replace(str(run_dir) + "/", ""), time.perf_counter()))

    t0 = time.perf_counter()
    from harness.report import write_report

    imported = time.perf_counter()
    result = write_report(run_dir, progress=progress)
    done = time.perf_counter()
    # Each stage lasts until the next one starts.
    bounds = [("import harness.report", t0), *marks_at, ("", done)]
    stages = [
        {"stage": name, "seconds": end - start}
        for (name, start), (_, end) in itertools.pairwise(bounds)
    ]
    page = result.html_path.read_text(encoding="utf-8")
    figures = {
        "import_s": imported - t0,
        "write_report_s": done - imported,
        "total_s": done - t0,
        "stages": stages,
        "peak_rss": peak_rss_bytes(),
        "html_bytes": result.html_path.stat().st_size,
        "markdown_lines": len(result.markdown_path.read_text(encoding="utf-8").splitlines()),
        "summary_bytes": result.summary_path.stat().st_size,
        "charts": page.count('class="figure"'),
        "headline": result.headline,
    }
    result_path.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")


# --- output ---------------------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def print_report(console: Console, report: dict[str, Any]) -> None:
    measured = report["measured"]
    table = Table(title="write_report, fresh process")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for s in measured["stages"]:
        table.add_row(s["stage"], f"{s['seconds']:.2f}")
    table.add_row("[bold]total (import + write_report)", f"[bold]{measured['total_s']:.2f}")
    console.print(table)
    console.print(
        f"report.html {_mb(measured['html_bytes'])} ({measured['charts']} charts), "
        f"report.md {measured['markdown_lines']} lines, summary.json "
        f"{measured['summary_bytes'] / 1e3:.0f} kB, peak RSS {measured['peak_rss'] / 1e9:.2f} GB"
    )


def docs_section(report: dict[str, Any]) -> str:
    """The "Report at scale" section of docs/benchmarks.md."""
    meta, counts, measured = report["meta"], report["counts"], report["measured"]
    m = meta["machine"]
    passed = report["passed"]
    lines = [
        START_MARK,
        "## Report at scale",
        "",
        f"A run directory like the one `parabench demo` leaves: `spans.jsonl` with "
        f"{counts['runs']:,} synthetic harness runs ({counts['spans']:,} spans, "
        f"{counts['bytes'] / 1e6:.0f} MB; the generator of `analysis_scale.py`: a 10-step agent "
        "with two forks, half `sequential`, half `parallel`) and `samples.jsonl` with one load "
        f"sample per run ({counts['samples']:,}), joined by trace id, at 1, 2, 4, 8 and 16 "
        "users, 1% refused. In a fresh process, `harness.report.write_report` reads and "
        "analyses both and writes `report.html`, `report.md` and `summary.json`; "
        "`time.perf_counter` times the import of `harness.report` and the call.",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {s['stage']} | {s['seconds']:.2f} |" for s in measured["stages"]]
    lines += [
        f"| **total (import + `write_report`)** | **{measured['total_s']:.2f}** |",
        "",
        "| figure | value | target | result |",
        "|---|---:|---:|---|",
        f"| report of {counts['runs']:,} runs, end to end | {measured['total_s']:.1f} s | "
        f"≤ {TARGET_SECONDS:.0f} s | {'pass' if passed else '**FAIL**'} |",
        f"| report.html | {_mb(measured['html_bytes'])}, {measured['charts']} charts | – | – |",
        f"| report.md | {measured['markdown_lines']} lines | ≤ 60 | – |",
        f"| summary.json | {measured['summary_bytes'] / 1e3:.0f} kB | – | – |",
        f"| peak RSS of the process | {measured['peak_rss'] / 1e9:.2f} GB | – | – |",
        "",
        "report.html embeds plotly.js once (about 4.8 MB of it); the rest stays small at any "
        "size because distributions are drawn from 201 quantiles, cards over time on a "
        "200-point grid, and each waterfall shows one run.",
        "",
        f"**Result: {'PASS' if passed else 'FAIL'}**",
        "",
        f"- Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, {m['memory_gb']} GiB RAM, "
        f"{m['platform']}, Python {m['python']}; 1-minute load average "
        f"{meta['load_average']:.1f} when it finished",
        f"- Command: `{meta['command']}` (seed {meta['seed']})",
        f"- Date: {meta['date']}; generating the run directory took {meta['generate_s']:.0f} s "
        "(not measured)",
        END_MARK,
        "",
    ]
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time parabench report on a run directory of 10,000 synthetic runs."
    )
    parser.add_argument("--runs", type=int, default=10_000, help="runs to generate (10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory and report")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite its section of docs/benchmarks.md"
    )
    parser.add_argument("--measure", nargs=2, type=Path, help=argparse.SUPPRESS)  # the child
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
    command = shlex.join(["python", "bench/report_scale.py", *(argv or sys.argv[1:])])
    tmp = Path(tempfile.mkdtemp(prefix="parabench-report-scale-"))
    run_dir, result_path = tmp / "run", tmp / "measured.json"
    run_dir.mkdir()
    try:
        with Progress(console=console, transient=True) as progress:
            t0 = time.perf_counter()
            counts = write_traces(run_dir / "spans.jsonl", args.runs, args.seed, progress)
            counts["samples"] = write_samples(run_dir / "samples.jsonl", args.runs, args.seed)
            generate_s = time.perf_counter() - t0
        console.print(f"generated {counts['runs']:,} runs in {generate_s:.1f} s; measuring:")
        measured = measure_in_child(__file__, run_dir, result_path, console)
        if measured is None:
            return 1
    finally:
        if args.keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "meta": {
            "command": command,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "generate_s": generate_s,
            "load_average": os.getloadavg()[0],  # other jobs on the machine slow it down
            "machine": machine_facts(),
            "seed": args.seed,
        },
        "counts": counts,
        "measured": measured,
        "passed": measured["total_s"] <= TARGET_SECONDS,
    }
    print_report(console, report)
    console.print(f"{'[green]PASS' if report['passed'] else '[red]FAIL'}[/] (target ≤ 20 s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    if args.write_docs:
        rewrite_section(DOCS_PATH, docs_section(report), START_MARK, END_MARK)
        console.print(f"rewrote the report-scale section of {DOCS_PATH}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
