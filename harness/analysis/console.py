"""The terminal summary of an ``Analysis`` (``parabench analyze`` without ``--format json``)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.analysis.audit import Analysis

__all__ = ["print_analysis"]

_TOP_BOTTLENECKS = 5


def _num(value: Any, fmt: str = ",.0f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:{fmt}}{suffix}"


def _ci(row: Any, key: str, fmt: str) -> str:
    est = row.get(key)
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if est is None or (isinstance(est, float) and not math.isfinite(est)):
        return "–"
    text = _num(est, fmt)
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{_num(low, fmt)}, {_num(high, fmt)}]"
    return text


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 3 else "right", overflow="fold")
    return table


def print_analysis(analysis: Analysis, console: Console) -> None:
    """Print the readable summary: data read, findings, variants, paths, branches, what-if."""
    console.print(
        f"[bold]Read[/] {analysis.spans:,} spans from {len(analysis.files)} file(s): "
        f"{analysis.harness_runs:,} harness runs, {analysis.foreign_traces:,} other traces."
    )
    _print_quality(analysis, console)
    if analysis.harness_runs:
        _print_variants(analysis, console)
        _print_comparisons(analysis, console)
        _print_paths(analysis, console)
    _print_bottlenecks(analysis, console)
    if analysis.harness_runs:
        _print_branches(analysis, console)
        _print_what_if(analysis, console)
    if analysis.foreign_traces:
        _print_foreign(analysis, console)
    for note in analysis.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def _print_quality(analysis: Analysis, console: Console) -> None:
    findings = analysis.data_quality.to_dict()
    if not findings:
        console.print("Data quality: no findings.")
        return
    table = _table("Data quality findings", ["finding", "count", "examples"])
    for name, item in findings.items():
        table.add_row(name, f"{item['count']:,}", escape("; ".join(item["examples"])))
    console.print(table)


def _print_variants(analysis: Analysis, console: Console) -> None:
    table = _table(
        "Variants (server side: run span start → end, at the recorded time scale)",
        ["scenario", "variant", "mode", "runs", "e2e p50 ms", "e2e p95 ms", "TTFC p50 ms",
         "cost/run USD", "efficiency p50", "time scale"],
    )  # fmt: skip
    for v in analysis.variants:
        mode = v["mode"] + (
            f" ≤{v['max_concurrency']}" if v.get("max_concurrency", 1) not in (None, 1) else ""
        )
        table.add_row(
            escape(v["scenario"]),
            escape(v["variant"]),
            mode,
            f"{v['runs']:,}",
            _num(v["e2e_ms"]["p50"]),
            _num(v["e2e_ms"]["p95"]),
            _num(v["ttfc_ms"]["p50"]),
            _num(v["cost_usd_per_run"]["mean"], ".4f"),
            _num(v["executor_efficiency"]["p50"], ".3f"),
            _num(v["time_scale"], "g"),
        )
    console.print(table)


def _print_comparisons(analysis: Analysis, console: Console) -> None:
    frame = analysis.comparisons
    if frame is None or frame.empty:
        return
    table = _table(
        "Against the baseline variant (difference, 95% bootstrap CI)",
        ["scenario", "variant", "baseline", "Δ e2e p50 ms", "Δ e2e p95 ms", "Δ TTFC p50 ms",
         "Δ cost/run USD", "USD per s saved"],
    )  # fmt: skip
    for row in frame.to_dict(orient="records"):
        table.add_row(
            escape(str(row.get("scenario", ""))),
            escape(str(row.get("variant", ""))),
            escape(str(row.get("baseline", ""))),
            _ci(row, "delta_e2e_p50_ms", ",.0f"),
            _ci(row, "delta_e2e_p95_ms", ",.0f"),
            _ci(row, "delta_ttfc_p50_ms", ",.0f"),
            _ci(row, "delta_cost_usd_per_run", ".4f"),
            _ci(row, "usd_per_s_saved", ".4f"),
        )
    console.print(table)
    for row in frame.to_dict(orient="records"):
        if row.get("note"):
            console.print(f"  [dim]{escape(str(row['variant']))}: {escape(str(row['note']))}[/]")


def _print_paths(analysis: Analysis, console: Console) -> None:
    harness = analysis.traces[analysis.traces.method == "declared_dag"]
    if harness.empty:
        return
    table = _table(
        "Most common critical path per variant", ["scenario", "variant", "path", "share of runs"]
    )
    steps = harness.critical_path.map(
        lambda sections: " → ".join(
            s["name"].removeprefix("step ")
            for s in reversed(sections)
            if s["name"].startswith("step ")
        )
    )
    counts = (
        pd.DataFrame({"scenario": harness.scenario, "variant": harness.variant, "path": steps})
        .value_counts(sort=False)
        .reset_index(name="n")
    )
    for (scenario, variant), group in counts.groupby(["scenario", "variant"], sort=False):
        best = group.sort_values("n", ascending=False).iloc[0]
        table.add_row(
            escape(scenario), escape(variant), escape(best.path), f"{best.n / group.n.sum():.0%}"
        )
    console.print(table)


def _print_bottlenecks(analysis: Analysis, console: Console) -> None:
    frame = analysis.bottlenecks
    if frame.empty:
        return
    table = _table(
        f"Bottlenecks (top {_TOP_BOTTLENECKS} per variant by share of e2e on the critical path)",
        ["scenario", "variant", "step / operation", "share of e2e", "on path", "cp mean ms",
         "cp p95 ms", "queue ms", "service ms", "slack ms", "drag ms"],
    )  # fmt: skip
    for _, group in frame.groupby(["scenario", "variant"], sort=False):
        for row in group.head(_TOP_BOTTLENECKS).itertuples(index=False):
            table.add_row(
                escape(row.scenario or "(any)"),
                escape(row.variant or "(any)"),
                escape(row.step),
                _num(row.share_of_e2e, ".0%"),
                _num(row.on_path_share, ".0%"),
                _num(row.cp_ms_mean),
                _num(row.cp_ms_p95),
                _num(row.queue_ms_mean),
                _num(row.service_ms_mean),
                _num(row.slack_ms_mean),
                _num(row.drag_ms_mean),
            )
    console.print(table)


def _print_branches(analysis: Analysis, console: Console) -> None:
    for title, frame, key in (
        (
            "Parallel branches (ms saved at real speed, vs the baseline variant)",
            analysis.branches,
            "step",
        ),
        ("Forks as a whole", analysis.forks, "fork"),
    ):
        if frame.empty:
            continue
        table = _table(
            title,
            ["scenario", "variant", key, "runs", "ms saved/run", "extra USD/run",
             "USD per ms saved", "value of time USD/ms", "verdict"],
        )  # fmt: skip
        for row in frame.itertuples(index=False):
            table.add_row(
                escape(row.scenario),
                escape(row.variant),
                escape(str(getattr(row, key))),
                f"{row.runs:,}",
                _num(row.ms_saved),
                _num(row.extra_cost_usd, ".5f"),
                _num(row.usd_per_ms_saved, ".3g"),
                _num(row.value_of_time_usd_per_s / 1000.0, ".3g"),
                row.verdict.replace("_", " "),
            )
        console.print(table)


def _print_what_if(analysis: Analysis, console: Console) -> None:
    frame = analysis.what_if
    if frame is None or frame.empty:
        return
    table = _table(
        "What-if: each variant predicted from the baseline's measured step times",
        ["scenario", "variant", "schedule", "from", "pred. p50 ms", "meas. p50 ms", "error p50",
         "pred. p95 ms", "meas. p95 ms", "error p95"],
    )  # fmt: skip
    notes = []
    for row in frame.to_dict(orient="records"):
        table.add_row(
            escape(str(row["scenario"])),
            escape(str(row["target_variant"])),
            escape(str(row.get("schedule") or "")),
            escape(f"{row['source_variant']} ({row['n_source_runs'] or 0} runs)"),
            _num(row["predicted_p50_ms"]),
            _num(row["measured_p50_ms"]),
            _num(row["error_p50"], "+.1%"),
            _num(row["predicted_p95_ms"]),
            _num(row["measured_p95_ms"]),
            _num(row["error_p95"], "+.1%"),
        )
        if row.get("note"):
            notes.append(f"{row['target_variant']}: {row['note']}")
    console.print(table)
    for note in notes:
        console.print(f"  [dim]{escape(note)}[/]")


def _print_foreign(analysis: Analysis, console: Console) -> None:
    frame = analysis.traces[analysis.traces.method == "span_tree"]
    e2e = frame.e2e_ms.astype(float)
    console.print(
        f"[bold]Other traces:[/] {len(frame):,}, e2e p50 {_num(float(e2e.median()))} ms, "
        f"p95 {_num(float(e2e.quantile(0.95)))} ms (root span start → end)."
    )
    slowest = frame.loc[e2e.idxmax()]
    table = _table(
        f"Critical path of the slowest trace {slowest.trace_id} "
        f"({_num(slowest.e2e_ms)} ms), latest first",
        ["span", "name", "from ms", "to ms"],
    )
    for section in slowest.critical_path[:20]:
        table.add_row(
            section["span_id"],
            escape(section["name"]),
            _num(section["start_ms"], ",.1f"),
            _num(section["end_ms"], ",.1f"),
        )
    console.print(table)
    if len(slowest.critical_path) > 20:
        console.print(f"  … {len(slowest.critical_path) - 20} more sections (see --format json)")
