"""Our simulator against GuideLLM's mock server: same client, same settings, same run.

Not a test: a benchmark to run by hand on the machine whose numbers you want::

    .venv/bin/python bench/simulator_vs_guidellm.py --json bench/results/guidellm.json --write-docs

The peer is ``guidellm mock-server`` from PyPI, pinned (``--guidellm-version``,
default 0.8.1). It is installed with pip into a venv of its own under
``bench/results/peers/guidellm-VERSION/`` (git-ignored), created on the first
run and reused after; it never enters parabench's environment (it pulls
Sanic, transformers and torch with its CUDA wheels: about 6 GB, a few minutes
to install). If pip fails, the script prints why (pip's last line), writes that
sentence as its docs section (``--write-docs``) and its JSON (``--json``), and
exits 0: a peer that cannot be installed is a finding, not a broken run. pip's
download is the only traffic that leaves 127.0.0.1; GuideLLM runs with the
Hugging Face libraries set offline.

Both servers run as processes of their own on free 127.0.0.1 ports, as their
command lines ship them (parabench: uvicorn, h11 on asyncio, no access log;
GuideLLM: Sanic on uvloop, single process, a per-request access log its command
line cannot turn off, written to ``bench/results/peers/guidellm-VERSION.log``),
with the same settings: model name, TTFT, ITL, output tokens, no jitter (our
``jitter_sigma`` 0 and no prefill; GuideLLM's ``--*-std`` 0), one process
(``--workers 1``; GuideLLM 0.8.1 runs one process whatever that says).

The streams are made comparable: GuideLLM sends every output token in an SSE
event of its own (a word, a space or a punctuation mark from its fake text),
then a stop event, the usage event and ``[DONE]``; ours runs with
``chunk_tokens`` 1, so it too sends one token per event, after an empty role
event at once, and the stop, usage and ``[DONE]`` events in the same write as
the last token. Both answer ``max_tokens`` tokens (``--output-tokens``), the
first at TTFT and one every ITL after, so the configured E2E is
``TTFT + (tokens - 1) × ITL`` for both.

The client is simulator_throughput's (imported, not copied): the official
``openai`` ``AsyncOpenAI``, streaming, no retries, one connection per stream,
in this process (``N``) or spread over P processes (``NxP``), never in a
server's. Both servers get the same levels, the same number of streams and the
same request body; at each level ours runs first, then GuideLLM, each once the
machine has been idle for 2 s (waiting at most ``--wait-quiet`` seconds). Each
of the N workers runs one warm-up stream, then ``--rounds`` measured ones (more
at small N, so every row has at least ``--min-samples``), starts staggered over
one configured E2E.

Per server per level: median and p95 TTFT and E2E, and median E2E − TTFT (the
stream after its first token), as observed ÷ configured (1.000 is exact
timing), throughput (streams that finished while all N were open, per second),
server CPU (user + system time of its process as a share of one core, psutil)
and per request, client CPU, the CPU everything else on the machine used
meanwhile ("other", a busy neighbour makes a row unreliable), and the server's
RSS after the level (and each server's idle and peak RSS). Then ours ÷ GuideLLM
of each, from the same run. The openai client costs CPU per SSE event, and both
servers send about as many events as tokens, so keep ``--output-tokens`` small
and ITL long enough that the client is not what saturates first (its CPU is in
the table).

There is no target beyond publishing the comparison: the script exits 0 unless
something broke (a server would not start or died, or a level had no
successful stream: then 1), 2 on a usage error. Every process it starts is
stopped on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing
import multiprocessing.pool
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType

import openai
import psutil
from _docs import DOCS_PATH, marks, rewrite_section
from _machine import machine_facts
from simulator_throughput import (
    MODEL,
    Level,
    LevelResult,
    Settings,
    cpu_seconds,
    drive_in_process,
    machine_busy_seconds,
    start_simulator,
    summarise,
    wait_for_quiet,
)

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "results" / "peers"
START_MARK, END_MARK = marks("simulator-vs-guidellm")
OURS, PEER = "parabench", "GuideLLM"
INSTALL_TIMEOUT_S = 1800
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10


@dataclass(slots=True)
class Server:
    """One server under test: its process, its URL and the psutil handle that measures it."""

    name: str
    process: subprocess.Popen[str]
    url: str

    @property
    def handle(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def rss_mb(self) -> float:
        return float(self.handle.memory_info().rss) / 2**20

    def peak_rss_mb(self) -> float:
        """The process's high-water RSS (Linux ``VmHWM``), else its current RSS."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        except OSError:
            return self.rss_mb()
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) / 1024 if found else self.rss_mb()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


@dataclass(slots=True)
class Row:
    """One server at one level: simulator_throughput's figures plus the ones compared here."""

    server: str
    figures: LevelResult
    p95_ttft_s: float
    p95_ttft_ratio: float
    p95_e2e_ratio: float
    stream_ratio: float  # median (E2E - TTFT) over the configured (tokens - 1) x ITL
    events_per_stream: float
    server_cpu_ms_per_request: float
    rss_mb: float


# --- the peer's installation -------------------------------------------------------------


def peer_venv(version: str, peers: Path) -> Path:
    return peers / f"guidellm-{version}"


def installed_version(venv: Path) -> str | None:
    """The guidellm version installed in ``venv``, or ``None``."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "guidellm").exists() or not python.exists():
        return None
    probe = "import importlib.metadata as m; print(m.version('guidellm'))"
    done = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def install_guidellm(version: str, peers: Path) -> str | None:
    """Create or reuse the peer venv; ``None`` when ready, else why not (pip's last line)."""
    venv = peer_venv(version, peers)
    if installed_version(venv) == version:
        print(f"reusing GuideLLM {version} in {venv}")
        return None
    print(f"installing guidellm=={version} from PyPI into {venv} (about 6 GB, a few minutes)")
    fresh = not venv.exists()
    commands = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            *(str(venv / "bin" / "python"), "-m", "pip", "install"),
            *("--disable-pip-version-check", "--progress-bar", "off", f"guidellm=={version}"),
        ],
    ]
    for command in commands:
        why = run_with_progress(command)
        if why is not None:
            if fresh:
                shutil.rmtree(venv, ignore_errors=True)  # no half-made venv to trip the next run
            return why
    if installed_version(venv) != version:
        return f"pip finished, but {venv} has no guidellm {version} afterwards"
    return None


def run_with_progress(command: list[str]) -> str | None:
    """Run ``command``, echoing its output; ``None`` on success, else its last output line."""
    last: deque[str] = deque(maxlen=1)
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except OSError as exc:
        return f"{command[0]} could not start: {exc}"
    assert process.stdout is not None
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    try:
        for line in process.stdout:
            if line.strip():
                last.append(line.strip())
                print(f"  | {line.rstrip()}", flush=True)
            if time.monotonic() > deadline:
                process.kill()
                return f"gave up after {INSTALL_TIMEOUT_S} s: {shlex.join(command)}"
        process.wait(timeout=STOP_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode == 0:
        return None
    return last[0] if last else f"{shlex.join(command)} exited {process.returncode}"


# --- the servers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_ours(settings: Settings) -> Server:
    """``python -m harness.simulator`` (simulator_throughput's launcher), one token per event."""
    process, url = start_simulator(settings)
    return Server(OURS, process, url)


def start_guidellm(venv: Path, settings: Settings, log_path: Path) -> Server:
    """``guidellm mock-server`` with the same timing; waits until it answers ``/health``."""
    port = free_port()
    command = [str(venv / "bin" / "guidellm"), "mock-server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--model", MODEL]
    command += ["--ttft-ms", f"{settings.ttft_ms:g}", "--ttft-ms-std", "0"]
    command += ["--itl-ms", f"{settings.itl_ms:g}", "--itl-ms-std", "0"]
    command += ["--output-tokens", str(settings.output_tokens), "--output-tokens-std", "0"]
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env = {**os.environ, **offline, "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
    server = Server(PEER, process, f"http://127.0.0.1:{port}/v1")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"GuideLLM's mock server exited {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.25)
    server.stop()
    raise SystemExit(f"GuideLLM's mock server did not answer within {START_TIMEOUT_S} s")


# --- measuring ---------------------------------------------------------------------------


def rounds_for(level: Level, settings: Settings, min_samples: int) -> Settings:
    """At small N, more rounds per worker, so that every row has ``min_samples`` streams."""
    return replace(settings, rounds=max(settings.rounds, math.ceil(min_samples / level.streams)))


def measure(
    server: Server, level: Level, settings: Settings, pool: multiprocessing.pool.Pool | None
) -> Row:
    """Drive ``server`` at ``level``: shard 0 in this process, the others in ``pool``."""
    shards = [list(range(p, level.streams, level.procs)) for p in range(level.procs)]
    # Spawned client processes need a moment to import openai before the common start.
    start_at = time.perf_counter() + (3.0 if level.procs > 1 else 0.2)
    others = []
    if level.procs > 1:
        assert pool is not None
        others = [
            pool.apply_async(drive_in_process, (server.url, shard, level, settings, start_at))
            for shard in shards[1:]
        ]
    time.sleep(max(start_at - time.perf_counter(), 0))
    handle = server.handle
    server_cpu_before, busy_before = cpu_seconds(handle), machine_busy_seconds()
    shard_results = [drive_in_process(server.url, shards[0], level, settings, start_at)]
    budget = settings.e2e_s * (settings.rounds + 2) * 4 + 60
    shard_results += [other.get(timeout=budget) for other in others]
    wall = time.perf_counter() - start_at
    if server.process.poll() is not None:
        raise SystemExit(f"{server.name} exited {server.process.returncode} during {level}")
    server_cpu_s = cpu_seconds(handle) - server_cpu_before
    server_cpu = 100 * server_cpu_s / wall
    client_cpu = 100 * sum(s.cpu_s for s in shard_results) / wall
    other_cpu = max(
        100 * (machine_busy_seconds() - busy_before) / wall - server_cpu - client_cpu, 0
    )
    samples = [sample for s in shard_results for sample in s.samples if not sample[4]]
    if not samples:
        raise SystemExit(f"{server.name}: no stream succeeded at {level.streams} streams")
    window = (max(s.warm_done_s for s in shard_results), min(s.first_done_s for s in shard_results))
    errors = sum(s.errors for s in shard_results)
    figures = summarise(
        level, samples, errors, window, (server_cpu, client_cpu, other_cpu), settings
    )
    figures.bottleneck = figures.bottleneck.replace("simulator", "server")
    ttfts = sorted(sample[1] for sample in samples)
    e2es = sorted(ended - started for started, _, ended, _, _ in samples)
    # After the first token: the configured (tokens - 1) x ITL, and what the client saw.
    configured_streaming = settings.e2e_s - settings.ttft_ms / 1000
    streaming = [ended - started - ttft for started, ttft, ended, _, _ in samples]
    served = sum(len(s.samples) for s in shard_results) + errors  # warm-up streams included
    return Row(
        server=server.name,
        figures=figures,
        p95_ttft_s=round(percentile(ttfts, 0.95), 4),
        p95_ttft_ratio=round(percentile(ttfts, 0.95) / (settings.ttft_ms / 1000), 4),
        p95_e2e_ratio=round(percentile(e2es, 0.95) / settings.e2e_s, 4),
        stream_ratio=round(statistics.median(streaming) / max(configured_streaming, 1e-9), 4),
        events_per_stream=round(statistics.mean(sample[3] for sample in samples), 1),
        server_cpu_ms_per_request=round(1000 * server_cpu_s / served, 2),
        rss_mb=round(server.rss_mb(), 1),
    )


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (as simulator_throughput's p95 E2E)."""
    return ordered[int(share * (len(ordered) - 1))]


# --- reporting ---------------------------------------------------------------------------

DETAIL_HEADER = (
    "| streams | server | req/s | events/stream | median TTFT (obs/cfg) | p95 TTFT (obs/cfg) "
    "| median E2E (obs/cfg) | p95 E2E (obs/cfg) | median E2E − TTFT (obs/cfg) | errors "
    "| server CPU | server CPU/req "
    "| client CPU | other CPU | RSS | bottleneck |"
)
DETAIL_RULE = "|---:|---|" + "---:|" * 13 + "---|"
VERSUS_HEADER = (
    "| streams | median TTFT | p95 TTFT | median E2E | p95 E2E | median E2E − TTFT | req/s "
    "| server CPU/req | RSS |"
)
VERSUS_RULE = "|" + "---:|" * 9


def detail_row(row: Row) -> str:
    f = row.figures
    return (
        f"| {f.concurrency} | {row.server} | {f.requests_per_s:.1f} | {row.events_per_stream:g} "
        f"| {f.median_ttft_s * 1000:.0f} ms ({f.ttft_ratio:.3f}) "
        f"| {row.p95_ttft_s * 1000:.0f} ms ({row.p95_ttft_ratio:.3f}) "
        f"| {f.median_e2e_s:.3f} s ({f.e2e_ratio:.3f}) "
        f"| {f.p95_e2e_s:.3f} s ({row.p95_e2e_ratio:.3f}) | {row.stream_ratio:.3f} | {f.errors} "
        f"| {f.server_cpu_pct:.0f} % | {row.server_cpu_ms_per_request:.2f} ms "
        f"| {f.client_cpu_pct:.0f} % | {f.other_cpu_pct:.0f} % | {row.rss_mb:.0f} MB "
        f"| {f.bottleneck} |"
    )


def versus(ours: float, peer: float, digits: int = 3) -> str:
    """``ours / peer (ours ÷ peer)``."""
    quotient = f"{ours / peer:.2f}" if peer else "–"
    return f"{ours:.{digits}f} / {peer:.{digits}f} ({quotient})"


def versus_row(ours: Row, peer: Row) -> str:
    o, p = ours.figures, peer.figures
    return (
        f"| {o.concurrency} | {versus(o.ttft_ratio, p.ttft_ratio)} "
        f"| {versus(ours.p95_ttft_ratio, peer.p95_ttft_ratio)} "
        f"| {versus(o.e2e_ratio, p.e2e_ratio)} | {versus(ours.p95_e2e_ratio, peer.p95_e2e_ratio)} "
        f"| {versus(ours.stream_ratio, peer.stream_ratio)} "
        f"| {versus(o.requests_per_s, p.requests_per_s, 1)} "
        f"| {versus(ours.server_cpu_ms_per_request, peer.server_cpu_ms_per_request, 2)} "
        f"| {versus(ours.rss_mb, peer.rss_mb, 0)} |"
    )


def pairs(rows: list[Row]) -> list[tuple[Row, Row]]:
    """(ours, GuideLLM) per level, in run order."""
    mine = [r for r in rows if r.server == OURS]
    theirs = [r for r in rows if r.server == PEER]
    return list(zip(mine, theirs, strict=False))


def findings(rows: list[Row], rss: dict[str, dict[str, float]], tolerance: float) -> list[str]:
    """Plain sentences computed from the figures (the docs add the fixed explanations)."""
    lines: list[str] = []
    both = pairs(rows)
    if not both:
        return lines
    low_ours, low_peer = both[0]
    for row in (low_ours, low_peer):
        f = row.figures
        honours = abs(f.ttft_ratio - 1) <= tolerance and abs(f.e2e_ratio - 1) <= tolerance
        lines.append(
            f"At {f.concurrency} stream{'s' if f.concurrency > 1 else ''}, {row.server}'s "
            f"median TTFT is {f.ttft_ratio:.3f}× and median E2E {f.e2e_ratio:.3f}× the "
            "configured ones: "
            + (
                f"the configured timing is honoured (within {tolerance:.0%})."
                if honours
                else f"NOT within {tolerance:.0%} of the configured timing."
            )
        )
    top_ours, top_peer = both[-1]
    o, p = top_ours.figures, top_peer.figures
    lines.append(
        f"At {o.concurrency} streams, median E2E is {o.e2e_ratio:.3f}× configured for "
        f"{OURS} and {p.e2e_ratio:.3f}× for {PEER}; p95 TTFT {top_ours.p95_ttft_ratio:.3f}× "
        f"and {top_peer.p95_ttft_ratio:.3f}×; the part after the first token (E2E − TTFT) "
        f"{top_ours.stream_ratio:.3f}× and {top_peer.stream_ratio:.3f}× its configured length."
    )
    if top_peer.server_cpu_ms_per_request > 0:
        lines.append(
            f"Server CPU per streamed request at {o.concurrency} streams: "
            f"{top_ours.server_cpu_ms_per_request:.2f} ms ({OURS}) vs "
            f"{top_peer.server_cpu_ms_per_request:.2f} ms ({PEER}), "
            f"{top_ours.server_cpu_ms_per_request / top_peer.server_cpu_ms_per_request:.2f}×; "
            f"that is {o.server_cpu_pct:.0f} % and {p.server_cpu_pct:.0f} % of a core."
        )
    lines.append(
        f"RSS idle / at the end (peak): {OURS} {rss[OURS]['idle_mb']:.0f} / "
        f"{rss[OURS]['peak_mb']:.0f} MB, {PEER} {rss[PEER]['idle_mb']:.0f} / "
        f"{rss[PEER]['peak_mb']:.0f} MB."
    )

    busiest = max(rows, key=lambda r: r.figures.other_cpu_pct)
    if busiest.figures.other_cpu_pct >= 25:
        cores = 100 * (os.cpu_count() or 1)
        lines.append(
            f"This run shared the machine: other processes used up to "
            f"{busiest.figures.other_cpu_pct:.0f} % CPU (of {cores} %) during a row, so the "
            "latency ratios of the busier rows measure CPU starvation of servers and client "
            "alike as much as either server; the 1-stream rows and server CPU per request are "
            "the more robust figures. Rerun on a quiet machine for the latency comparison."
        )

    late = [r for r in rows if r.stream_ratio < 0.5]
    paced = {
        name: max(
            (r for r in rows if r.server == name and r not in late),
            default=None,
            key=lambda r: r.stream_ratio,
        )
        for name in (OURS, PEER)
    }
    if (mine := paced[OURS]) and (theirs := paced[PEER]):
        lines.append(
            "Where the client kept up with the stream (E2E − TTFT at least half its configured "
            f"length), the part after the first token was at most {mine.stream_ratio:.3f}× its "
            f"configured length for {OURS} ({mine.figures.concurrency} streams) and "
            f"{theirs.stream_ratio:.3f}× for {PEER} ({theirs.figures.concurrency} streams)."
        )
    if late:
        listed = ", ".join(f"{r.figures.concurrency} ({r.server})" for r in late)
        lines.append(
            f"In the rows {listed}, E2E − TTFT was under half its configured length: the "
            "client read the first token only after most of the stream had arrived, so those "
            "rows' TTFT and E2E measure the reading side (client and machine), not the "
            "server's pacing."
        )

    def rows_where(test: Callable[[LevelResult], bool]) -> str:
        return ", ".join(f"{r.figures.concurrency} ({r.server})" for r in rows if test(r.figures))

    notes = [
        (
            lambda f: f.bottleneck.startswith("client"),
            "Client-limited rows (the openai client near 100 % of a core per process; they "
            "understate what the server can do)",
        ),
        (lambda f: f.bottleneck.startswith("server"), "Rows where the server saturated its core"),
        (lambda f: f.bottleneck.startswith("machine"), "Rows where all cores were busy"),
        (
            lambda f: f.bottleneck.endswith("noisy neighbour"),
            "Rows during which other processes used ≥ 25 % CPU (rerun on a quiet machine "
            "before trusting them)",
        ),
        (lambda f: f.errors > 0, "Rows with failed streams"),
    ]
    for test, label in notes:
        if listed := rows_where(test):
            lines.append(f"{label}: {listed}.")
    return lines


def command_line() -> str:
    return ".venv/bin/python bench/simulator_vs_guidellm.py " + shlex.join(sys.argv[1:])


def footer(facts: dict[str, str]) -> list[str]:
    return [
        f"- Machine: {facts['nproc']} CPUs ({facts['cpu']}), Python {facts['python']}, "
        f"{facts['platform']}, openai {facts['openai']}",
        f"- Command: `{command_line()}`",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def docs_section(
    rows: list[Row], facts: dict[str, str], settings: Settings, lines: list[str], version: str
) -> str:
    intro = (
        f"parabench's simulator (`python -m harness.simulator`) against GuideLLM {version}'s "
        "`guidellm mock-server` (from PyPI, in a venv of its own), each in its own process on "
        "127.0.0.1 as its command line ships it, driven in turn by the same client "
        "(simulator_throughput's: the official `openai` `AsyncOpenAI`, streaming, one "
        "connection per stream, in a process of its own) with the same request body. Same "
        f"settings for both: model `{MODEL}`, TTFT {settings.ttft_ms:g} ms, ITL "
        f"{settings.itl_ms:g} ms, {settings.output_tokens} output tokens (configured E2E "
        f"{settings.e2e_s:.2f} s), no jitter, one process. GuideLLM sends each token in an SSE "
        "event of its own, then a stop, a usage and a `[DONE]` event, each a separate write; ours "
        "runs with `chunk_tokens` 1, so it also sends one token per event, after an empty role "
        "event at once, with stop, usage and `[DONE]` in the same write as the last token "
        "(events/stream counts what the client parsed). Each worker runs one warm-up stream "
        f"and at least {settings.rounds} measured ones, starts staggered over one E2E. "
        "obs/cfg is observed ÷ configured, measured by the client (E2E − TTFT: the streaming "
        "after the first token, against the configured (tokens − 1) × ITL); CPU is user + "
        "system time as a share of one core; server CPU/req is the server's CPU seconds over "
        "the streams it served (warm-up included; at 1 stream mostly the idle server's own "
        "upkeep and 10 ms clock ticks); RSS is the server's after the level; other "
        "CPU is what the rest of the machine used meanwhile."
    )
    how = (
        "How each keeps time, from their source: ours sleeps until absolute deadlines "
        "(TTFT, then TTFT + k × ITL from the request's start), so time spent writing does not "
        "add up, and tokens whose time has passed (after a late first token) go out at once: "
        "E2E holds, the spacing after a stall does not. GuideLLM sleeps TTFT, then generates "
        "the request's fake text (Faker, seeded afresh per request, before the first token is "
        "sent), then sleeps ITL after each token, so every wake-up's lateness and every write "
        "adds to the rest of the stream: the spacing holds, E2E grows by the lateness. "
        "GuideLLM's RSS is mostly its imports: its command line loads transformers and torch "
        "(about 580 MB before serving anything)."
    )
    return section(
        [
            textwrap.fill(intro, width=100, break_on_hyphens=False),
            "",
            "Each server at each level:",
            "",
            DETAIL_HEADER,
            DETAIL_RULE,
            *(detail_row(r) for r in rows),
            "",
            f"{OURS} / {PEER} (ours ÷ GuideLLM), timing as observed ÷ configured:",
            "",
            VERSUS_HEADER,
            VERSUS_RULE,
            *(versus_row(o, p) for o, p in pairs(rows)),
            "",
            *(f"- {line}" for line in lines),
            f"- {how}",
        ],
        facts,
    )


def skipped_section(why: str, facts: dict[str, str], version: str) -> str:
    sentence = (
        f"Not measured: GuideLLM {version} did not install from PyPI on this machine "
        f"(`pip install guidellm=={version}` ended with: {why}), so there is no peer to compare "
        "the simulator with in this run."
    )
    return section([textwrap.fill(sentence, width=100, break_on_hyphens=False)], facts)


def section(body: list[str], facts: dict[str, str]) -> str:
    """The marked docs section: heading, ``body``, then machine, command and date."""
    heading = "## Simulator vs GuideLLM"
    return "\n".join([START_MARK, heading, "", *body, "", *footer(facts), END_MARK])


# --- the run -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="parabench's simulator against GuideLLM's mock server, same client."
    )
    parser.add_argument(
        "--levels",
        default="1,50,200,400",
        help="comma-separated N[xP]: N concurrent streams over P client processes",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=DOCS_PATH)
    parser.add_argument("--rounds", type=int, default=3, help="measured streams per worker")
    parser.add_argument(
        "--min-samples", type=int, default=10, help="at least this many measured streams a row"
    )
    parser.add_argument("--ttft-ms", type=float, default=500.0)
    parser.add_argument("--itl-ms", type=float, default=100.0)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument(
        "--tolerance", type=float, default=0.02, help="'honours the timing' at 1 stream: within"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=20.0,
        help="seconds to wait, before each row, for the machine to be idle for 2 s (0: no wait)",
    )
    parser.add_argument("--guidellm-version", default="0.8.1", help="pinned peer version")
    parser.add_argument("--peers", type=Path, default=PEERS, help="where peer venvs live")
    args = parser.parse_args(argv)
    try:
        args.levels = [Level.parse(item) for item in args.levels.split(",")]
    except ValueError:
        parser.error(f"--levels: expected N[xP] items, got {args.levels!r}")
    if any(lv.client != "openai" for lv in args.levels):
        parser.error("--levels: only the openai client is compared here (no ':raw')")
    if not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", args.guidellm_version):
        parser.error(f"--guidellm-version: not a version: {args.guidellm_version!r}")
    if (
        not 1 <= args.rounds <= 20
        or not 1 <= args.min_samples <= 200
        or not 1 <= args.output_tokens <= 4096
        or args.ttft_ms <= 0
        or args.itl_ms <= 0
        or any(not 1 <= lv.streams <= 5000 or not 1 <= lv.procs <= 8 for lv in args.levels)
    ):
        parser.error(
            "keep it bounded: 1–20 rounds, 1–200 min samples, 1–4096 output tokens, positive "
            "TTFT and ITL, 1–5000 streams and 1–8 client processes per level"
        )
    return args


def write_outputs(args: argparse.Namespace, payload: dict[str, object], section: str) -> None:
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.write_docs:
        rewrite_section(args.docs, section, START_MARK, END_MARK)
        print(f"updated {args.docs}")


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the finally blocks that stop every process


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    version = args.guidellm_version
    facts = {**machine_facts(), "openai": openai.__version__}
    payload: dict[str, object] = {
        "benchmark": "simulator_vs_guidellm",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": facts,
        "guidellm_version": version,
    }
    why = install_guidellm(version, args.peers)
    if why is not None:
        print(f"GuideLLM {version} did not install, so nothing to compare: {why}")
        print("(exit 0: the docs say why; the simulator's own figures are simulator_throughput's)")
        write_outputs(
            args,
            payload | {"status": "skipped", "reason": why},
            skipped_section(why, facts, version),
        )
        return 0

    settings = Settings(args.ttft_ms, args.itl_ms, args.output_tokens, 1, args.rounds)
    most_procs = max(level.procs for level in args.levels)
    servers: list[Server] = []
    pool = None
    rows: list[Row] = []
    try:
        servers.append(start_ours(settings))
        log_path = args.peers / f"guidellm-{version}.log"
        servers.append(start_guidellm(peer_venv(version, args.peers), settings, log_path))
        for server in servers:
            print(f"{server.name}: pid {server.process.pid} at {server.url}")
        rss = {s.name: {"idle_mb": round(s.rss_mb(), 1)} for s in servers}
        if most_procs > 1:
            pool = multiprocessing.get_context("spawn").Pool(most_procs - 1)
        print(f"configured: TTFT {settings.ttft_ms:g} ms, E2E {settings.e2e_s:.3f} s")
        print(DETAIL_HEADER)
        print(DETAIL_RULE)
        for level in args.levels:
            level_settings = rounds_for(level, settings, args.min_samples)
            for server in servers:
                if args.wait_quiet > 0:
                    busy = wait_for_quiet(args.wait_quiet)
                    if busy > 10:
                        print(f"(the machine is still {busy:.0f} % busy; measuring anyway)")
                row = measure(server, level, level_settings, pool)
                print(detail_row(row), flush=True)
                rows.append(row)
        for server in servers:
            rss[server.name]["peak_mb"] = round(server.peak_rss_mb(), 1)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        for server in servers:
            server.stop()
    print()
    print(VERSUS_HEADER)
    print(VERSUS_RULE)
    for ours, peer in pairs(rows):
        print(versus_row(ours, peer))
    lines = findings(rows, rss, args.tolerance)
    print("\n".join(lines))
    payload |= {
        "status": "measured",
        "settings": asdict(settings) | {"configured_e2e_s": settings.e2e_s},
        "rows": [asdict(r) for r in rows],
        "rss": rss,
        "findings": lines,
    }
    write_outputs(args, payload, docs_section(rows, facts, settings, lines, version))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process this script started has been stopped", file=sys.stderr)
        sys.exit(130)
