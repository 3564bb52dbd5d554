"""Service capacity: how many concurrent runs the agent service carries at its lower bound.

The agent service (``harness.service``, in its own process, with the
in-process simulated provider) runs the ``parallel`` variant of
research_assistant at a time scale; Locust (``harness.load.run_load``, its own
process) sweeps the number of concurrent users — each user is one run in
flight, one after another — through levels such as 100, 250, 500, 1000, 1500.

Per level, from the raw client-side samples (never Locust's rounded stats):

* **median e2e ÷ lower bound** — the bound is the scenario's theoretical
  makespan × time scale (``Plan.theoretical_makespan_s()``). The benchmark
  serves a copy of research_assistant with the latency jitter turned off
  (``jitter_sigma: 0``, fixed tool latency), so every run's own lower bound is
  exactly that figure and the ratio measures only what the service, the
  network stack and the load generator add. ``--jitter`` keeps the bundled
  jitter (the ratio then starts a few percent above 1 at any load).
* **runs in flight** — the time-average of runs actually in flight in the
  window, from the samples' [send, send + e2e] intervals: the concurrency
  the service really carried.
* **CPU** of each process (psutil; 100 % = one core): the service and each
  Locust process. Both are single-threaded event loops, so the first to
  reach ~90 % of a core is the one that saturates.

A level passes when every run completed (no 503, error or failure) and the
median is within 5 % of the bound. Capacity = the largest level that passes
with every level below it passing too. Target: ≥ 1,000 concurrent runs.

Each level's new users are started over one makespan (the spawn rate is the
largest step ÷ the bound): with the jitter off, runs started together would
stay in lockstep forever and hit the service in synchronised bursts, which
real traffic does not. Each level is held ``--hold`` seconds; only runs sent
after a warm-up (that ramp plus one makespan) and finished before the level
ends are measured.

Usage::

    python bench/service_capacity.py                       # defaults below; about 7 minutes
    python bench/service_capacity.py --write-docs          # also rewrite docs/benchmarks.md
    python bench/service_capacity.py --levels 100 500 --hold 30 --time-scale 0.5 --json out.json

Loopback only. Exit status 0 when the target is met, 1 when not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml
from _docs import DOCS_PATH, footer, marks, rewrite_section
from _machine import describe, machine_facts
from rich.console import Console
from rich.table import Table

from harness.errors import ParabenchError
from harness.load import LoadOptions, run_load
from harness.load.samples import read_samples
from harness.scenario import load_scenario, resolve_scenario_path

TOLERANCE = 0.05
TARGET_RUNS = 1000
SATURATED_PCT = 90.0
START_MARK, END_MARK = marks("service-capacity")

# The service in its own process, as `parabench serve` runs it (this script must not
# depend on the CLI wiring): prints its URL, serves until SIGINT.
# --service-gc changes the service's garbage collector, a diagnostic (default: as shipped,
# i.e. ServiceConfig.gc_threshold, which run_service applies).
_SERVICE_MAIN = """
import gc, sys
from harness.service.config import ServiceConfig
from harness.service.server import run_service
config = ServiceConfig.model_validate_json(sys.argv[1])
if sys.argv[2] != "on":
    config = config.model_copy(update={"gc_threshold": None})
if sys.argv[2] == "off":
    gc.disable()
elif sys.argv[2] == "freeze":
    gc.collect()
    gc.freeze()
run_service(config)
"""


def steady_scenario(out_dir: Path, jitter: bool) -> Path:
    """research_assistant, with jitter off unless asked: each run's makespan is the theory."""
    source = resolve_scenario_path("research_assistant")
    if jitter:
        return source
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    models = {data.get("defaults", {}).get("model", "gpt-4o-mini")}
    for step in data["steps"]:
        if step.get("model"):
            models.add(step["model"])
        if isinstance(step.get("latency_ms"), dict):
            step["latency_ms"] = step["latency_ms"]["median"]
    data.setdefault("models", {})
    for model in models:
        data["models"].setdefault(model, {}).setdefault("latency", {})["jitter_sigma"] = 0.0
    path = out_dir / "research_assistant_steady.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def start_service(
    scenario: Path,
    time_scale: float,
    max_in_flight: int,
    gc_mode: str = "on",
    **settings: Any,
) -> tuple[subprocess.Popen[str], str]:
    """The service in its own process; ``settings`` are more ``ServiceConfig`` fields."""
    config = {
        "port": 0,
        "scenarios": [str(scenario)],
        "time_scale": time_scale,
        "max_in_flight": max_in_flight,
        **settings,
    }
    command = [sys.executable, "-c", _SERVICE_MAIN, json.dumps(config), gc_mode]
    return start_listening(command, "the service")


def start_listening(command: list[str], what: str) -> tuple[subprocess.Popen[str], str]:
    """Start a server that prints ``... listening on URL``; return it and that URL."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
            # Keep draining its output so a chatty service never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, url
    proc.kill()
    raise RuntimeError(f"{what} did not start; run it by hand to see why")


def stop_service(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user would; killed if it does not finish within 15 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class CpuSampler(threading.Thread):
    """Samples the CPU of the service and of every Locust process once a second."""

    def __init__(self, service_pid: int, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.service_pid = service_pid
        self.interval_s = interval_s
        self.rows: list[tuple[float, str, float]] = []
        self._procs: dict[int, psutil.Process] = {}
        self._halt = threading.Event()

    def _label(self, proc: psutil.Process) -> str:
        if proc.pid == self.service_pid:
            return "service"
        parent = proc.parent()
        if parent is not None and parent.pid in self._procs and parent.pid != self.service_pid:
            return f"locust worker {proc.pid}"
        return "locust"

    def run(self) -> None:
        me = psutil.Process()
        cores = psutil.cpu_count() or 1
        psutil.cpu_percent(None)
        while not self._halt.wait(self.interval_s):
            now = time.time()
            # Everything the machine did, in the same units (100 = one core).
            self.rows.append((now, "machine", psutil.cpu_percent(None) * cores))
            for child in me.children(recursive=True):
                if child.pid not in self._procs:
                    self._procs[child.pid] = child
                    child.cpu_percent(None)  # the first reading is always 0: prime it
                    continue
            for pid, proc in list(self._procs.items()):
                try:
                    self.rows.append((now, self._label(proc), proc.cpu_percent(None)))
                except psutil.Error:
                    del self._procs[pid]

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def mean_by_process(self, start: float, end: float) -> dict[str, float]:
        by_name: dict[str, list[float]] = {}
        for at, name, pct in self.rows:
            if start <= at <= end:
                by_name.setdefault(name, []).append(pct)
        return {name: float(np.mean(v)) for name, v in sorted(by_name.items())}


def wait_for_quiet(limit_s: float, threshold_pct: float = 15.0) -> float:
    """Wait (up to ``limit_s``) until the machine is idle for 2 s; return its busy % then."""
    deadline = time.monotonic() + limit_s
    cores = psutil.cpu_count() or 1
    while True:
        busy = psutil.cpu_percent(interval=2.0) * cores
        if busy <= threshold_pct or time.monotonic() >= deadline:
            return busy


def in_flight(samples: list[dict[str, Any]], start: float, end: float) -> float:
    """Time-average of runs in flight in [start, end], from [send, send + e2e] intervals."""
    busy = 0.0
    for s in samples:
        if s.get("e2e_ms") is None:
            continue
        a = max(s["send_time_unix_s"], start)
        b = min(s["send_time_unix_s"] + s["e2e_ms"] / 1000, end)
        busy += max(b - a, 0.0)
    return busy / (end - start) if end > start else 0.0


def analyse_level(
    level: int,
    samples: list[dict[str, Any]],
    hold_s: float,
    warmup_s: float,
    bound_ms: float,
    cpu: CpuSampler,
) -> dict[str, Any]:
    labelled = [s for s in samples if s.get("concurrency") == level]
    start = min(s["send_time_unix_s"] for s in labelled)
    end = start + hold_s
    window = [
        s
        for s in labelled
        if s["send_time_unix_s"] >= start + warmup_s
        and s.get("e2e_ms") is not None
        and s["send_time_unix_s"] + s["e2e_ms"] / 1000 <= end
    ]
    bad = sum(1 for s in labelled if s["outcome"] != "completed")
    e2e = np.asarray([s["e2e_ms"] for s in window], dtype=float)
    server = np.asarray([s.get("server_e2e_ms") or np.nan for s in window], dtype=float)
    ttfc = np.asarray([s["ttfc_ms"] for s in window if s.get("ttfc_ms") is not None], dtype=float)
    p50 = float(np.median(e2e)) if len(e2e) else float("nan")
    cpu_means = cpu.mean_by_process(start + warmup_s, end)
    ours = sum(v for k, v in cpu_means.items() if k != "machine")
    cpu_means["other"] = max(cpu_means.pop("machine", ours) - ours, 0.0)
    # Throughput: runs of any level that ended inside the measured part of this level.
    ended = [
        s
        for s in samples
        if s.get("e2e_ms") is not None
        and start + warmup_s <= s["send_time_unix_s"] + s["e2e_ms"] / 1000 <= end
    ]
    ratio = p50 / bound_ms
    return {
        "users": level,
        "runs_measured": len(e2e),
        "runs_not_completed": bad,
        "outcomes": {o: sum(1 for s in labelled if s["outcome"] == o) for o in _outcomes(labelled)},
        "in_flight_mean": round(in_flight(samples, start + warmup_s, end), 1),
        "runs_per_s": round(len(ended) / max(end - start - warmup_s, 1e-9), 1),
        "e2e_p50_ms": round(p50, 2),
        "e2e_p95_ms": round(float(np.percentile(e2e, 95)), 2) if len(e2e) else None,
        "e2e_max_ms": round(float(e2e.max()), 2) if len(e2e) else None,
        "ttfc_p50_ms": round(float(np.median(ttfc)), 2) if len(ttfc) else None,
        # Where the time above the bound goes: inside the service's run span, or between
        # the request and the span (HTTP, admission, SSE transport, the Locust process).
        "service_over_bound_p50_ms": _median(server - bound_ms),
        "client_over_service_p50_ms": _median(e2e - server),
        "ratio_p50": round(ratio, 4),
        "passes": bool(len(e2e)) and bad == 0 and ratio <= 1 + TOLERANCE,
        "cpu_pct": {k: round(v, 1) for k, v in cpu_means.items()},
    }


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return round(float(np.median(values)), 1) if len(values) else None


def _outcomes(samples: list[dict[str, Any]]) -> list[str]:
    return sorted({s["outcome"] for s in samples})


def capacity(rows: list[dict[str, Any]]) -> int:
    best = 0
    for row in rows:
        if not row["passes"]:
            break
        best = row["users"]
    return best


def first_saturated(rows: list[dict[str, Any]]) -> tuple[str, int] | None:
    """The first process, going up the levels, to use ≥ 90 % of a core, and at which level."""
    for row in rows:
        hot = {k: v for k, v in row["cpu_pct"].items() if k != "other" and v >= SATURATED_PCT}
        if hot:
            name = max(hot, key=lambda k: hot[k])
            return name, row["users"]
    return None


def bottleneck(rows: list[dict[str, Any]]) -> str | None:
    """Where the added latency sits at the first failing level: in the service, or outside it."""
    failing = next((r for r in rows if not r["passes"]), None)
    if failing is None:
        return None
    inside = failing["service_over_bound_p50_ms"] or 0.0
    outside = failing["client_over_service_p50_ms"] or 0.0
    if inside >= outside:
        return (
            f"the service: at {failing['users']} users its own run spans are "
            f"{inside:.0f} ms over the bound (median), the client adds {outside:.0f} ms"
        )
    return (
        f"the client side (HTTP, SSE transport, Locust): at {failing['users']} users it adds "
        f"{outside:.0f} ms (median), the service's run spans {inside:.0f} ms"
    )


def print_table(console: Console, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    table = Table(title=f"service capacity — bound {meta['bound_ms']:.1f} ms, tolerance 5 %")
    for col in ("users", "in flight", "runs/s", "runs", "not ok", "p50 ms", "÷bound",
                "p95 ms", "TTFC ms", "svc+ms", "client+ms", "CPU svc", "CPU locust",
                "CPU other", "pass"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["users"]),
            f"{r['in_flight_mean']:.0f}",
            f"{r['runs_per_s']:.1f}",
            str(r["runs_measured"]),
            str(r["runs_not_completed"]),
            f"{r['e2e_p50_ms']:.1f}",
            f"{r['ratio_p50']:.3f}",
            _fmt(r["e2e_p95_ms"]),
            _fmt(r["ttfc_p50_ms"]),
            _fmt(r["service_over_bound_p50_ms"]),
            _fmt(r["client_over_service_p50_ms"]),
            f"{r['cpu_pct'].get('service', 0):.0f}",
            _locust_cpu(r),
            f"{r['cpu_pct'].get('other', 0):.0f}",
            "yes" if r["passes"] else "NO",
        )
    console.print(table)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _locust_cpu(row: dict[str, Any]) -> str:
    return " + ".join(f"{v:.0f}" for k, v in row["cpu_pct"].items() if k.startswith("locust"))


def docs_section(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    cap, sat = meta["capacity"], meta["saturated"]
    lines = [
        START_MARK,
        "## Service capacity",
        "",
        "How many concurrent runs does the agent service carry while staying at its lower "
        "bound? The service (`harness.service`, own process, in-process simulated provider, "
        "no span file) runs research_assistant's `parallel` variant; Locust (`parabench load` "
        "machinery, own process) sweeps the number of users, each user one run in flight after "
        "another. Figures come from the raw client-side samples (`samples.jsonl`).",
        "",
        f"- **Lower bound** = theoretical makespan × time scale = "
        f"{meta['makespan_s']:.3f} s × {meta['time_scale']:g} = {meta['bound_ms']:.1f} ms. "
        + (
            "The service runs a copy of research_assistant with latency jitter off "
            "(`jitter_sigma: 0`, fixed tool latency), so every run's own bound is exactly this "
            "and the ratio measures only what the service, the loopback network and the load "
            "generator add."
            if not meta["jitter"]
            else "Jitter is on (`--jitter`): the ratio starts a few percent above 1 at any load."
        ),
        f"- Service garbage collector: {meta['service_gc']}"
        + (
            " (as shipped)."
            if meta["service_gc"] == "on"
            else " (a diagnostic run, not as shipped)."
        )
        + " Admission limit (`max_in_flight`) set well above the top level, so no run is refused.",
        "- **in flight** = time-average of runs in flight in the measured window (from each "
        "sample's send and e2e). **÷ bound** = median client e2e ÷ bound. **CPU** per process, "
        "100 = one core (both are single-threaded event loops); *other* = the rest of the "
        "machine (this script, and anything else running). **service + ms** = median of the "
        "service's own e2e (its run span, from the final event) minus the bound: time added "
        "inside the service. **client + ms** = median of client e2e minus the service's: "
        "HTTP, admission, SSE transport and the Locust process.",
        f"- A level **passes** when every run completed and median ÷ bound ≤ {1 + TOLERANCE:.2f}."
        f" Each level is held {meta['hold_s']:g} s. Its new users start over one makespan "
        f"({meta['spawn_rate']:.0f} users/s), so runs are spread in phase (without jitter, runs "
        "started together would stay in lockstep and arrive in bursts); runs sent in the first "
        f"{meta['warmup_s']:.0f} s (ramp + one makespan) or still running at the level's end "
        "are not measured.",
        "",
        "| users | in flight | runs/s | runs | not ok | e2e p50 ms | ÷ bound | e2e p95 ms "
        "| TTFC p50 ms | service + ms | client + ms | CPU service % | CPU Locust % "
        "| CPU other % | pass |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['users']} | {r['in_flight_mean']:.0f} | {r['runs_per_s']:.1f} | "
            f"{r['runs_measured']} | {r['runs_not_completed']} | {r['e2e_p50_ms']:.1f} | "
            f"{r['ratio_p50']:.3f} | {_fmt(r['e2e_p95_ms'])} | {_fmt(r['ttfc_p50_ms'])} | "
            f"{_fmt(r['service_over_bound_p50_ms'])} | {_fmt(r['client_over_service_p50_ms'])} | "
            f"{r['cpu_pct'].get('service', 0):.0f} | {_locust_cpu(r)} | "
            f"{r['cpu_pct'].get('other', 0):.0f} | {'yes' if r['passes'] else 'no'} |"
        )
    verdict = "PASS" if cap >= TARGET_RUNS else "FAIL"
    lines += [
        "",
        f"**Result: {verdict}** — capacity {cap} concurrent runs at the lower bound "
        f"(target ≥ {TARGET_RUNS}).",
    ]
    if sat is not None:
        lines.append(
            f"The first process to saturate (≥ {SATURATED_PCT:.0f} % of a core) is "
            f"**{sat[0]}**, at {sat[1]} users."
        )
    else:
        lines.append(f"No process reached {SATURATED_PCT:.0f} % of a core at any level.")
    if meta["bottleneck"]:
        lines.append(f"Where the added latency sits: {meta['bottleneck']}.")
    lines += [
        "",
        *footer(
            f"{describe(m)}; service, Locust and this script share it",
            meta["command"],
            f"{meta['date']}; the benchmark took {meta['elapsed_s']:.0f} s",
            END_MARK,
        ),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[100, 250, 500, 1000, 1500, 2000])
    parser.add_argument("--hold", type=float, default=60.0, help="seconds per level")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=0, help="Locust worker processes")
    parser.add_argument("--jitter", action="store_true", help="keep the scenario's jitter")
    parser.add_argument(
        "--service-gc",
        choices=("on", "python", "off", "freeze"),
        default="on",
        help="diagnostic: the service's garbage collector — on (as shipped: "
        "ServiceConfig.gc_threshold), python (Python's default thresholds), off, freeze "
        "(gc.freeze() at start, Python's thresholds)",
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=120.0, help="wait up to S s for an idle machine"
    )
    parser.add_argument("--json", type=Path, help="write every figure as JSON")
    parser.add_argument("--out", type=Path, help="keep Locust's files here (default: temporary)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    if sorted(args.levels) != args.levels or args.levels[0] < 1:
        parser.error("--levels must be positive and increasing")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=max(Console().width, 120))
    started = time.monotonic()
    out = args.out or Path(tempfile.mkdtemp(prefix="parabench-capacity-"))
    out.mkdir(parents=True, exist_ok=True)
    scenario_path = steady_scenario(out, args.jitter)
    plan = load_scenario(scenario_path).plan("parallel")
    makespan_s = plan.theoretical_makespan_s()
    bound_ms = makespan_s * args.time_scale * 1000
    bound_s = bound_ms / 1000
    largest_step = max(b - a for a, b in itertools.pairwise([0, *args.levels]))
    spawn_rate = largest_step / bound_s  # each level's new users spread over one makespan
    warmup_s = 1.0 + bound_s + 1.2 * bound_s
    if args.hold < warmup_s + 2 * bound_s:
        console.print(f"[red]--hold must be at least {warmup_s + 2 * bound_s:.0f} s[/]")
        return 2
    busy_at_start = wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
    # Admission control is not what is measured: leave it ample room (the service frees a
    # run's slot only after its stream's cleanup, which lags when the event loop does).
    service, url = start_service(
        scenario_path, args.time_scale, 2 * max(args.levels) + 100, args.service_gc
    )
    cpu = CpuSampler(service.pid)
    cpu.start()
    try:
        result = run_load(
            LoadOptions(
                host=url,
                scenario=plan.scenario.name,
                variants=("parallel",),
                shape="sweep",
                spawn_rate=spawn_rate,
                levels=args.levels,
                hold_s=args.hold,
                processes=args.processes,
                out_dir=out / "load",
                stop_timeout_s=3 * bound_ms / 1000 + 5,
            )
        )
    except ParabenchError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        return 2
    finally:
        stop_service(service)
        cpu.stop()
    samples = read_samples(result.samples_path)
    rows = [
        analyse_level(level, samples, args.hold, warmup_s, bound_ms, cpu)
        for level in args.levels
        if any(s.get("concurrency") == level for s in samples)
    ]
    cap, saturated, where = capacity(rows), first_saturated(rows), bottleneck(rows)
    meta = {
        "machine": machine_facts(),
        "time_scale": args.time_scale,
        "makespan_s": makespan_s,
        "bound_ms": bound_ms,
        "hold_s": args.hold,
        "warmup_s": warmup_s,
        "spawn_rate": spawn_rate,
        "jitter": args.jitter,
        "machine_busy_at_start_pct": busy_at_start,
        "service_gc": args.service_gc,
        "provider": "in-process simulated provider",
        "capacity": cap,
        "saturated": saturated,
        "bottleneck": where,
        "command": shlex.join(["python", "bench/service_capacity.py", *(argv or sys.argv[1:])]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.monotonic() - started,
        "load_dir": str(result.out_dir),
    }
    print_table(console, rows, meta)
    console.print(f"capacity: {cap} concurrent runs (target ≥ {TARGET_RUNS})")
    console.print(f"first to saturate: {saturated or 'none'}; added latency: {where or '–'}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "levels": rows}, indent=2) + "\n")
    if args.write_docs:
        rewrite_section(DOCS_PATH, docs_section(rows, meta), START_MARK, END_MARK)
    return 0 if cap >= TARGET_RUNS else 1


if __name__ == "__main__":
    sys.exit(main())
