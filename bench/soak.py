"""Soak and overload: a bounded steady load on the agent service, with a burst at 3× its limit.

The agent service (``harness.service``, in its own process, as
``service_capacity.py`` starts it) runs research_assistant's ``parallel``
variant with an admission limit ``max_in_flight`` (default 50). Its LLM steps go
to the built-in OpenAI-compatible simulator in a process of its own
(``python -m harness.simulator``, called with the official ``openai`` client,
provider kind ``openai`` at the simulator's loopback URL), so the soak covers the
service's outbound connection pool too; ``--provider simulated`` uses the
in-process simulated provider instead. Locust (``harness.load.run_load``, its
own process) drives it over loopback for ``--duration`` seconds (default 600),
in tenths of that duration:

=========  ==========================  ============================================
tenth      users                       what it shows
=========  ==========================  ============================================
1          ``--users`` (25)            steady; the pre-overload latency baseline
2          3 × ``max_in_flight`` (150) overload: the excess gets 503 + Retry-After
3          ``--users``                 recovery: served again, latency back
4–10       ``--users``                 the soak proper: RSS and file descriptors
=========  ==========================  ============================================

The first three tenths are the **warm-up** (180 s by default): the overload
and the recovery happen inside it, so the allocator's high-water mark of the
busiest minute is already in the post-warm-up baseline and any growth measured
afterwards comes from the steady load itself. After Locust has stopped, the
script keeps sampling for 15 s (the drain).

Every ``--interval`` seconds (5) a sampler records, for the service and the
simulator, RSS, open file descriptors, threads and TCP connections (inbound,
and the service's connections to the simulator), plus ``/healthz``
``active_runs`` and the runs finished so far; CPU per process is sampled every
second. During the overload a prober in this process sends one ``POST /v1/runs``
at a time (10 a second) and times each 503 to its complete response (a probe
that gets a slot leaves at once; its run ends cancelled): Locust's samples carry
no response time for a refused run (their ``e2e_ms`` is empty), so the prober
measures it, and the Locust samples give the count.

Verdicts (exit 1 when one fails):

* **overload** — Locust's users got 503s, every 503 carried ``Retry-After``,
  and the prober's 503s took ≤ 250 ms at the 99th percentile (a run takes
  3 s at the default time scale, the Retry-After is 1 s: a refusal that waited
  for a slot would take seconds; the bound leaves room for a busy shared
  machine and for the 125 extra users arriving at once); no run failed.
* **recovery** — runs sent from one settling time after the overload (two
  makespans + the Retry-After + 1 s) to the end of the third tenth: no 503, no
  failure, median e2e within 10 % of the first tenth's (after its first two
  makespans).
* **steady phases** — every run outside the overload and its settling time
  completed.
* **no lost runs** — Locust's request count for ``POST /v1/runs`` equals the
  samples written, and the service's finished runs (``/metrics``
  ``parabench_run_duration_seconds_count``) equal the samples answered 200
  (plus the prober's).
* **RSS** — per process, the median RSS of the last minute of load is at most
  10 % above the median of the first minute after the warm-up (medians of ~12
  samples each, so one garbage collection or one burst does not decide).
* **fds under load** — the same comparison of the open file descriptors, with
  5 descriptors of slack (connections come and go with the runs).
* **fds drained** — 15 s after the load, the service holds no connection from a
  client, and each process's descriptors other than TCP connections (files,
  pipes, the event loop's, the listening socket) are at most 2 above what it
  had before the load. The connections the service keeps alive to the
  simulator (the ``openai`` client's pool) are bounded by the pool and are
  reported, not counted as a leak.

Usage::

    python bench/soak.py                       # 10 minutes
    python bench/soak.py --write-docs          # also rewrite its section of docs/benchmarks.md
    python bench/soak.py --duration 120 --json soak.json   # a quick look (2 minutes)

Loopback only; it stops by itself, and Ctrl-C (or SIGTERM) stops Locust, the
service and the simulator. Exit status 0 when every verdict passes, 1 when one
fails, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import numpy as np
import psutil
from _docs import DOCS_PATH, footer, marks, rewrite_section
from _machine import describe, machine_facts
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from service_capacity import CpuSampler, start_listening, start_service, stop_service

from harness.errors import ParabenchError
from harness.load import LoadOptions, run_load
from harness.load.samples import SampleTail, read_samples
from harness.scenario import load_scenario, resolve_scenario_path

SCENARIO = "research_assistant"
VARIANT = "parallel"
START_MARK, END_MARK = marks("soak")
TENTHS = 10
WARMUP_TENTHS = 3
RSS_GROWTH_MAX = 0.10
FD_GROWTH_SLACK = 5
FD_DRAINED_SLACK = 2
REJECT_P99_MAX_MS = 250.0
RECOVERY_TOLERANCE = 0.10
DRAIN_S = 15.0
PROBE_INTERVAL_S = 0.1
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class Phases:
    """When each part of the soak happens, in seconds from the start of the load."""

    duration_s: float
    makespan_s: float

    @property
    def tenth(self) -> float:
        return self.duration_s / TENTHS

    @property
    def overload(self) -> tuple[float, float]:
        return self.tenth, 2 * self.tenth

    @property
    def settle_s(self) -> float:
        """After the overload: the stopped users' runs finish, then a refused user retries."""
        return 2 * self.makespan_s + RETRY_AFTER_S + 1

    @property
    def baseline(self) -> tuple[float, float]:
        return min(2 * self.makespan_s, self.tenth / 2), self.tenth

    @property
    def recovery(self) -> tuple[float, float]:
        return 2 * self.tenth + self.settle_s, 3 * self.tenth

    @property
    def warmup_end(self) -> float:
        return WARMUP_TENTHS * self.tenth

    @property
    def window_s(self) -> float:
        """The "minute" of the RSS and fd comparisons (a tenth when that is shorter)."""
        return min(60.0, self.tenth)

    @property
    def first(self) -> tuple[float, float]:
        return self.warmup_end, self.warmup_end + self.window_s

    @property
    def last(self) -> tuple[float, float]:
        return self.duration_s - self.window_s, self.duration_s

    def phase(self, t: float) -> str:
        if t < self.tenth:
            return "steady"
        if t < 2 * self.tenth:
            return "overload"
        if t < self.warmup_end:
            return "recovery"
        if t <= self.duration_s:
            return "soak"
        return "drain"

    def steady(self, t: float) -> bool:
        """Outside the overload and its settling time."""
        return t < self.tenth or t >= 2 * self.tenth + self.settle_s


class Watch(threading.Thread):
    """Samples the service's and the simulator's resources every ``interval_s``."""

    def __init__(
        self,
        procs: dict[str, psutil.Process],
        ports: dict[str, int],
        service_url: str,
        samples_path: Path,
        interval_s: float,
    ) -> None:
        super().__init__(daemon=True)
        self.procs = procs
        self.ports = ports
        self.health_url = service_url + "/healthz"
        self.tail = SampleTail(samples_path)
        self.interval_s = interval_s
        self.rows: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def snapshot(self) -> dict[str, Any]:
        row: dict[str, Any] = {"at": time.time()}
        for name, proc in self.procs.items():
            try:
                with proc.oneshot():
                    rss, fds, threads = proc.memory_info().rss, proc.num_fds(), proc.num_threads()
                conns = [c for c in proc.net_connections(kind="tcp") if c.status != "LISTEN"]
            except psutil.Error:
                continue
            port, upstream_port = self.ports[name], self.ports.get("simulator")
            row[name] = {
                "rss_mb": round(rss / 2**20, 2),
                "fds": fds,
                "threads": threads,
                # Connections to this process's own port: Locust's, the prober's, or the
                # service's pool (on the simulator).
                "inbound": sum(1 for c in conns if c.laddr and c.laddr.port == port),
                "upstream": sum(
                    1
                    for c in conns
                    if name == "service" and c.raddr and c.raddr.port == upstream_port
                ),
                "close_wait": sum(1 for c in conns if c.status == "CLOSE_WAIT"),
                "other_fds": fds - len(conns),
            }
        # After the psutil readings, so this request's connection is never counted.
        try:
            row["active_runs"] = httpx.get(self.health_url, timeout=5).json()["active_runs"]
        except (httpx.HTTPError, ValueError, KeyError):
            row["active_runs"] = None
        self.tail.poll()
        row["runs"] = self.tail.runs
        return row

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.rows.append(self.snapshot())

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


class Prober(threading.Thread):
    """During the overload, one ``POST /v1/runs`` at a time: how fast does a 503 come back?"""

    def __init__(self, url: str, samples_path: Path, overload_users: int, phases: Phases) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples_path = samples_path
        self.overload_users = overload_users
        self.phases = phases
        self.probes: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        # The overload starts when the first sample stamped with its user count appears:
        # the refused runs of the new users are written within milliseconds.
        tail = SampleTail(self.samples_path)
        while tail.concurrency != self.overload_users:
            if self._halt.wait(0.1):
                return
            tail.poll()
        started = time.monotonic()
        begin, end = started + 2.0, started + self.phases.tenth - 2.0
        body = {"scenario": SCENARIO, "variant": VARIANT}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            self._halt.wait(max(begin - time.monotonic(), 0))
            while not self._halt.is_set() and time.monotonic() < end:
                at = time.time()
                sent = time.perf_counter()
                try:
                    with client.stream("POST", "/v1/runs", json=body) as response:
                        if response.status_code != 200:
                            response.read()  # the 503's short JSON: the complete answer
                        # A probe that got a slot leaves at once (its run ends cancelled):
                        # reading the run would stop the probing for a whole makespan.
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                except httpx.HTTPError as exc:
                    status, retry_after = 0, f"{type(exc).__name__}: {exc}"
                ms = (time.perf_counter() - sent) * 1000
                self.probes.append(
                    {"at": at, "status": status, "ms": round(ms, 3), "retry_after": retry_after}
                )
                self._halt.wait(PROBE_INTERVAL_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=90)


class SoakCpu(CpuSampler):
    """``CpuSampler`` that names the simulator's process too."""

    def __init__(self, service_pid: int, simulator_pid: int | None) -> None:
        super().__init__(service_pid)
        self.simulator_pid = simulator_pid

    def _label(self, proc: psutil.Process) -> str:
        return "simulator" if proc.pid == self.simulator_pid else super()._label(proc)


def start_simulator(scenario_path: Path, time_scale: float) -> tuple[subprocess.Popen[str], str]:
    """``python -m harness.simulator`` with the scenario's latency profiles; its /v1 URL."""
    profiles = load_scenario(scenario_path).latency_overrides
    config = {
        "time_scale": time_scale,
        "profiles": {model: p.model_dump(mode="json") for model, p in profiles.items()},
    }
    command = [sys.executable, "-m", "harness.simulator", "--config", json.dumps(config)]
    return start_listening(command, "the simulator")


def wait_ready(health_url: str, limit_s: float = 30.0) -> None:
    """Until ``health_url`` answers 200 (the event loop is up), then a second more."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if httpx.get(health_url, timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{health_url} did not answer within {limit_s:.0f} s")
        time.sleep(0.2)
    time.sleep(1.0)


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def finished_runs(service_url: str) -> int:
    """Runs the service has finished, any outcome (``/metrics``)."""
    text = httpx.get(service_url + "/metrics", timeout=30).text
    return int(
        sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "parabench_run_duration_seconds_count"
        )
    )


def locust_requests(csv_prefix: Path) -> int | None:
    """Locust's own count of ``POST /v1/runs`` requests (exact, from locust_stats.csv)."""
    path = Path(f"{csv_prefix}_stats.csv")
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as fh:
        return sum(
            int(row["Request Count"])
            for row in csv.DictReader(fh)
            if row["Type"] == "POST" and row["Name"].startswith("/v1/runs")
        )


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _in(t: float, span: tuple[float, float]) -> bool:
    return span[0] <= t < span[1]


def _proc_median(rows: list[dict[str, Any]], name: str, key: str) -> float | None:
    return _median([r[name][key] for r in rows if name in r])


def analyse(
    samples: list[dict[str, Any]],
    watch_rows: list[dict[str, Any]],
    before: dict[str, Any],
    after: dict[str, Any],
    probes: list[dict[str, Any]],
    phases: Phases,
    t0: float,
    counts: dict[str, int | None],
    cpu: CpuSampler,
    levels: list[int],
    names: list[str],
) -> dict[str, Any]:
    """Per-minute table and verdicts from the samples, the watch rows and the probes."""

    def rel(s: dict[str, Any]) -> float:
        return float(s["send_time_unix_s"]) - t0

    def e2e(group: list[dict[str, Any]]) -> list[float]:
        return [s["e2e_ms"] for s in group if s["outcome"] == "completed"]

    def outcomes(group: list[dict[str, Any]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in group:
            out[s["outcome"]] = out.get(s["outcome"], 0) + 1
        return out

    # The table: a row a minute (a tenth when shorter), then the drain.
    bin_s = phases.window_s
    bins = int(np.ceil(phases.duration_s / bin_s - 1e-9))
    table = [_row("before load", before, [], names, None, None, None)]
    for i in range(bins):
        span = (i * bin_s, min((i + 1) * bin_s, phases.duration_s))
        group = [s for s in samples if _in(rel(s), span)]
        rows = [r for r in watch_rows if _in(r["at"] - t0, span)]
        users = levels[min(int(span[0] // phases.tenth), len(levels) - 1)]
        cpu_means = cpu.mean_by_process(t0 + span[0], t0 + span[1])
        label = f"{span[0] / 60:.1f}–{span[1] / 60:.1f} min · {phases.phase(span[0])}"
        table.append(_row(label, None, rows, names, group, users, cpu_means))
    table.append(_row(f"drained (+{DRAIN_S:.0f} s)", after, [], names, None, None, None))

    verdicts: list[dict[str, Any]] = []

    def verdict(name: str, ok: bool, figure: str, target: str) -> None:
        verdicts.append({"name": name, "passes": bool(ok), "figure": figure, "target": target})

    # Overload.
    over = [s for s in samples if _in(rel(s), phases.overload)]
    over_out = outcomes(over)
    refused = [p for p in probes if p["status"] == 503]
    reject_ms = [p["ms"] for p in refused]
    p50, p99 = _pct(reject_ms, 50), _pct(reject_ms, 99)
    rejected_samples = [s for s in samples if s["outcome"] == "rejected"]
    retry_after_ok = all("Retry-After" in (s.get("error") or "") for s in rejected_samples) and all(
        p["retry_after"] == str(RETRY_AFTER_S) for p in refused
    )
    overload: dict[str, Any] = {
        "runs": len(over),
        "outcomes": over_out,
        "rejected_share": round(over_out.get("rejected", 0) / max(len(over), 1), 4),
        "probes": len(probes),
        "probes_refused": len(refused),
        "probes_served": sum(1 for p in probes if p["status"] == 200),
        "reject_p50_ms": p50,
        "reject_p99_ms": p99,
        "reject_max_ms": max(reject_ms) if reject_ms else None,
        "retry_after_ok": retry_after_ok,
    }
    bad_over = sum(n for k, n in over_out.items() if k not in ("completed", "rejected"))
    verdict(
        "overload: 503 fast, with Retry-After",
        over_out.get("rejected", 0) > 0
        and p99 is not None
        and p99 <= REJECT_P99_MAX_MS
        and retry_after_ok
        and bad_over == 0,
        f"{over_out.get('rejected', 0)} of {len(over)} Locust runs refused; "
        f"prober 503 p50 {_ms(p50)}, p99 {_ms(p99)}, max {_ms(overload['reject_max_ms'])} "
        f"({len(refused)} probes); {bad_over} failed",
        f"503s, p99 ≤ {REJECT_P99_MAX_MS:.0f} ms, Retry-After on each, none failed",
    )
    # Recovery.
    base = [s for s in samples if _in(rel(s), phases.baseline)]
    rec = [s for s in samples if _in(rel(s), phases.recovery)]
    base_p50, rec_p50 = _median(e2e(base)), _median(e2e(rec))
    rec_out = outcomes(rec)
    last_503 = max((rel(s) for s in rejected_samples), default=None)
    ratio = rec_p50 / base_p50 if base_p50 and rec_p50 else None
    recovery: dict[str, Any] = {
        "baseline_runs": len(base),
        "baseline_e2e_p50_ms": base_p50,
        "runs": len(rec),
        "outcomes": rec_out,
        "e2e_p50_ms": rec_p50,
        "ratio": ratio,
        "last_503_after_overload_s": None if last_503 is None else last_503 - phases.overload[1],
    }
    verdict(
        "recovery: served again, latency back",
        bool(rec)
        and rec_out.get("completed", 0) == len(rec)
        and ratio is not None
        and ratio <= 1 + RECOVERY_TOLERANCE,
        f"{rec_out.get('completed', 0)} of {len(rec)} runs completed from "
        f"+{phases.settle_s:.0f} s after the overload; median e2e {_ms(rec_p50)} vs "
        f"{_ms(base_p50)} before it ({_ratio(ratio)}); last 503 "
        + ("none" if last_503 is None else f"{last_503 - phases.overload[1]:+.1f} s after its end"),
        f"no 503 or failure, median ≤ {1 + RECOVERY_TOLERANCE:.2f} × before",
    )
    # Steady phases.
    steady = [s for s in samples if phases.steady(rel(s))]
    not_ok = {k: n for k, n in outcomes(steady).items() if k != "completed"}
    verdict(
        "steady phases: every run completed",
        bool(steady) and not not_ok,
        f"{len(steady) - sum(not_ok.values())} of {len(steady)} completed"
        + (f"; {not_ok}" if not_ok else ""),
        "all",
    )
    # Lost runs.
    answered = sum(1 for s in samples if s.get("http_status") == 200)
    expected_finished = answered + overload["probes_served"]
    sent, finished = counts["locust_requests"], counts["service_finished"]
    verdict(
        "no lost runs",
        sent == len(samples) and finished == expected_finished,
        f"Locust sent {sent}, wrote {len(samples)} samples; the service finished {finished} "
        f"runs, {answered} answered 200 (+{overload['probes_served']} probes)",
        "sent = samples, finished = answered",
    )
    # Resources.
    first = [r for r in watch_rows if _in(r["at"] - t0, phases.first)]
    last = [r for r in watch_rows if _in(r["at"] - t0, phases.last)]
    resources: dict[str, Any] = {}
    for name in names:
        rss_a, rss_b = _proc_median(first, name, "rss_mb"), _proc_median(last, name, "rss_mb")
        fd_a, fd_b = _proc_median(first, name, "fds"), _proc_median(last, name, "fds")
        growth = None if rss_a is None or rss_b is None else rss_b / rss_a - 1
        resources[name] = {
            "rss_first_mb": rss_a,
            "rss_last_mb": rss_b,
            "rss_growth": growth,
            "rss_before_load_mb": before.get(name, {}).get("rss_mb"),
            "rss_max_mb": max((r[name]["rss_mb"] for r in watch_rows if name in r), default=None),
            "fds_first": fd_a,
            "fds_last": fd_b,
            "fds_before": before.get(name, {}).get("fds"),
            "fds_drained": after.get(name, {}).get("fds"),
            "threads_before": before.get(name, {}).get("threads"),
            "threads_max": max((r[name]["threads"] for r in watch_rows if name in r), default=None),
            "threads_drained": after.get(name, {}).get("threads"),
        }
        verdict(
            f"{name} RSS after warm-up",
            growth is not None and growth <= RSS_GROWTH_MAX,
            f"{_mb(rss_a)} → {_mb(rss_b)} ({_growth(growth)})",
            f"≤ +{RSS_GROWTH_MAX:.0%}",
        )
        verdict(
            f"{name} fds under load",
            fd_a is not None and fd_b is not None and fd_b <= fd_a * 1.1 + FD_GROWTH_SLACK,
            f"{_n(fd_a)} → {_n(fd_b)}",
            f"≤ +10 % + {FD_GROWTH_SLACK}",
        )
        b, a = before.get(name), after.get(name)
        # The service must have no client left; the simulator's only clients are the
        # service's kept-alive pool (the service side may hold a few more, half-closed).
        pool = after.get("service", {}).get("upstream", 0)
        inbound_max = 0 if name == "service" else pool
        drained_ok = (
            a is not None
            and b is not None
            and a["other_fds"] <= b["other_fds"] + FD_DRAINED_SLACK
            and a["inbound"] <= inbound_max
        )
        kept = f"; {a['upstream']} kept alive to the simulator" if a and a["upstream"] else ""
        verdict(
            f"{name} fds drained",
            drained_ok,
            (
                f"{b['fds']} before → {a['fds']} after; not connections "
                f"{b['other_fds']} → {a['other_fds']}; inbound connections {a['inbound']}{kept}"
                if a and b
                else "not sampled"
            ),
            ("no client connection; " if name == "service" else "inbound ≤ the service's pool; ")
            + f"not connections ≤ before + {FD_DRAINED_SLACK}",
        )
    return {
        "table": table,
        "overload": overload,
        "recovery": recovery,
        "resources": resources,
        "verdicts": verdicts,
        "passes": all(v["passes"] for v in verdicts),
    }


def _row(
    label: str,
    point: dict[str, Any] | None,
    rows: list[dict[str, Any]],
    names: list[str],
    group: list[dict[str, Any]] | None,
    users: int | None,
    cpu_means: dict[str, float] | None,
) -> dict[str, Any]:
    """One line of the table: a single snapshot (``point``) or the medians of ``rows``."""
    out: dict[str, Any] = {"label": label, "users": users}
    if group is not None:
        completed = [s["e2e_ms"] for s in group if s["outcome"] == "completed"]
        out["runs"] = len(group)
        out["completed"] = len(completed)
        out["rejected"] = sum(1 for s in group if s["outcome"] == "rejected")
        out["other"] = len(group) - out["completed"] - out["rejected"]
        out["e2e_p50_ms"] = _median(completed)
    active = [r["active_runs"] for r in rows if r.get("active_runs") is not None]
    if point is not None and point.get("active_runs") is not None:
        active = [point["active_runs"]]
    out["active_runs_max"] = max(active) if active else None
    for name in names:
        for key in ("rss_mb", "fds", "threads", "inbound", "upstream", "close_wait"):
            value = point.get(name, {}).get(key) if point else _proc_median(rows, name, key)
            out[f"{name}_{key}"] = value
    if cpu_means is not None:
        ours = sum(v for k, v in cpu_means.items() if k != "machine")
        out["cpu"] = {
            "service": cpu_means.get("service", 0.0),
            "simulator": cpu_means.get("simulator", 0.0),
            "locust": sum(v for k, v in cpu_means.items() if k.startswith("locust")),
            "other": max(cpu_means.get("machine", ours) - ours, 0.0),
        }
    return out


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def _mb(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} MB"


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"×{value:.3f}"


def _growth(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"


def _cell(value: Any, fmt: str = "{:.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def table_columns(names: list[str]) -> list[tuple[str, str, str]]:
    """(heading, key, format) of each column of the per-minute table."""
    cols = [
        ("users", "users", "{}"),
        ("runs", "runs", "{}"),
        ("completed", "completed", "{}"),
        ("503", "rejected", "{}"),
        ("other", "other", "{}"),
        ("e2e p50 ms", "e2e_p50_ms", "{:.0f}"),
        ("active max", "active_runs_max", "{}"),
        ("service RSS MB", "service_rss_mb", "{:.1f}"),
        ("service fds", "service_fds", "{:.0f}"),
        ("threads", "service_threads", "{:.0f}"),
        ("clients", "service_inbound", "{:.0f}"),
    ]
    if "simulator" in names:
        cols += [
            ("to simulator", "service_upstream", "{:.0f}"),
            ("simulator RSS MB", "simulator_rss_mb", "{:.1f}"),
            ("simulator fds", "simulator_fds", "{:.0f}"),
        ]
    return cols


def _cpu_cell(row: dict[str, Any], names: list[str]) -> str:
    cpu = row.get("cpu")
    if cpu is None:
        return "–"
    parts = [cpu["service"], *([cpu["simulator"]] if "simulator" in names else [])]
    return " / ".join(f"{v:.0f}" for v in [*parts, cpu["locust"], cpu["other"]])


def print_report(console: Console, result: dict[str, Any], names: list[str]) -> None:
    table = Table(title="soak — medians of the samples in each period")
    cols = table_columns(names)
    table.add_column("period")
    for heading, _, _ in cols:
        table.add_column(heading, justify="right")
    table.add_column("CPU %", justify="right")
    for row in result["table"]:
        table.add_row(
            row["label"],
            *(_cell(row.get(key), fmt) for _, key, fmt in cols),
            _cpu_cell(row, names),
        )
    console.print(table)
    verdicts = Table(title="verdicts")
    for col in ("check", "figure", "target", "pass"):
        verdicts.add_column(col)
    for v in result["verdicts"]:
        verdicts.add_row(v["name"], v["figure"], v["target"], "yes" if v["passes"] else "[red]NO")
    console.print(verdicts)


def docs_section(result: dict[str, Any], meta: dict[str, Any]) -> str:
    m, names = meta["machine"], meta["processes"]
    cols = table_columns(names)
    cpu_heading = (
        "CPU % service / simulator / Locust / other"
        if "simulator" in names
        else "CPU % service / Locust / other"
    )
    provider = (
        "the built-in OpenAI-compatible simulator in a process of its own (`python -m "
        "harness.simulator`, called with the official `openai` client)"
        if "simulator" in names
        else "the in-process simulated provider"
    )
    d = meta["duration_s"]
    tenth = d / TENTHS
    lines = [
        START_MARK,
        "## Soak and overload",
        "",
        f"Does the agent service hold steady for {d / 60:.0f} minutes, refuse quickly when "
        "pushed past its admission limit, and recover? The service (`harness.service`, own "
        f"process) runs research_assistant's `parallel` variant at time scale "
        f"{meta['time_scale']:g} (a run's bound is {meta['makespan_s'] * 1000:.0f} ms) with "
        f"`max_in_flight` {meta['max_in_flight']}; its LLM steps go to {provider}. Locust "
        "(`harness.load.run_load`, own process) drives it over loopback, one run after another "
        f"per user: {meta['users']} users for {tenth:.0f} s, then "
        f"**{meta['overload_users']} users (3 × `max_in_flight`)** for {tenth:.0f} s, then "
        f"{meta['users']} users to the end. The first {WARMUP_TENTHS * tenth:.0f} s "
        "(steady, overload, recovery) are the warm-up: the allocator's high-water mark of the "
        "overload is already in the post-warm-up baseline, so growth measured afterwards is the "
        f"steady load's own. Every {meta['interval_s']:g} s a sampler reads each process's RSS, "
        "open file descriptors, threads and TCP connections (psutil) and `/healthz`; during the "
        f"overload a prober sends one `POST /v1/runs` at a time ({1 / PROBE_INTERVAL_S:.0f}/s) "
        "and times each 503 to its complete response (Locust's samples of a refused run carry "
        "no response time; a probe that gets a slot leaves at once, its run ends cancelled).",
        "",
        "Each row: runs by send time, medians of the resource samples in the period; *clients* "
        "= connections into the service; *to simulator* = the service's connections to the "
        "simulator (the `openai` client's keep-alive pool); *other* CPU = the rest of the "
        "machine (100 = one core). After the overload, the users Locust stopped leave their "
        "connections idle until the service's 30 s keep-alive timeout closes them.",
        "",
        "| period | " + " | ".join(h for h, _, _ in cols) + f" | {cpu_heading} |",
        "|---|" + "---:|" * len(cols) + "---:|",
    ]
    for row in result["table"]:
        cells = [_cell(row.get(key), fmt) for _, key, fmt in cols]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {_cpu_cell(row, names)} |")
    lines += ["", "| check | figure | target | result |", "|---|---|---|---|"]
    for v in result["verdicts"]:
        lines.append(
            f"| {v['name']} | {v['figure']} | {v['target']} | {'pass' if v['passes'] else 'FAIL'} |"
        )
    verdict = "PASS" if result["passes"] else "FAIL"
    lines += ["", f"**Result: {verdict}**", ""]
    growth = result["resources"].get("service", {}).get("rss_growth")
    if growth is not None and growth > 0.01:
        lines.append(
            "- The service's RSS creeps up under load while its live Python objects do not: "
            "freed memory the C allocator keeps, not a leak (the diagnostic: "
            '[bench/README.md](../bench/README.md), `soak.py`, "Reading the RSS").'
        )
    lines += [
        "- RSS and fds: the median of the first minute after the warm-up against the median of "
        "the last minute of load (about a dozen samples each). The drained check compares each "
        "process's descriptors other than TCP connections (files, pipes, the event loop's, the "
        "listening socket) with their count before the load; the service's kept-alive "
        "connections to the simulator are bounded by the client's pool and are not a leak.",
        *footer(
            f"{describe(m)}; shared with the service, the simulator, Locust and whatever else "
            f"ran (load average {meta['loadavg_start']:.1f} at the start, "
            f"{meta['loadavg_end']:.1f} at the end; the *other* CPU column)",
            meta["command"],
            f"{meta['date']}; the soak took {meta['elapsed_s']:.0f} s",
            END_MARK,
        ),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--users", type=int, default=25, help="users of the steady phases")
    parser.add_argument("--max-in-flight", type=int, default=50, help="the service's limit")
    parser.add_argument("--time-scale", type=float, default=0.25)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--provider",
        choices=("simulator", "simulated"),
        default="simulator",
        help="simulator: the HTTP simulator in its own process (default); simulated: in process",
    )
    parser.add_argument("--json", type=Path, help="write every figure and sample as JSON")
    parser.add_argument("--out", type=Path, help="keep Locust's files here (default: temporary)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.duration < 100:
        parser.error("--duration must be at least 100 s (ten phases of 10 s)")
    if not 0 < args.users < args.max_in_flight:
        parser.error("--users must be positive and below --max-in-flight")
    if args.interval <= 0 or args.time_scale <= 0:
        parser.error("--interval and --time-scale must be positive")
    return args


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    console = Console(width=max(Console().width, 140))
    started = time.monotonic()
    loadavg_start = psutil.getloadavg()[0]
    out = args.out or Path(tempfile.mkdtemp(prefix="parabench-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    scenario_path = resolve_scenario_path(SCENARIO)
    makespan_s = load_scenario(scenario_path).plan(VARIANT).theoretical_makespan_s()
    phases = Phases(args.duration, makespan_s * args.time_scale)
    overload_users = 3 * args.max_in_flight
    levels = [args.users, overload_users] + [args.users] * (TENTHS - 2)
    load_dir = out / "load"
    samples_path = load_dir / "samples.jsonl"
    procs: dict[str, psutil.Process] = {}
    children: list[subprocess.Popen[str]] = []
    watch: Watch | None = None
    prober: Prober | None = None
    cpu: SoakCpu | None = None
    try:
        settings: dict[str, Any] = {"retry_after_s": RETRY_AFTER_S}
        ports: dict[str, int] = {}
        if args.provider == "simulator":
            simulator, sim_url = start_simulator(scenario_path, args.time_scale)
            children.append(simulator)
            procs["simulator"] = psutil.Process(simulator.pid)
            ports["simulator"] = _port(sim_url)
            settings["provider"] = {"kind": "openai", "base_url": sim_url, "name": "simulator"}
        service, url = start_service(scenario_path, args.time_scale, args.max_in_flight, **settings)
        children.insert(0, service)  # stopped first: it holds connections to the simulator
        procs = {"service": psutil.Process(service.pid), **procs}
        ports["service"] = _port(url)
        wait_ready(url + "/healthz")
        if "simulator" in procs:
            wait_ready(sim_url.removesuffix("/v1") + "/healthz")
        watch = Watch(procs, ports, url, samples_path, args.interval)
        before = watch.snapshot()
        cpu = SoakCpu(service.pid, procs["simulator"].pid if "simulator" in procs else None)
        cpu.start()
        watch.start()
        prober = Prober(url, samples_path, overload_users, phases)
        prober.start()
        console.print(
            f"soak: {args.duration:g} s, {args.users} users, {overload_users} in the overload "
            f"({phases.overload[0]:.0f}–{phases.overload[1]:.0f} s), max_in_flight "
            f"{args.max_in_flight}, time scale {args.time_scale:g}; service {url}"
            + (f", simulator {sim_url}" if "simulator" in procs else "")
        )
        result = run_load(
            LoadOptions(
                host=url,
                scenario=SCENARIO,
                variants=(VARIANT,),
                shape="sweep",
                levels=levels,
                hold_s=phases.tenth,
                # Each change of level in one step: Locust ramps down at the spawn rate too,
                # and each step waits for its stopped users' runs to end.
                spawn_rate=float(overload_users),
                out_dir=load_dir,
                stop_timeout_s=3 * phases.makespan_s + 5,
            )
        )
        if result.interrupted:
            raise KeyboardInterrupt
        prober.stop()
        console.print(f"load done; draining for {DRAIN_S:.0f} s …")
        time.sleep(DRAIN_S)
        watch.stop()
        after = watch.snapshot()
        counts = {
            "locust_requests": locust_requests(result.csv_prefix),
            "service_finished": finished_runs(url),
        }
    except ParabenchError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        return 2
    except RuntimeError as exc:  # a server that would not start
        console.print(f"[red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping Locust, the service and the simulator[/]")
        return 130
    finally:
        for thread in (prober, watch, cpu):
            if thread is not None:
                thread.stop()
        for child in children:
            stop_service(child)
    samples = read_samples(result.samples_path)
    if not samples:
        console.print(f"[red]no run was recorded[/]; Locust's log: {result.log_path}")
        return 1
    t0 = min(s["send_time_unix_s"] for s in samples)
    names = list(procs)
    analysed = analyse(
        samples,
        watch.rows,
        before,
        after,
        prober.probes,
        phases,
        t0,
        counts,
        cpu,
        levels,
        names,
    )
    meta = {
        "machine": machine_facts(),
        "processes": names,
        "duration_s": args.duration,
        "users": args.users,
        "overload_users": overload_users,
        "max_in_flight": args.max_in_flight,
        "time_scale": args.time_scale,
        "makespan_s": phases.makespan_s,
        "interval_s": args.interval,
        "provider": args.provider,
        "counts": counts,
        "loadavg_start": loadavg_start,
        "loadavg_end": psutil.getloadavg()[0],
        "command": shlex.join(["python", "bench/soak.py", *(argv or sys.argv[1:])]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.monotonic() - started,
        "load_dir": str(result.out_dir),
    }
    print_report(console, analysed, names)
    console.print(f"Locust's files: {result.out_dir}")
    if args.json:
        payload = {
            "meta": meta,
            **{k: v for k, v in analysed.items()},
            "watch": [before, *watch.rows, after],
            "probes": prober.probes,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.write_docs:
        rewrite_section(DOCS_PATH, docs_section(analysed, meta), START_MARK, END_MARK)
    return 0 if analysed["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
