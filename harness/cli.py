"""The ``parabench`` command line."""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import ParabenchError

app = typer.Typer(
    name="parabench",
    help="Measure where an AI agent's time goes, what running its steps in parallel saves, "
    "and what each parallel branch costs per millisecond saved.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _print_error(exc: ParabenchError) -> None:
    # The message quotes user input, which may look like rich markup: print it verbatim.
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)


def _fail(exc: ParabenchError) -> None:
    _print_error(exc)
    raise typer.Exit(exc.exit_code)


def _default_out(prefix: str) -> Path:
    return Path("reports") / f"{prefix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


@app.command()
def demo(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: reports/demo-<time>)."),
    ] = None,
    duration: Annotated[
        float, typer.Option("--duration", "-t", help="Seconds of load, split over the levels.")
    ] = 90.0,
    time_scale: Annotated[
        float,
        typer.Option("--time-scale", help="Multiplier on every simulated wait (0.1: 10× faster)."),
    ] = 0.1,
    levels: Annotated[
        str, typer.Option(help="Users at each step of the concurrency sweep, e.g. 2,5,10.")
    ] = "2,5,10",
    seed: Annotated[int, typer.Option(help="Seed of every run's draws.")] = 0,
) -> None:
    """The main job: simulator + service + a Locust load of every variant, then the report."""
    from harness.demo import DemoOptions, print_demo, run_demo
    from harness.load.shapes import parse_levels

    try:
        options = DemoOptions(
            out_dir=out,
            duration_s=duration,
            time_scale=time_scale,
            levels=parse_levels(levels),
            seed=seed,
        )
        result = run_demo(options, console=err_console)
    except ParabenchError as exc:
        _fail(exc)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one was being handled
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        raise typer.Exit(130) from None
    _print_headline(result.report.headline)
    print_demo(result, console if console.is_terminal else Console(width=120))


@app.command()
def validate(
    scenarios: Annotated[list[str], typer.Argument(help="Scenario files or bundled names.")],
) -> None:
    """Check scenario files; print each variant's theoretical makespan and cost."""
    from harness.scenario import load_scenario

    try:
        for name in scenarios:
            scenario = load_scenario(name)
            table = Table(title=f"{scenario.name} ({scenario.source})")
            for col in ("variant", "mode", "cap", "steps", "theory makespan s", "cost/run USD"):
                table.add_column(col, justify="right" if col != "variant" else "left")
            for variant in scenario.variants:
                plan = scenario.plan(variant)
                cost = sum(plan.expected_cost_usd(s) for s in plan.steps)
                table.add_row(
                    variant,
                    plan.mode,
                    str(plan.max_concurrency or "∞"),
                    str(len(plan.steps)),
                    f"{plan.theoretical_makespan_s():.2f}",
                    f"{cost:.4f}",
                )
            console.print(table)
    except ParabenchError as exc:
        _fail(exc)


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or a bundled name.")],
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", "-v", help="Variant to run (repeatable; default: all)."),
    ] = None,
    runs: Annotated[int, typer.Option("--runs", "-n", min=1, help="Runs per variant.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            min=1e-4,
            max=100.0,
            help="Multiply every simulated wait (0.01: a 25 s run takes 0.25 s).",
        ),
    ] = 1.0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Runs in flight at once.")
    ] = 1,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: reports/run-<time>)."),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            help="simulated (in process; the default), simulator (built-in HTTP simulator on "
            "loopback, official openai client) or openai (OPENAI_BASE_URL / --base-url, "
            "OPENAI_API_KEY). Overrides the scenario's provider: block."
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL (with --provider openai).")
    ] = None,
    max_in_flight: Annotated[
        int | None, typer.Option(min=1, help="Client-side cap on LLM calls in flight.")
    ] = None,
    rpm: Annotated[
        float | None, typer.Option(min=0.001, help="Client-side requests-per-minute budget.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.001, help="Per-attempt timeout of HTTP LLM calls, s (default 60)."),
    ] = None,
) -> None:
    """Run a scenario in process; write DIR/spans.jsonl and DIR/summary.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from harness.providers.config import ProviderConfig, open_provider
    from harness.runner import run_batch
    from harness.scenario import load_scenario

    stack = contextlib.ExitStack()
    try:
        loaded = load_scenario(scenario)
        chosen = list(variant or loaded.variants)
        for v in chosen:
            if v not in loaded.variants:
                raise ParabenchError(
                    f"scenario '{loaded.name}' has no variant '{v}'",
                    where="--variant",
                    fix=f"use one of: {', '.join(loaded.variants)}",
                )
        if provider not in (None, "simulated", "simulator", "openai"):
            raise ParabenchError(
                f"unknown provider '{provider}'",
                where="--provider",
                fix="use simulated, simulator or openai",
            )
        # Command-line values win over the scenario's provider: block.
        flags = {
            "kind": provider,
            "base_url": base_url,
            "timeout_s": timeout,
            "max_in_flight": max_in_flight,
            "rpm_limit": rpm,
        }
        base = loaded.provider or ProviderConfig()
        if provider is not None and provider != base.kind:
            base = ProviderConfig()  # another kind of provider: the scenario's settings do not fit
        provider_config = ProviderConfig.model_validate(
            {**base.model_dump(), **{k: v for k, v in flags.items() if v is not None}}
        )
        llm = stack.enter_context(open_provider(provider_config, loaded, time_scale=time_scale))
    except ParabenchError as exc:
        stack.close()
        _fail(exc)
    out_dir = out or _default_out("run")
    total = runs * len(chosen)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    with progress:
        task = progress.add_task(f"{loaded.name}: {', '.join(chosen)}", total=total)
        try:
            batch = run_batch(
                loaded,
                variants=chosen,
                runs=runs,
                out_dir=out_dir,
                seed=seed,
                time_scale=time_scale,
                concurrency=concurrency,
                provider=llm,
                on_done=lambda _r: progress.advance(task),
            )
        finally:
            stack.close()
    _print_summary(batch.summary)
    console.print(f"spans:   {batch.spans_path}\nsummary: {batch.summary_path}")
    if batch.interrupted:
        err_console.print("[yellow]interrupted:[/] the summary covers the runs that finished")
        raise typer.Exit(130)


@app.command()
def simulator(
    config: Annotated[
        str | None, typer.Option(help="SimulatorConfig as inline JSON or a JSON file.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: a free one).")] = 8001,
    time_scale: Annotated[
        float | None, typer.Option("--time-scale", min=0.0, help="Multiplier on every sleep.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of fault draws.")] = None,
    rpm_limit: Annotated[
        float | None, typer.Option("--rpm", min=0.001, help="Requests per minute per model.")
    ] = None,
    tpm_limit: Annotated[
        float | None, typer.Option("--tpm", min=0.001, help="Tokens per minute per model.")
    ] = None,
    error_rate: Annotated[
        float | None, typer.Option("--error-rate", min=0.0, max=1.0, help="Share answered 500.")
    ] = None,
    disconnect_rate: Annotated[
        float | None,
        typer.Option("--disconnect-rate", min=0.0, max=1.0, help="Share dropped mid-answer."),
    ] = None,
) -> None:
    """Serve the OpenAI-compatible simulated LLM provider (loopback by default)."""
    import os

    from harness.simulator import load_config, run_simulator

    try:
        sim_config = load_config(
            config,
            host=host,
            port=port,
            time_scale=time_scale,
            seed=seed,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
            error_500_rate=error_rate,
            disconnect_rate=disconnect_rate,
            api_key=os.environ.get("PARABENCH_SIMULATOR_API_KEY") or None,
        )
        run_simulator(sim_config)
    except ParabenchError as exc:
        _fail(exc)


@app.command()
def serve(
    config: Annotated[
        str | None, typer.Option(help="ServiceConfig as inline JSON or a JSON file.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="TCP port (8000).")] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="Scenario to serve (repeatable; default: bundled)."),
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="simulated (default), simulator or openai.")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="Endpoint for --provider openai.")] = None,
    time_scale: Annotated[
        float | None, typer.Option("--time-scale", min=1e-4, help="Multiplier on every wait.")
    ] = None,
    spans: Annotated[
        Path | None, typer.Option(help="Write spans here (default: reports/serve-<time>/).")
    ] = None,
    no_spans: Annotated[bool, typer.Option("--no-spans", help="Write no span file.")] = False,
    max_in_flight: Annotated[
        int | None, typer.Option(min=1, help="Runs at once before answering 503.")
    ] = None,
) -> None:
    """Serve the agent service: POST /v1/runs streams cards as Server-Sent Events."""
    import os

    from harness.service import load_config, run_service

    spans_path = None if no_spans else (spans or _default_out("serve") / "spans.jsonl")
    provider_settings: dict[str, object] = {}
    if provider is not None:
        provider_settings["kind"] = provider
    if base_url is not None:
        provider_settings["base_url"] = base_url
    try:
        service_config = load_config(
            config,
            host=host,
            port=port,
            scenarios=tuple(scenario) if scenario else None,
            provider=provider_settings or None,
            time_scale=time_scale,
            spans_path=spans_path,
            max_in_flight=max_in_flight,
            api_key=os.environ.get("PARABENCH_API_KEY") or None,
        )
        run_service(service_config)
    except ParabenchError as exc:
        _fail(exc)


@app.command()
def load(
    host: Annotated[str, typer.Option(help="The agent service, e.g. http://127.0.0.1:8000.")],
    scenario: Annotated[str, typer.Option(help="Scenario the service runs.")] = (
        "research_assistant"
    ),
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", "-v", help="Variant, or name:weight (repeatable)."),
    ] = None,
    users: Annotated[int, typer.Option("--users", "-u", min=1, help="Concurrent users.")] = 10,
    spawn_rate: Annotated[
        float | None, typer.Option("--spawn-rate", "-r", min=0.001, help="Users started per s.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", "-t", min=0.1, help="Seconds of load.")
    ] = 30.0,
    shape: Annotated[str, typer.Option(help="constant, step or sweep.")] = "constant",
    levels: Annotated[
        str | None, typer.Option(help="Sweep levels, e.g. 1,2,4,8 (with --shape sweep).")
    ] = None,
    hold: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds per step or sweep level.")
    ] = None,
    step_users: Annotated[
        int | None, typer.Option(min=1, help="Users added per step (with --shape step).")
    ] = None,
    processes: Annotated[
        int, typer.Option(min=-1, help="Local Locust worker processes (-1: one per CPU).")
    ] = 0,
    expect_workers: Annotated[
        int, typer.Option(min=0, help="Be the master of this many workers on other machines.")
    ] = 0,
    master_bind_port: Annotated[int, typer.Option(min=1, max=65535)] = 5557,
    seed: Annotated[int | None, typer.Option(help="Seed sent with every run.")] = None,
    stop_timeout: Annotated[
        float, typer.Option(min=0.0, help="Seconds runs in flight may finish after the end.")
    ] = 30.0,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: reports/load-<time>)."),
    ] = None,
) -> None:
    """Drive a running agent service with Locust; write raw samples and Locust's reports."""
    from harness.load import LoadOptions, print_summary, run_load
    from harness.load.shapes import parse_levels

    try:
        options = LoadOptions(
            host=host,
            scenario=scenario,
            variants=tuple(variant or ("parallel",)),
            users=users,
            spawn_rate=spawn_rate,
            duration_s=duration,
            shape=shape,
            levels=parse_levels(levels) if levels else None,
            hold_s=hold,
            step_users=step_users,
            processes=processes,
            expect_workers=expect_workers,
            master_bind_port=master_bind_port,
            seed=seed,
            out_dir=out,
            stop_timeout_s=stop_timeout,
        )
        result = run_load(options)
    except ParabenchError as exc:
        _fail(exc)
    print_summary(result, console)
    if result.interrupted:
        err_console.print("[yellow]interrupted:[/] the summary covers the runs that finished")
        raise typer.Exit(130)


@app.command()
def analyze(
    files: Annotated[
        list[Path],
        typer.Argument(help="Trace files: OTLP JSON lines (spans.jsonl) or Jaeger JSON."),
    ],
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table (readable summary) or json (one object).")
    ] = "table",
    baseline_variant: Annotated[
        str | None,
        typer.Option(
            help="Variant to measure extra cost and deltas against (default: the scenario's)."
        ),
    ] = None,
    overlap_tolerance: Annotated[
        float,
        typer.Option(
            help="For traces without a declared DAG: treat a sibling overlapping by less than "
            "this fraction of its parent as sequential (CRISP uses 0.01; Jaeger 0)."
        ),
    ] = 0.0,
) -> None:
    """Audit trace files: critical paths, bottlenecks, parallel branches, variants, what-if."""
    import json as _json

    from harness.analysis.audit import analyze_files
    from harness.errors import ConfigError, TraceDataError

    try:
        if output_format not in ("table", "json"):
            raise ConfigError(
                f"unknown output format '{output_format}'",
                where="--format",
                fix="use --format table or --format json",
            )
        if not overlap_tolerance >= 0.0:
            raise ConfigError(
                f"overlap tolerance must be >= 0, got {overlap_tolerance}",
                where="--overlap-tolerance",
                fix="use 0 (Jaeger) or a small fraction such as 0.01 (CRISP)",
            )
        show = err_console.is_terminal and output_format == "table"
        status = err_console.status("analysing …") if show else contextlib.nullcontext()
        with status as live:

            def progress(stage: str) -> None:
                if live is not None:
                    live.update(f"analysing: {stage} …")

            analysis = analyze_files(
                files,
                baseline_variant=baseline_variant,
                overlap_tolerance=overlap_tolerance,
                progress=progress,
            )
        if analysis.spans == 0:
            findings = analysis.data_quality.to_dict()
            detail = "; ".join(
                f"{k}: {v['count']} (e.g. {v['examples'][0]})"
                for k, v in findings.items()
                if v["examples"]
            )
            raise TraceDataError(
                "no spans could be read" + (f" ({detail})" if detail else ""),
                where=", ".join(str(f) for f in files),
                fix="pass OTLP JSON lines (one ExportTraceServiceRequest per line, as "
                "`parabench run` writes to DIR/spans.jsonl or a Collector's file exporter) "
                "or a Jaeger JSON download",
            )
    except ParabenchError as exc:
        _fail(exc)
    if output_format == "json":
        sys.stdout.write(_json.dumps(analysis.to_json(), ensure_ascii=False) + "\n")
        return
    from harness.analysis.console import print_analysis

    print_analysis(analysis, console if console.is_terminal else Console(width=160))


@app.command()
def report(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="A run directory: spans.jsonl (parabench run, serve), samples.jsonl "
            "(parabench load), or both."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where to write report.html, report.md, summary.json (RUN_DIR)."
        ),
    ] = None,
    baseline_variant: Annotated[
        str | None,
        typer.Option(help="Variant to compare with and price branches against (the scenario's)."),
    ] = None,
) -> None:
    """Write report.html (offline, with charts), report.md and summary.json for a run directory."""
    from harness.report import write_report

    try:
        status = err_console.status("reporting …") if err_console.is_terminal else None
        with status or contextlib.nullcontext():

            def progress(stage: str) -> None:
                if status is not None:
                    status.update(f"reporting: {stage} …")

            result = write_report(
                run_dir, out, baseline_variant=baseline_variant, progress=progress
            )
    except ParabenchError as exc:
        _fail(exc)
    _print_headline(result.headline)
    console.print(
        f"html:     {escape(str(result.html_path))}\n"
        f"markdown: {escape(str(result.markdown_path))}\n"
        f"summary:  {escape(str(result.summary_path))}",
        highlight=False,
        soft_wrap=True,
    )


def _print_headline(headline: dict) -> None:
    from rich import box

    console.print(escape(headline["summary"]), highlight=False)
    known = all(v["time_scale"] is not None for v in headline["variants"])
    title = "real speed (measured ÷ time scale)" if known else "as measured (no spans, no scale)"
    table = Table(title=f"per variant — seconds, {title}", box=box.SIMPLE_HEAD)
    for col in ("variant", "side", "runs", "e2e p50", "e2e p95", "TTFC p50", "$/run"):
        table.add_column(col, justify="left" if col in ("variant", "side") else "right")
    for v in headline["variants"]:
        name = f"{v['scenario']} / {v['variant']}" if v["scenario"] else v["variant"]
        cost = v["cost_usd_per_run"]
        table.add_row(
            escape(name),
            v["latency_source"],
            str(v["runs"]),
            _fmt_ms(v["e2e_ms"]["p50"], 1.0),
            _fmt_ms(v["e2e_ms"]["p95"], 1.0),
            _fmt_ms(v["ttfc_ms"]["p50"], 1.0),
            f"{cost:.4f}" if cost is not None else "–",
        )
    (console if console.is_terminal else Console(width=120)).print(table)


@app.command()
def export(
    source: Annotated[
        Path,
        typer.Argument(
            help="A run directory (with spans.jsonl), or an OTLP JSON lines or Jaeger JSON file."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output file (default: trace.perfetto.json beside the spans)."
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option("--format", "-f", help="perfetto: Chrome Trace Event JSON for Perfetto."),
    ] = "perfetto",
) -> None:
    """Export spans as a timeline for Perfetto, concurrent branches on tracks of their own."""
    from harness.report.perfetto import export_trace_file

    try:
        result = export_trace_file(source, out, output_format)
    except ParabenchError as exc:
        _fail(exc)
    console.print(
        f"{result.spans} spans, {result.traces} traces, {result.tracks} tracks\n"
        f"wrote {escape(str(result.path))}\n"
        "open it at https://ui.perfetto.dev (Open trace file)",
        highlight=False,
        soft_wrap=True,
    )
    if not result.data_quality.clean:
        found = ", ".join(f"{k}: {v}" for k, v in sorted(result.data_quality.counts.items()))
        err_console.print(f"[yellow]data quality findings:[/] {escape(found)}", highlight=False)


@app.command()
def gate(
    budget: Annotated[
        Path, typer.Option(help="Budget file (YAML), e.g. scenarios/NAME.budget.yaml.")
    ],
    current: Annotated[
        Path, typer.Option(help="Run dir to judge: what parabench run / load / demo wrote.")
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(help="Compare with: a run dir, a baseline file or a summary.json."),
    ] = None,
    side: Annotated[
        str | None,
        typer.Option(help="client (samples.jsonl) or server (spans.jsonl); default: client."),
    ] = None,
    time_scale: Annotated[
        float | None,
        typer.Option(
            "--time-scale",
            min=1e-4,
            max=100.0,
            help="Time scale of client samples in a run dir without spans (the service's).",
        ),
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the result as Markdown (a PR comment).")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Also write the result as JUnit XML.")] = None,
    update_baseline: Annotated[
        Path | None,
        typer.Option(help="Write the current runs as a baseline file here, if the gate passes."),
    ] = None,
) -> None:
    """Judge a run dir against a budget and a baseline: exit 0 pass, 1 fail, 2 bad input."""
    from harness.gate.budget import load_budget

    try:
        # Budget and options first, before the heavy imports: bad input is refused at once.
        loaded = load_budget(budget)
        from harness.gate.baseline import load_baseline, write_baseline
        from harness.gate.rundata import load_run_dir, parse_side

        chosen = parse_side(side)
        data = load_run_dir(current, loaded.scenario, side=chosen, time_scale=time_scale)
        base = None
        if baseline is not None:
            base = load_baseline(baseline, loaded.scenario, side=data.side, time_scale=time_scale)
        from harness.gate.checks import run_gate
        from harness.gate.output import print_result, write_outputs

        result = run_gate(loaded, data, base)
        write_outputs(result, markdown=markdown, junit=junit)
    except ParabenchError as exc:
        _fail(exc)
    print_result(result, console if console.is_terminal else Console(width=160))
    if update_baseline is not None:
        if result.exit_code == 0:
            path = write_baseline(data, update_baseline)
            console.print(f"baseline written: {escape(str(path))}", highlight=False)
        else:
            err_console.print(
                f"[yellow]baseline not written:[/] the gate failed; {escape(str(update_baseline))} "
                "is unchanged (to accept these runs, gate them without --baseline)",
                highlight=False,
            )
    raise typer.Exit(result.exit_code)


def _fmt_ms(value: float | None, scale: float) -> str:
    if value is None:
        return "–"
    return f"{value / scale / 1000:.2f}"


def _print_summary(summary: dict) -> None:
    from rich import box

    # Short headers and light borders keep it narrow; a log (no terminal) gets full width.
    table = Table(
        title="per variant — seconds at real speed (measured ÷ time scale)",
        box=box.SIMPLE_HEAD,
        caption="SI: speed index p50 · eff: executor efficiency p50 (lower bound ÷ makespan)",
    )
    for col in ("variant", "runs", "ok", "e2e p50", "e2e p95", "TTFC p50", "SI", "$/run", "eff"):
        table.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for v in summary["variants"]:
        scale = v["time_scale"]
        eff = v["executor_efficiency"]["p50"]
        cost = v["cost_usd_per_run"]["mean"]
        table.add_row(
            v["variant"],
            str(v["runs"]),
            str(v["completed_runs"]),
            _fmt_ms(v["e2e_ms"]["p50"], scale),
            _fmt_ms(v["e2e_ms"]["p95"], scale),
            _fmt_ms(v["ttfc_ms"]["p50"], scale),
            _fmt_ms(v["speed_index_ms"]["p50"], scale),
            f"{cost:.4f}" if cost is not None else "–",
            f"{eff:.3f}" if eff is not None else "–",
        )
    (console if console.is_terminal else Console(width=120)).print(table)
    if summary.get("data_quality"):
        console.print(f"[yellow]data quality findings:[/] {summary['data_quality']}")


def main() -> None:
    """Entry point of the ``parabench`` console script."""
    try:
        app()
    except ParabenchError as exc:  # a last net: bad input never ends in a traceback
        _print_error(exc)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
