"""``parabench load``: run Locust headless against an agent service and summarise the samples.

Locust runs as a child process through its own command line
(``python -m locust -f harness/load/locustfile.py --headless ...``): gevent
monkey-patches the process that imports Locust, and that must never be the
process that called :func:`run_load`. The child writes into the output
directory:

* ``samples.jsonl`` — one raw sample per run (``harness.load.samples``);
* ``locust_stats.csv``, ``locust_failures.csv``, ``locust_exceptions.csv``,
  ``locust_stats_history.csv`` and ``locust.html`` — Locust's own reports;
* ``locust.log`` — Locust's output;

and :func:`run_load` adds ``load_summary.json`` computed from the raw samples.

Example::

    from harness.load import LoadOptions, run_load

    result = run_load(LoadOptions(host="http://127.0.0.1:8000", users=20, duration_s=30))
    print(result.summary["e2e_ms"]["p95"])
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

from harness.errors import ConfigError, ParabenchError
from harness.load.measure import parse_variants
from harness.load.samples import SampleTail, read_samples, summarize_samples
from harness.load.shapes import make_schedule

__all__ = [
    "LOCUSTFILE",
    "LoadOptions",
    "LoadResult",
    "check_host",
    "locust_command",
    "print_summary",
    "run_load",
]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
_STARTUP_GRACE_S = 60.0


@dataclass
class LoadOptions:
    """What to run: the service, the load, the shape and where to write.

    ``variants`` are names, or ``name:weight`` for a weighted mix; equal
    weights take turns. ``shape`` is ``constant`` (``users`` for
    ``duration_s``), ``step`` (``step_users`` more every ``hold_s`` up to
    ``users``) or ``sweep`` (each of ``levels`` for ``hold_s``).
    ``processes`` > 0 runs Locust as a master with that many worker processes
    (``--processes``; -1 = one per CPU). ``expect_workers`` > 0 makes this
    the master of workers started elsewhere (``locust -f LOCUSTFILE --worker
    --master-host THIS_HOST``), listening on ``master_bind_port`` on every
    interface; the test starts when they have all connected (at most
    ``_STARTUP_GRACE_S``). ``stop_timeout_s`` lets runs in
    flight when the test ends finish (Locust's ``--stop-timeout``).
    """

    host: str
    scenario: str = "research_assistant"
    variants: Sequence[str] = ("parallel",)
    users: int = 10
    spawn_rate: float | None = None
    duration_s: float | None = 30.0
    shape: str = "constant"
    levels: Sequence[int] | None = None
    hold_s: float | None = None
    step_users: int | None = None
    processes: int = 0
    expect_workers: int = 0
    master_bind_port: int = 5557
    seed: int | None = None
    out_dir: Path | None = None
    stop_timeout_s: float = 30.0
    check_health: bool = True
    extra_locust_args: Sequence[str] = ()


@dataclass
class LoadResult:
    """What a load test produced: its files and the summary of its raw samples."""

    out_dir: Path
    samples_path: Path
    html_path: Path
    csv_prefix: Path
    log_path: Path
    summary_path: Path
    summary: dict[str, Any]
    command: list[str] = field(default_factory=list)
    returncode: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0


class LoadProgress:
    """A live line while Locust runs: elapsed and remaining time, runs so far, outcomes."""

    def __init__(self, samples_path: Path, planned_s: float | None, *, enabled: bool) -> None:
        self.tail = SampleTail(samples_path)
        self.planned_s = planned_s
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]load[/]"),
            BarColumn(bar_width=20),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            # A long line wraps instead of squeezing the columns before it.
            TextColumn("{task.description}", table_column=Column(overflow="fold")),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> LoadProgress:
        if self.enabled:
            self._progress.start()
            self._task = self._progress.add_task("starting Locust", total=self.planned_s)
        return self

    def update(self) -> None:
        self.tail.poll()
        if self._task is None:
            return
        elapsed = self._progress.tasks[0].elapsed or 0.0
        completed = min(elapsed, self.planned_s) if self.planned_s else None
        self._progress.update(self._task, completed=completed, description=self.tail.describe())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._progress.stop()


def check_host(host: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with the fix, when nothing healthy answers at ``host``/healthz."""
    import httpx

    from harness.load.measure import auth_headers

    if not host.startswith(("http://", "https://")):
        raise ConfigError(
            f"host '{host}' is not an http(s) URL",
            where="--host",
            fix="give the service's base URL, e.g. http://127.0.0.1:8000",
        )
    url = host.rstrip("/") + "/healthz"
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"nothing answers at {url} ({type(exc).__name__}: {exc})",
            where="--host",
            fix="start the service first (parabench serve), or check the host and port",
        ) from None
    if response.status_code != 200:
        raise ConfigError(
            f"{url} answered HTTP {response.status_code}, not 200",
            where="--host",
            fix="point --host at a running parabench service (parabench serve)",
        )
    # /healthz is open; /v1/* may need the bearer token the load will send.
    api = host.rstrip("/") + "/v1/scenarios"
    try:
        response = httpx.get(api, headers=auth_headers(), timeout=timeout_s)
    except httpx.HTTPError:
        return  # healthy a moment ago: let the load itself report what goes wrong
    if response.status_code == 401:
        sent = "the token in PARABENCH_API_KEY" if auth_headers() else "no token"
        raise ConfigError(
            f"{api} answered 401: the service requires a bearer token, and {sent} was refused",
            where="PARABENCH_API_KEY",
            fix="set PARABENCH_API_KEY to the service's API key",
        )


def _check_variants(scenario: str, variants: Sequence[str]) -> None:
    """Reject a variant the scenario lacks, when the scenario is known here too."""
    from harness.scenario import load_scenario, resolve_scenario_path

    try:
        resolve_scenario_path(scenario)
    except ParabenchError:
        return  # only the service knows this scenario; it will answer for itself
    loaded = load_scenario(scenario)
    for name, _ in parse_variants(list(variants)):
        if name not in loaded.variants:
            raise ConfigError(
                f"scenario '{loaded.name}' has no variant '{name}'",
                where="--variant",
                fix=f"use one of: {', '.join(loaded.variants)}",
            )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def locust_command(options: LoadOptions, out_dir: Path) -> list[str]:
    """The Locust command line that runs this test (also what the docs show)."""
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless",
        "--host", options.host.rstrip("/"),
        "--scenario", options.scenario,
        "--variants", ",".join(options.variants),
        "--shape", options.shape,
        "--users", str(options.users),
        "--samples-dir", str(out_dir),
        "--csv", str(out_dir / "locust"),
        "--csv-full-history",
        "--html", str(out_dir / "locust.html"),
        "--stop-timeout", str(math.ceil(options.stop_timeout_s)),  # whole seconds only
        # 503s and failed runs are findings recorded in the samples, not a crashed test.
        "--exit-code-on-error", "0",
        "--only-summary",
    ]  # fmt: skip
    if options.spawn_rate is not None:
        cmd += ["--spawn-rate", f"{options.spawn_rate:g}"]
    if options.shape == "constant" and options.duration_s is not None:
        cmd += ["--duration", f"{options.duration_s:g}"]
    if options.levels:
        cmd += ["--levels", ",".join(str(level) for level in options.levels)]
    if options.hold_s is not None:
        cmd += ["--hold", f"{options.hold_s:g}"]
    if options.step_users is not None:
        cmd += ["--step-users", str(options.step_users)]
    if options.seed is not None:
        cmd += ["--seed", str(options.seed)]
    if options.expect_workers:
        cmd += ["--master", "--expect-workers", str(options.expect_workers)]
        cmd += ["--master-bind-port", str(options.master_bind_port)]
        cmd += ["--expect-workers-max-wait", str(int(_STARTUP_GRACE_S))]
    elif options.processes:
        # A free port per test, so two tests on one machine do not meet on 5557.
        port = str(_free_port())
        cmd += ["--processes", str(options.processes)]
        # Local workers only: the master listens on loopback, not on every interface.
        cmd += ["--master-bind-host", "127.0.0.1", "--master-bind-port", port]
        cmd += ["--master-host", "127.0.0.1", "--master-port", port]
    return cmd + list(options.extra_locust_args)


def _validate(options: LoadOptions) -> float | None:
    """Check every option before starting anything; return the planned test length."""
    parse_variants(list(options.variants))
    schedule = make_schedule(
        options.shape,
        users=options.users,
        spawn_rate=options.spawn_rate,
        duration_s=options.duration_s,
        levels=options.levels,
        hold_s=options.hold_s,
        step_users=options.step_users,
    )
    if options.expect_workers and options.processes:
        raise ConfigError(
            "both worker processes here and workers elsewhere",
            where="--expect-workers",
            fix="use --processes for one machine, or --expect-workers for workers elsewhere",
        )
    if options.expect_workers < 0:
        raise ConfigError(
            f"{options.expect_workers} expected workers",
            where="--expect-workers",
            fix="give how many workers will connect",
        )
    if options.processes < -1:
        raise ConfigError(
            f"{options.processes} processes",
            where="--processes",
            fix="give a number of worker processes, or -1 for one per CPU",
        )
    if options.stop_timeout_s < 0:
        raise ConfigError(
            "a negative stop timeout", where="--stop-timeout", fix="give seconds, e.g. 30"
        )
    return schedule.total_s


def run_load(options: LoadOptions, *, progress: bool = True) -> LoadResult:
    """Run the load test in a Locust child process; return its files and summary.

    Raises ConfigError (before anything runs) for bad options or a host that
    does not answer ``/healthz``, and ParabenchError when Locust itself fails.
    Ctrl-C stops Locust gracefully and still summarises the runs so far.
    """
    planned_s = _validate(options)
    _check_variants(options.scenario, options.variants)
    if options.check_health:
        check_host(options.host)
    out_dir = Path(
        options.out_dir or Path("reports") / f"load-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path = out_dir / "samples.jsonl"
    samples_path.unlink(missing_ok=True)
    log_path = out_dir / "locust.log"
    cmd = locust_command(options, out_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    interrupted = False
    with log_path.open("w", encoding="utf-8") as log:
        # Its own session: Ctrl-C reaches us, and we forward a polite SIGINT, so
        # Locust drains in-flight runs instead of dying half-way through a file.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            _wait(proc, samples_path, planned_s, options.stop_timeout_s, progress)
        except KeyboardInterrupt:
            interrupted = True
            _stop_locust(proc, options.stop_timeout_s + 30)
        finally:
            if proc.poll() is None:  # anything else went wrong here: never leave Locust behind
                proc.kill()
                proc.wait()
    elapsed_s = time.monotonic() - started
    if proc.returncode not in (0, None) and not interrupted:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise ParabenchError(
            f"Locust exited with status {proc.returncode}:\n    " + "\n    ".join(tail),
            where=str(log_path),
            fix="read the log above; `parabench load --help` lists the options",
        )
    samples = read_samples(samples_path) if samples_path.exists() else []
    summary = summarize_samples(samples)
    summary.update(
        {
            "host": options.host,
            "scenario": options.scenario,
            "shape": options.shape,
            "processes": options.processes,
            "expect_workers": options.expect_workers,
            "elapsed_s": round(elapsed_s, 3),
            "interrupted": interrupted,
            "command": cmd,
        }
    )
    summary_path = out_dir / "load_summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return LoadResult(
        out_dir=out_dir,
        samples_path=samples_path,
        html_path=out_dir / "locust.html",
        csv_prefix=out_dir / "locust",
        log_path=log_path,
        summary_path=summary_path,
        summary=summary,
        command=cmd,
        returncode=proc.returncode or 0,
        interrupted=interrupted,
        elapsed_s=elapsed_s,
    )


def _stop_locust(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Stop Locust: SIGINT (it drains runs in flight and writes its reports), then kill.

    The kill comes after ``timeout_s``, or at once on another Ctrl-C, so Locust
    never outlives the caller.
    """
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()


def _wait(
    proc: subprocess.Popen[bytes],
    samples_path: Path,
    planned_s: float | None,
    stop_timeout_s: float,
    progress: bool,
) -> None:
    """Wait for Locust, showing elapsed time and runs so far; kill it if it overruns."""
    limit_s = None if planned_s is None else planned_s + stop_timeout_s + _STARTUP_GRACE_S
    started = time.monotonic()
    with LoadProgress(samples_path, planned_s, enabled=progress) as shown:
        while proc.poll() is None:
            shown.update()
            if limit_s is not None and time.monotonic() - started > limit_s:
                _stop_locust(proc, 15)
                break
            time.sleep(0.25)
        shown.update()


def print_summary(result: LoadResult, console: Console) -> None:
    """Print a load test's summary (per variant, from the raw samples) and where its files are."""
    from rich.table import Table

    table = Table(title="per variant (client side, ms; from samples.jsonl)")
    columns = ("variant", "runs", "completed", "partial", "failed", "rejected", "error",
               "e2e p50", "e2e p95", "TTFC p50", "TTFC p95", "speed idx p50")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "variant" else "right")

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f}"

    for v in result.summary["variants"]:
        o = v["outcomes"]
        table.add_row(
            v["variant"],
            str(v["runs"]),
            *(str(o[k]) for k in ("completed", "partial", "failed", "rejected", "error")),
            ms(v["e2e_ms"]["p50"]),
            ms(v["e2e_ms"]["p95"]),
            ms(v["ttfc_ms"]["p50"]),
            ms(v["ttfc_ms"]["p95"]),
            ms(v["speed_index_ms"]["p50"]),
        )
    console.print(table)
    console.print(
        f"samples: {result.samples_path}\nsummary: {result.summary_path}\n"
        f"Locust:  {result.html_path}, {result.csv_prefix}_stats.csv, {result.log_path}"
    )
