"""How many concurrent streams the simulator serves with its configured timing intact.

Not a test: a benchmark to run by hand (or in a scheduled job) on the machine
whose numbers you want::

    .venv/bin/python bench/simulator_throughput.py --json bench/results/simulator.json --write-docs

The simulator runs in its own process (``python -m harness.simulator``), so it
does not share a GIL with the client. The client is the official ``openai``
``AsyncOpenAI`` (one client, its connection limit raised to the level, no
retries). At each concurrency level N, N workers each run one warm-up stream,
then ``--rounds`` measured streams back to back, their starts staggered over
one configured answer so requests arrive at a steady N / E2E per second rather
than in bursts. Every stream asks for the same fixed profile (no jitter, no
prefill), so the configured TTFT and E2E are exact and the observed /
configured ratio is the overhead of serving (and consuming) N streams.

Throughput (requests/s, chunks/s) counts the streams that finished while all
N workers were past their warm-up and none had finished: the window in which
exactly N streams were open. CPU is user + system time of each process as a
share of one core (psutil for the simulator, the process's own clock for each
client); one Python event loop saturates at about 100 %, which is how the
output names the bottleneck; "other CPU" is everything else the machine ran
meanwhile (a busy neighbour makes a row unreliable, and the output says so).

Levels are ``N[xP][:raw]``: N streams, over P client processes (default 1),
with the ``openai`` client or, as a control, ``raw`` (hand-written HTTP/1.1 that
only counts SSE events). The default runs 50, 200 and 1,000 streams with one
``openai`` client process, then 1,000 with two, then 1,000 with the control,
so a client-side limit can be told from a simulator-side one.

The target is the simulator's: at the top level, median E2E within
``--target`` (5 %) of the configured value in at least one row, which on a
small machine may only be the control client's. The script exits 1 when no row
meets it (after writing the JSON and the docs), 2 on a usage error.

Where the ``openai`` client's CPU goes (profiled on 2 cores, openai 3.57 with
httpx2): building a pydantic model per SSE chunk, and httpcore2's connection
pool, which scans every open connection (a ``getpeername`` and a ``poll`` each)
whenever a request is assigned or a response closes, so its cost per request
grows with the number of open connections. About 6–7 ms of CPU per 17-chunk
stream at 1,000 connections: one Python process drives about 150 streams/s,
fewer than the 400/s that 1,000 streams of 2.49 s need.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import os
import queue
import shlex
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx2
import openai
import psutil
from _docs import DOCS_PATH, marks, rewrite_section
from _machine import machine_facts

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench-model"
START_MARK, END_MARK = marks("simulator-throughput")


@dataclass(frozen=True, slots=True)
class Settings:
    """What one benchmark run asks of every stream (picklable for client processes)."""

    ttft_ms: float
    itl_ms: float
    output_tokens: int
    chunk_tokens: int
    rounds: int

    @property
    def e2e_s(self) -> float:
        return (self.ttft_ms + self.itl_ms * (self.output_tokens - 1)) / 1000


@dataclass(frozen=True, slots=True)
class Level:
    """One row: N streams over P client processes, with the openai client or the raw one."""

    streams: int
    procs: int = 1
    client: str = "openai"  # or "raw", the control client

    @classmethod
    def parse(cls, text: str) -> Level:
        """``1000``, ``1000x2`` (two client processes), ``1000:raw`` (the control client)."""
        spec, _, client = text.partition(":")
        streams, _, procs = spec.partition("x")
        return cls(int(streams), int(procs or 1), client or "openai")


@dataclass(slots=True)
class ShardResult:
    """What one client process measured at one level (times on the shared monotonic clock)."""

    samples: list[tuple[float, float, float, int, bool]]  # see Record
    errors: int
    warm_done_s: float  # the last worker's end of warm-up
    first_done_s: float  # the first worker's end of all rounds
    cpu_s: float


@dataclass(slots=True)
class LevelResult:
    """The figures of one concurrency level."""

    concurrency: int
    client_procs: int
    client: str
    requests: int
    errors: int
    window_s: float
    requests_per_s: float
    chunks_per_s: float
    median_ttft_s: float
    median_e2e_s: float
    p95_e2e_s: float
    ttft_ratio: float
    e2e_ratio: float
    server_cpu_pct: float
    client_cpu_pct: float
    other_cpu_pct: float
    bottleneck: str


def start_simulator(settings: Settings) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m harness.simulator`` with the fixed profile; return it and its URL."""
    config = {
        "time_scale": 1.0,
        "chunk_tokens": settings.chunk_tokens,
        "profiles": {
            MODEL: {
                "ttft_ms": settings.ttft_ms,
                "itl_ms": settings.itl_ms,
                "prefill_ms_per_1k_input": 0,
                "jitter_sigma": 0,
            }
        },
    }
    command = [sys.executable, "-m", "harness.simulator", "--config", json.dumps(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=30)
    except queue.Empty:
        process.kill()
        raise SystemExit("the simulator did not print its URL within 30 s") from None
    if "http://" not in line:
        process.kill()
        raise SystemExit(f"unexpected simulator output: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


Record = tuple[float, float, float, int, bool]  # started, TTFT, ended, chunks, warm-up


async def stream_openai(client: openai.AsyncOpenAI, settings: Settings, warmup: bool) -> Record:
    """One streamed request through the official client."""
    started = time.perf_counter()
    ttft = -1.0
    chunks = 0
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "benchmark"}],
        max_tokens=settings.output_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        chunks += 1
        if ttft < 0 and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - started
    return started, ttft, time.perf_counter(), chunks, warmup


class RawStream:
    """The control client: hand-written HTTP/1.1 on one keep-alive connection, no parsing.

    It does the least a client can (write a prepared request, read chunked SSE,
    spot the first non-empty content), so the simulator's own limits show.
    """

    def __init__(self, url: str, settings: Settings) -> None:
        parsed = httpx2.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        body = json.dumps(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "benchmark"}],
                "max_tokens": settings.output_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        head = (
            f"POST {parsed.path.rstrip('/')}/chat/completions HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def once(self, warmup: bool) -> Record:
        started = time.perf_counter()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        ttft = -1.0
        chunks = 0
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks += data.count(b"data: ")
            if ttft < 0 and b'"content":"' in data.replace(b'"content":""', b""):
                ttft = time.perf_counter() - started
        return started, ttft, time.perf_counter(), chunks, warmup

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def drive(
    url: str,
    indices: list[int],
    level: Level,
    settings: Settings,
    start_at: float,
) -> ShardResult:
    """Run the workers ``indices`` of a level from ``start_at`` (perf_counter) on."""
    samples: list[Record] = []
    errors = 0
    warm_done: list[float] = []
    all_done: list[float] = []
    e2e_s = settings.e2e_s
    limits = httpx2.Limits(max_connections=len(indices), max_keepalive_connections=len(indices))
    http_client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=120)
    client = openai.AsyncOpenAI(
        base_url=url, api_key="bench", max_retries=0, http_client=http_client
    )

    async def worker(index: int) -> None:
        nonlocal errors
        raw = RawStream(url, settings) if level.client == "raw" else None
        # Staggered over one E2E: a steady arrival rate rather than bursts.
        await asyncio.sleep(max(start_at + e2e_s * index / level.streams - time.perf_counter(), 0))
        for round_index in range(settings.rounds + 1):
            warmup = round_index == 0
            try:
                if raw is not None:
                    samples.append(await raw.once(warmup))
                else:
                    samples.append(await stream_openai(client, settings, warmup))
            except (openai.OpenAIError, OSError, ValueError, asyncio.IncompleteReadError):
                errors += 1
            if warmup:
                warm_done.append(time.perf_counter())
        all_done.append(time.perf_counter())
        if raw is not None:
            await raw.aclose()

    async with client:
        await asyncio.sleep(max(start_at - time.perf_counter(), 0))
        cpu_before = time.process_time()
        budget = e2e_s * (settings.rounds + 2) * 4 + 60  # bounded even if something stalls
        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in indices)), budget)
        cpu_s = time.process_time() - cpu_before
    return ShardResult(samples, errors, max(warm_done), min(all_done), cpu_s)


def drive_in_process(
    url: str, indices: list[int], level: Level, settings: Settings, start_at: float
) -> ShardResult:
    """Entry point of a client process (perf_counter is CLOCK_MONOTONIC: shared by processes)."""
    return asyncio.run(drive(url, indices, level, settings, start_at))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def machine_busy_seconds() -> float:
    """CPU seconds all processes used so far, summed over cores (idle and iowait excluded)."""
    times = psutil.cpu_times()
    # guest time is already inside user time on Linux.
    idle = sum(getattr(times, name, 0.0) for name in ("idle", "iowait", "guest", "guest_nice"))
    return float(sum(times) - idle)


def wait_for_quiet(limit_s: float, threshold_pct: float = 10.0) -> float:
    """Wait (up to ``limit_s``) until the machine is idle for 2 s; return the last busy %."""
    deadline = time.monotonic() + limit_s
    while True:
        before = machine_busy_seconds()
        time.sleep(2.0)
        busy = 100 * (machine_busy_seconds() - before) / 2.0
        if busy <= threshold_pct or time.monotonic() >= deadline:
            return busy


def run_level(
    url: str,
    server: psutil.Process,
    level: Level,
    settings: Settings,
    pool: concurrent.futures.ProcessPoolExecutor | None,
) -> LevelResult:
    """Drive one level with its client processes (1: in this process) and summarise it."""
    shards = [list(range(p, level.streams, level.procs)) for p in range(level.procs)]
    inline = level.procs == 1 or pool is None
    # Client processes need a moment to import openai before the common start.
    start_at = time.perf_counter() + (0.2 if inline else 3.0)
    futures = []
    if not inline:
        assert pool is not None
        futures = [
            pool.submit(drive_in_process, url, shard, level, settings, start_at) for shard in shards
        ]
    time.sleep(max(start_at - time.perf_counter(), 0))
    server_before = cpu_seconds(server)
    busy_before = machine_busy_seconds()
    if inline:
        results = [drive_in_process(url, shards[0], level, settings, start_at)]
    else:
        results = [future.result() for future in futures]
    wall = time.perf_counter() - start_at
    server_cpu = 100 * (cpu_seconds(server) - server_before) / wall
    client_cpu = 100 * sum(r.cpu_s for r in results) / wall
    busy = 100 * (machine_busy_seconds() - busy_before) / wall
    # Everything else on the machine: other people's jobs, the kernel's own threads.
    other_cpu = max(busy - server_cpu - client_cpu, 0.0)
    samples = [s for r in results for s in r.samples if not s[4]]
    window = (max(r.warm_done_s for r in results), min(r.first_done_s for r in results))
    errors = sum(r.errors for r in results)
    cpu = (server_cpu, client_cpu, other_cpu)
    return summarise(level, samples, errors, window, cpu, settings)


def summarise(
    level: Level,
    samples: list[tuple[float, float, float, int, bool]],
    errors: int,
    window: tuple[float, float],
    cpu: tuple[float, float, float],
    settings: Settings,
) -> LevelResult:
    ttft_cfg = settings.ttft_ms / 1000
    start, end = window
    window_s = max(end - start, 1e-9)
    in_window = [s for s in samples if start <= s[2] <= end]
    e2es = sorted(ended - started for started, _, ended, _, _ in samples)
    median_ttft = statistics.median(s[1] for s in samples)
    median_e2e = statistics.median(e2es)
    server_cpu, client_cpu, other_cpu = cpu
    # A client process saturates at one core; the simulator likewise.
    cores = os.cpu_count() or 1
    if client_cpu >= 85 * level.procs and client_cpu / level.procs >= server_cpu:
        bottleneck = "client"
    elif server_cpu >= 85:
        bottleneck = "simulator"
    elif client_cpu + server_cpu + other_cpu >= 85 * cores:
        bottleneck = "machine (all cores busy)"
    else:
        bottleneck = "neither"
    if other_cpu >= 25:
        bottleneck += "; noisy neighbour"
    return LevelResult(
        concurrency=level.streams,
        client_procs=level.procs,
        client=level.client,
        requests=len(samples),
        errors=errors,
        window_s=round(window_s, 3),
        requests_per_s=round(len(in_window) / window_s, 1),
        chunks_per_s=round(sum(s[3] for s in in_window) / window_s, 0),
        median_ttft_s=round(median_ttft, 4),
        median_e2e_s=round(median_e2e, 4),
        p95_e2e_s=round(e2es[int(0.95 * (len(e2es) - 1))], 4),
        ttft_ratio=round(median_ttft / ttft_cfg, 4),
        e2e_ratio=round(median_e2e / settings.e2e_s, 4),
        server_cpu_pct=round(server_cpu, 1),
        client_cpu_pct=round(client_cpu, 1),
        other_cpu_pct=round(other_cpu, 1),
        bottleneck=bottleneck,
    )


HEADER = (
    "| streams | client × procs | req/s | chunks/s | median TTFT (obs/cfg) "
    "| median E2E (obs/cfg) | p95 E2E | errors | simulator CPU | client CPU | other CPU "
    "| bottleneck |"
)
RULE = "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"


def table_row(r: LevelResult) -> str:
    return (
        f"| {r.concurrency} | {r.client} × {r.client_procs} "
        f"| {r.requests_per_s:.1f} | {r.chunks_per_s:.0f} "
        f"| {r.median_ttft_s * 1000:.0f} ms ({r.ttft_ratio:.3f}) "
        f"| {r.median_e2e_s:.3f} s ({r.e2e_ratio:.3f}) | {r.p95_e2e_s:.3f} s | {r.errors} "
        f"| {r.server_cpu_pct:.0f} % | {r.client_cpu_pct:.0f} % | {r.other_cpu_pct:.0f} % "
        f"| {r.bottleneck} |"
    )


def verdict(results: list[LevelResult], target: float) -> list[str]:
    """Plain sentences: was the target met at the top level, and what limited each row."""
    top = max(r.concurrency for r in results)
    lines = []
    for r in results:
        if r.concurrency == top:
            meets = abs(r.e2e_ratio - 1) <= target
            lines.append(
                f"{top} streams, {r.client} × {r.client_procs}: observed median E2E "
                f"{r.e2e_ratio:.3f}× the configured one, target (within {target:.0%}) "
                f"{'met' if meets else 'NOT met'}."
            )
    busiest = max(results, key=lambda r: r.requests_per_s)
    if busiest.requests_per_s > 0:
        per_request_ms = 10 * busiest.server_cpu_pct / busiest.requests_per_s
        lines.append(
            f"The simulator spends about {per_request_ms:.1f} ms of CPU per streamed request "
            f"({busiest.requests_per_s:.0f} req/s at {busiest.server_cpu_pct:.0f} % of a core), "
            f"so one core serves about {1000 / per_request_ms:.0f} requests/s."
        )
    for r in results:
        if r.concurrency == top and r.requests_per_s > 0:
            client_ms = 10 * r.client_cpu_pct / r.requests_per_s
            lines.append(
                f"The {r.client} client × {r.client_procs} spent about {client_ms:.1f} ms of CPU "
                "per streamed request."
            )
    for r in results:
        where = f"{r.concurrency} streams, {r.client} × {r.client_procs}:"
        if r.bottleneck.startswith("client"):
            lines.append(
                f"{where} the client was the bottleneck ({r.client_cpu_pct:.0f} % CPU in "
                f"{r.client_procs} process(es), the simulator {r.server_cpu_pct:.0f} %)."
            )
        elif r.bottleneck.startswith("simulator"):
            lines.append(f"{where} the simulator was the bottleneck ({r.server_cpu_pct:.0f} %).")
        elif r.bottleneck.startswith("machine"):
            lines.append(
                f"{where} all cores were busy (client {r.client_cpu_pct:.0f} % + simulator "
                f"{r.server_cpu_pct:.0f} % + other processes {r.other_cpu_pct:.0f} %)."
            )
        if r.bottleneck.endswith("noisy neighbour"):
            lines.append(
                f"{where} other processes used {r.other_cpu_pct:.0f} % CPU meanwhile; rerun on "
                "a quiet machine before trusting this row's ratios."
            )
    return lines


def docs_section(
    results: list[LevelResult], facts: dict[str, str], settings: Settings, findings: list[str]
) -> str:
    command = ".venv/bin/python bench/simulator_throughput.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    intro = (
        "The OpenAI-compatible simulator (`harness/simulator`) in its own process, driven by "
        "the official `openai` `AsyncOpenAI` client (one per client process, one connection "
        f"per stream). Every stream: TTFT {settings.ttft_ms:g} ms, ITL {settings.itl_ms:g} ms, "
        f"{settings.output_tokens} output tokens in chunks of {settings.chunk_tokens} "
        f"(configured E2E {settings.e2e_s:.2f} s), no jitter, `time_scale` 1.0. Each worker "
        f"runs one warm-up stream and {settings.rounds} measured ones, starts staggered over "
        "one E2E. Ratios are observed / configured medians, measured by the client; CPU is "
        "user + system time as a share of one core (100 % = one core saturated); other CPU is "
        "what the rest of the machine used meanwhile. `raw` rows use a minimal hand-written "
        "HTTP client instead of `openai`, as a control for the client's own cost."
    )
    return "\n".join(
        [
            START_MARK,
            "## Simulator throughput",
            "",
            textwrap.fill(intro, width=100),
            "",
            HEADER,
            RULE,
            *(table_row(r) for r in results),
            "",
            *(f"- {line}" for line in findings),
            "",
            f"- Machine: {facts['nproc']} CPUs ({facts['cpu']}), "
            f"Python {facts['python']}, {facts['platform']}, openai {facts['openai']}",
            f"- Command: `{command}`",
            f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            END_MARK,
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simulator throughput at N concurrent streams.")
    parser.add_argument(
        "--levels",
        default="50,200,1000,1000x2,1000:raw",
        help="comma-separated N[xP][:raw]: N streams over P client processes; ':raw' uses "
        "the minimal control client instead of openai",
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured streams per worker")
    parser.add_argument("--ttft-ms", type=float, default=500.0)
    parser.add_argument("--itl-ms", type=float, default=10.0)
    parser.add_argument("--output-tokens", type=int, default=200)
    parser.add_argument("--chunk-tokens", type=int, default=16)
    parser.add_argument("--target", type=float, default=0.05, help="allowed E2E ratio error")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each level, wait up to this many seconds for other load to stop (0: no)",
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=DOCS_PATH)
    args = parser.parse_args(argv)
    try:
        levels = [Level.parse(item) for item in args.levels.split(",")]
    except ValueError:
        parser.error(f"--levels: expected N[xP][:raw] items, got {args.levels!r}")
    args.levels = levels
    if not 1 <= args.rounds <= 20 or any(
        not 1 <= lv.streams <= 5000 or not 1 <= lv.procs <= 8 or lv.client not in ("openai", "raw")
        for lv in levels
    ):
        parser.error("keep it bounded: 1–20 rounds, 1–5000 streams and 1–8 processes per level")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(
        args.ttft_ms, args.itl_ms, args.output_tokens, args.chunk_tokens, args.rounds
    )
    facts = {**machine_facts(), "openai": openai.__version__}
    process, url = start_simulator(settings)
    print(f"simulator pid {process.pid} at {url}; {facts['nproc']} CPUs ({facts['cpu']})")
    server = psutil.Process(process.pid)
    most_procs = max(level.procs for level in args.levels)
    pool = None
    if most_procs > 1:
        context = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(most_procs, mp_context=context)
    results: list[LevelResult] = []
    try:
        print(HEADER)
        print(RULE)
        for level in args.levels:
            if args.wait_quiet > 0:
                busy = wait_for_quiet(args.wait_quiet)
                if busy > 10:
                    print(f"(the machine is still {busy:.0f} % busy; measuring anyway)")
            result = run_level(url, server, level, settings, pool)
            print(table_row(result), flush=True)
            results.append(result)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    findings = verdict(results, args.target)
    print("\n".join(findings))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "benchmark": "simulator_throughput",
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": facts,
            "settings": asdict(settings) | {"configured_e2e_s": settings.e2e_s},
            "levels": [asdict(r) for r in results],
            "findings": findings,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.write_docs:
        rewrite_section(
            args.docs, docs_section(results, facts, settings, findings), START_MARK, END_MARK
        )
        print(f"updated {args.docs}")
    top = max(r.concurrency for r in results)
    met = any(abs(r.e2e_ratio - 1) <= args.target for r in results if r.concurrency == top)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
