"""Run every benchmark in bench/ and rewrite docs/benchmarks.md: ``make bench``.

Each benchmark runs as ``python bench/NAME.py --write-docs`` in a process of
its own, one after another (they measure time: two at once would disturb each
other), with its output streamed as it comes. A benchmark that fails does not
stop the others; at the end a table gives each one's exit status and wall
time, and the exit status is 1 when any failed (2 on a usage error, 130 on
Ctrl-C, which stops the benchmark running and skips the rest).

The soak (``soak.py``, 10 minutes of load) runs only with ``--with-soak`` or
``--only soak``: ``make bench`` stays under about 20 minutes, and ``make soak``
runs the soak alone. ``simulator_vs_guidellm.py`` runs when it is there and is
reported as skipped when not.

After a full run (no ``--only`` / ``--skip``, docs written) the "Last full run"
section at the top of docs/benchmarks.md is rewritten: the machine, the date,
the command and each benchmark's exit status and wall time.

Usage::

    python bench/run_all.py                      # every benchmark but the soak
    python bench/run_all.py --with-soak          # and the soak
    python bench/run_all.py --only report_scale analysis_scale
    python bench/run_all.py --skip service_capacity --no-docs
    python bench/run_all.py --list
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from _docs import DOCS_PATH, REPO, SECTIONS, marks, rewrite_section
from _machine import describe, machine_facts
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
LAST_RUN_MARKS = marks("last-full-run")
#: Rough wall time of each benchmark on 2 cores, for --list and the plan.
MINUTES = {
    "executor_efficiency": 2.5,
    "simulator_throughput": 1.5,
    "service_capacity": 7.0,
    "analysis_scale": 1.5,
    "report_scale": 0.3,
    "simulator_vs_guidellm": 4.0,  # its first run also installs GuideLLM (about 6 GB)
    "soak": 10.5,
}
#: Run only when asked for: --with-soak, or by name with --only.
ON_REQUEST = {"soak"}
NAMES = [script for script, _, _, _ in SECTIONS]


@dataclass
class Outcome:
    """What became of one benchmark in this run."""

    name: str
    status: str  # "passed", "failed", "skipped", "interrupted"
    returncode: int | None = None
    wall_s: float | None = None
    note: str = ""


def selected(args: argparse.Namespace) -> list[str]:
    """The benchmarks this run is about, in order (present or not)."""
    if args.only:
        return [n for n in NAMES if n in args.only]
    names = [n for n in NAMES if n not in ON_REQUEST or (n == "soak" and args.with_soak)]
    return [n for n in names if n not in (args.skip or [])]


def run_one(name: str, index: int, total: int, write_docs: bool, console: Console) -> Outcome:
    """Run ``bench/NAME.py`` in its own process, its output straight to this terminal."""
    script = BENCH / f"{name}.py"
    if not script.exists():
        console.print(f"[yellow]\\[{index}/{total}] {name}: skipped, {script.name} not found[/]")
        return Outcome(name, "skipped", note=f"bench/{script.name} not found")
    command = [sys.executable, str(script), *(["--write-docs"] if write_docs else [])]
    console.rule(
        f"[bold][{index}/{total}] {name}[/] — about {MINUTES.get(name, 1):g} min · "
        + shlex.join(["python", f"bench/{script.name}", *command[2:]])
    )
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO)
    try:
        returncode = proc.wait()
    except KeyboardInterrupt:
        # The benchmark got the same Ctrl-C (same process group): let it clean up.
        try:
            proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
        return Outcome(name, "interrupted", proc.returncode, time.monotonic() - started)
    wall_s = time.monotonic() - started
    status = "passed" if returncode == 0 else "failed"
    colour = "green" if returncode == 0 else "red"
    console.print(f"[{colour}]{name}: exit {returncode} after {_duration(wall_s)}[/]")
    return Outcome(name, status, returncode, wall_s)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def summary_table(outcomes: list[Outcome]) -> Table:
    table = Table(title="benchmarks")
    for col in ("benchmark", "exit", "wall time", "result"):
        table.add_column(col, justify="right" if col in ("exit", "wall time") else "left")
    colours = {"passed": "green", "failed": "red", "skipped": "yellow", "interrupted": "yellow"}
    for o in outcomes:
        result = f"[{colours[o.status]}]{o.status}[/]" + (f" ({o.note})" if o.note else "")
        code = "–" if o.returncode is None else str(o.returncode)
        table.add_row(o.name, code, _duration(o.wall_s), result)
    total = sum(o.wall_s or 0 for o in outcomes)
    table.add_section()
    table.add_row("total", "", _duration(total), "")
    return table


def last_run_section(outcomes: list[Outcome], command: str, date: str, with_soak: bool) -> str:
    """The "Last full run" section: machine, date, command, each benchmark's status and time."""
    start, end = LAST_RUN_MARKS
    lines = [
        start,
        "## Last full run",
        "",
        f"- Machine: {describe(machine_facts())}",
        f"- Command: `{command}`",
        f"- Date: {date} (the end); {_duration(sum(o.wall_s or 0 for o in outcomes))} in all",
        "",
        "| benchmark | exit status | wall time | result |",
        "|---|---:|---:|---|",
    ]
    for o in outcomes:
        code = "–" if o.returncode is None else str(o.returncode)
        note = f" ({o.note})" if o.note else ""
        lines.append(f"| `{o.name}.py` | {code} | {_duration(o.wall_s)} | {o.status}{note} |")
    if not with_soak:
        lines += [
            "",
            "The soak is not part of a full run unless asked for (`--with-soak`); its section "
            "gives the date of its own last run (`make soak`).",
        ]
    lines += [end, ""]
    return "\n".join(lines)


def print_list(console: Console) -> None:
    table = Table(title="benchmarks, in the order they run")
    for col in ("name", "by default", "about", "docs/benchmarks.md section"):
        table.add_column(col)
    for script, _, heading, _ in SECTIONS:
        missing = "" if (BENCH / f"{script}.py").exists() else " [yellow](missing: skipped)[/]"
        default = "no (--with-soak)" if script in ON_REQUEST else "yes"
        table.add_row(script + missing, default, f"{MINUTES.get(script, 1):g} min", heading)
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", metavar="NAME", help="run all but these")
    parser.add_argument("--with-soak", action="store_true", help="also run the 10-minute soak")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not pass --write-docs; leave the docs alone"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    unknown = [n for n in (args.only or []) + (args.skip or []) if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    if args.only and args.skip:
        parser.error("give --only or --skip, not both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if args.list:
        print_list(console)
        return 0
    names = selected(args)
    if not names:
        console.print("[red]nothing to run[/]")
        return 2
    command = shlex.join(["python", "bench/run_all.py", *(argv or sys.argv[1:])])
    planned = sum(MINUTES.get(n, 1) for n in names if (BENCH / f"{n}.py").exists())
    console.print(
        f"[bold]{len(names)} benchmark(s)[/]: {', '.join(names)} — about {planned:.0f} min"
        + ("" if args.no_docs else "; each rewrites its section of docs/benchmarks.md")
    )
    outcomes: list[Outcome] = []
    for i, name in enumerate(names, 1):
        outcome = run_one(name, i, len(names), not args.no_docs, console)
        outcomes.append(outcome)
        if outcome.status == "interrupted":
            outcomes += [Outcome(n, "skipped", note="interrupted") for n in names[i:]]
            break
    console.print(summary_table(outcomes))
    interrupted = any(o.status == "interrupted" for o in outcomes)
    full = not (args.only or args.skip or args.no_docs or interrupted)
    if full:
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        section = last_run_section(outcomes, command, date, args.with_soak)
        rewrite_section(DOCS_PATH, section, *LAST_RUN_MARKS)
        console.print(f"rewrote the last full run in {DOCS_PATH}")
    if interrupted:
        return 130
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
