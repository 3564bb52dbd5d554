"""``parabench demo``: the main job on the embedded default, from servers to report.

Three stages, each announced on the console it is given:

1. **start** — the OpenAI-compatible simulator and the agent service, each on
   a free loopback port, served by uvicorn on background threads of this
   process. The service calls the simulator with the official ``openai``
   client (provider kind ``simulator``) and writes its spans to
   ``OUT/spans.jsonl``.
2. **load** — Locust in a child process (``run_load``): every variant of the
   research scenario, round robin, through a concurrency sweep (each level of
   users for ``duration_s / len(levels)`` seconds), one raw sample per run in
   ``OUT/samples.jsonl``.
3. **report** — the service stops (its spans are flushed), then
   ``harness.report.write_report(OUT)`` writes ``report.html``, ``report.md``
   and ``summary.json``.

Whatever happens, everything started is stopped: the servers are threads of
this process (a hard exit closes their ports too) and ``run_load`` never
leaves Locust behind. A failed or interrupted stage (Ctrl-C, SIGTERM) raises
``StageError`` saying where the outputs collected so far are; they stay on
disk. Example::

    from harness.demo import DemoOptions, run_demo

    result = run_demo(DemoOptions(duration_s=30, levels=(2, 5)))
    print(result.report.html_path, result.report.headline["summary"])
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import ConfigError, ParabenchError, StageError
from harness.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from harness.load import LoadResult
    from harness.report import ReportResult

__all__ = ["DEMO_SCENARIO", "DemoOptions", "DemoResult", "print_demo", "run_demo"]

#: The bundled scenario the demo runs, every variant of it.
DEMO_SCENARIO = "research_assistant"
#: Most users one level may ask for: the demo, service and Locust share this machine.
MAX_USERS = 1000
_MIN_HOLD_S = 1.0
_MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs: ``duration_s`` of load split evenly over the sweep's ``levels``.

    ``time_scale`` multiplies every simulated wait (0.1: the research agent's
    25 s sequential run takes 2.5 s). ``out_dir`` defaults to
    ``reports/demo-<YYYYmmdd-HHMMSS>``.
    """

    out_dir: Path | None = None
    duration_s: float = 90.0
    time_scale: float = 0.1
    levels: tuple[int, ...] = (2, 5, 10)
    seed: int = 0

    @property
    def hold_s(self) -> float:
        """Seconds each level of users is held."""
        return self.duration_s / len(self.levels)

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the option (as ``parabench demo`` spells it) and the fix."""
        if not (math.isfinite(self.time_scale) and 0.001 <= self.time_scale <= 100):
            raise ConfigError(
                f"time scale {self.time_scale:g} is out of range",
                where="--time-scale",
                fix="give a multiplier from 0.001 to 100, e.g. 0.1 (ten times real speed)",
            )
        if not self.levels or any(
            not isinstance(level, int) or not 1 <= level <= MAX_USERS for level in self.levels
        ):
            raise ConfigError(
                f"levels {list(self.levels)} are not user counts from 1 to {MAX_USERS}",
                where="--levels",
                fix="give comma-separated user counts, e.g. --levels 2,5,10",
            )
        least_s = _MIN_HOLD_S * len(self.levels)
        if not (math.isfinite(self.duration_s) and self.duration_s >= least_s):
            raise ConfigError(
                f"{self.duration_s:g} s of load is less than {_MIN_HOLD_S:g} s for each of "
                f"{len(self.levels)} levels",
                where="--duration",
                fix=f"give at least {least_s:g} seconds, or fewer --levels",
            )
        if not 0 <= self.seed <= _MAX_SEED:
            raise ConfigError(
                f"seed {self.seed} is out of range",
                where="--seed",
                fix=f"give a whole number from 0 to {_MAX_SEED}",
            )


@dataclass
class DemoResult:
    """What the demo produced: its files, the servers it used, and the headline numbers.

    ``report`` is ``harness.report.write_report``'s result: the report's
    paths and ``headline`` (per variant, client-side latency from the samples
    and cost per run). ``forks`` holds each parallel fork's row of
    ``harness.analysis.branch_table`` (``ms_saved`` per run at real speed,
    ``extra_cost_usd``, ``usd_per_ms_saved``, ``verdict``, ``reason``).
    """

    out_dir: Path
    spans_path: Path
    samples_path: Path
    service_url: str
    simulator_url: str
    time_scale: float
    value_of_time_usd_per_s: float
    load: LoadResult
    report: ReportResult
    forks: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C meanwhile, so a killed demo stops what it started too."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_timeout_s(scenario: Scenario, time_scale: float) -> float:
    """Time the runs in flight at the end get to finish: twice the slowest variant, plus 2 s."""
    slowest = max(scenario.plan(v).theoretical_makespan_s() for v in scenario.variants)
    return max(5.0, 2 * slowest * time_scale + 2)


def _stage_error(stage: str, exc: BaseException, out_dir: Path, *, interrupted: bool) -> StageError:
    """The error for a stage that failed or was interrupted, naming what was collected."""
    names = ("spans.jsonl", "samples.jsonl", "locust.log")
    kept = [n for n in names if (out_dir / n).is_file() and (out_dir / n).stat().st_size > 0]
    collected = (
        f"what was collected is in {out_dir}: {', '.join(kept)}"
        if kept
        else f"nothing was collected yet ({out_dir})"
    )
    if interrupted:
        reportable = {"spans.jsonl", "samples.jsonl"} & set(kept)
        then = f"; `parabench report {out_dir}` reports on it" if reportable else ""
        return StageError(
            f"interrupted during the {stage} stage", stage=stage, interrupted=True,
            fix=collected + then,
        )  # fmt: skip
    if isinstance(exc, ParabenchError):
        cause = f"{exc.where}: {exc.what}" if exc.where else exc.what
        fix = f"{exc.fix}; {collected}" if exc.fix else collected
    else:
        cause, fix = f"{type(exc).__name__}: {exc}", collected
    return StageError(f"the {stage} stage failed: {cause}", stage=stage, fix=fix)


def run_demo(options: DemoOptions | None = None, *, console: Console | None = None) -> DemoResult:
    """Start the simulator and the service, load them with Locust, write the report.

    ``console`` (stderr, typically) shows the stages and a live load line;
    None runs silently. Raises ``ConfigError`` for bad options before
    anything starts, ``StageError`` when a stage fails or is interrupted
    (everything started is stopped first).
    """
    from harness.load import LoadOptions, run_load
    from harness.providers.config import ProviderConfig
    from harness.service import ServiceConfig, ServiceServer

    options = options or DemoOptions()
    options.validate()
    scenario = load_scenario(DEMO_SCENARIO)
    out_dir = Path(
        options.out_dir or Path("reports") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    spans_path = out_dir / "spans.jsonl"
    spans_path.unlink(missing_ok=True)  # the telemetry appends; a rerun starts afresh
    say = console.print if console is not None else (lambda *_a, **_k: None)
    started = time.monotonic()
    stage = "start"
    try:
        with _sigterm_as_interrupt(), contextlib.ExitStack() as running:
            say(f"[bold]parabench demo[/] → {escape(str(out_dir))}")
            say("[bold][1/3][/] starting the simulator and the service …")
            service = ServiceServer(
                ServiceConfig(
                    port=0,
                    scenarios=(DEMO_SCENARIO,),
                    provider=ProviderConfig(kind="simulator"),
                    time_scale=options.time_scale,
                    spans_path=spans_path,
                    seed=options.seed,
                )
            )
            running.callback(service.stop)  # before start(): a half-started server stops too
            service.start()
            service_url, simulator_url = service.url, service.state.simulator_url or ""
            say(
                f"      simulator {simulator_url} · service {service_url} · "
                f"time scale {options.time_scale:g}"
            )
            stage = "load"
            say(
                f"[bold][2/3][/] load: {scenario.name} {', '.join(scenario.variants)}; "
                f"{' → '.join(map(str, options.levels))} users, {options.hold_s:g} s each"
            )
            load = run_load(
                LoadOptions(
                    host=service_url,
                    scenario=scenario.name,
                    variants=tuple(scenario.variants),
                    users=max(options.levels),
                    shape="sweep",
                    levels=options.levels,
                    hold_s=options.hold_s,
                    seed=options.seed,
                    out_dir=out_dir,
                    stop_timeout_s=_stop_timeout_s(scenario, options.time_scale),
                ),
                progress=console is not None,
            )
            if load.interrupted:
                raise KeyboardInterrupt
            stage = "report"
            running.close()  # stop the service first: it flushes its spans
        say("[bold][3/3][/] analysing and writing the report …")
        from harness.report import write_report

        report = write_report(out_dir)
        forks = _fork_verdicts(spans_path)
    except KeyboardInterrupt as exc:
        raise _stage_error(stage, exc, out_dir, interrupted=True) from None
    except Exception as exc:
        raise _stage_error(stage, exc, out_dir, interrupted=False) from exc
    return DemoResult(
        out_dir=out_dir,
        spans_path=spans_path,
        samples_path=load.samples_path,
        service_url=service_url,
        simulator_url=simulator_url,
        time_scale=options.time_scale,
        value_of_time_usd_per_s=scenario.value_of_time_usd_per_s,
        load=load,
        report=report,
        forks=forks,
        elapsed_s=time.monotonic() - started,
    )


def _fork_verdicts(spans_path: Path) -> list[dict[str, Any]]:
    """Each parallel fork's ms saved, extra cost and verdict, from the service's spans."""
    from harness.analysis import branch_table, read_spans, runs_table, steps_table

    spans, _ = read_spans(spans_path)
    runs = runs_table(spans)
    if runs.empty:
        return []
    forks = branch_table(steps_table(spans, runs), runs, None).forks
    return [dict(row) for row in forks.to_dict(orient="records")]


def _num(value: Any, spec: str, scale: float = 1.0) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return format(value / scale, spec)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def print_demo(result: DemoResult, console: Console) -> None:
    """Print what the report's headline leaves out: each fork's verdict, and the files."""
    from rich import box

    value = f"${result.value_of_time_usd_per_s:g}"
    for fork in dict.fromkeys(f["fork"] for f in result.forks):  # one table per fork, in order
        forks = Table(
            title=f"parallel branches {escape(str(fork))} — worth it below {value} per s saved",
            box=box.SIMPLE_HEAD,
        )
        for col in ("variant", "s saved/run", "extra $/run", "$/ms saved", "verdict"):
            forks.add_column(col, justify="right" if "/" in col else "left", no_wrap=True)
        for f in (f for f in result.forks if f["fork"] == fork):
            forks.add_row(
                f["variant"],
                _num(f["ms_saved"], ".2f", 1000),
                _num(f["extra_cost_usd"], ".4f"),
                _num(f["usd_per_ms_saved"], ".3g"),
                str(f["verdict"]).replace("_", " "),
            )
        console.print(forks)
    report = result.report
    raw = ", ".join(map(str, (result.spans_path, result.samples_path, result.load.html_path)))
    console.print(
        escape(
            f"report:  {report.html_path}\n"
            f"         {report.markdown_path}\n"
            f"summary: {report.summary_path}\n"
            f"raw:     {raw}\n"
            f"took {_duration(result.elapsed_s)}"
        ),
        highlight=False,
        soft_wrap=True,
    )
