"""The report's tables as plain strings, shared by the HTML and the Markdown renderers.

Cells are unescaped text: each renderer escapes for its own format. Latencies
are seconds at real speed (measured ÷ time scale, see ``findings``); costs
are USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.report._cells import Table, make_table, num, pct, scaled_ms, usd_per_ms
from harness.report.build import ReportData
from harness.report.findings import FOREIGN, VariantFigures, fmt_s, fmt_usd
from harness.report.health import (
    errors_table,
    files_table,
    load_table,
    outcomes_table,
    quality_table,
    queue_table,
)

__all__ = ["Table", "TableSet", "build_tables"]


@dataclass
class TableSet:
    """Every table of the report, by name."""

    variants: Table
    comparisons: Table
    bottlenecks: Table
    independence: Table
    overlaps: Table
    branches: Table
    forks: Table
    progressive: Table
    load: Table
    outcomes: Table
    queue: Table
    errors: Table
    what_if: Table
    quality: Table
    files: Table


def _scales(figures: list[VariantFigures]) -> dict[tuple[str, str], float]:
    return {(f.scenario, f.variant): f.scale for f in figures}


def variants_table(figures: list[VariantFigures]) -> Table:
    rows = [
        [
            f.scenario,
            f.variant,
            f.source,
            str(f.runs),
            pct(f.error_rate, 1),
            fmt_s(f.e2e_p50_ms, 2),
            fmt_s(f.e2e_p95_ms, 2),
            fmt_s(f.e2e_p99_ms, 2),
            fmt_s(f.ttfc_p50_ms, 2),
            fmt_s(f.si_p50_ms, 2),
            fmt_usd(f.cost_usd),
            "–" if f.efficiency is None else f"{f.efficiency:.3f}",
        ]
        for f in figures
    ]
    columns = [
        "scenario",
        "variant",
        "side",
        "runs",
        "errors",
        "e2e p50",
        "e2e p95",
        "e2e p99",
        "TTFC p50",
        "speed index p50",
        "cost / run",
        "executor eff.",
    ]
    return make_table(columns, rows, 3)


def _delta(row: dict[str, Any], name: str, scale: float) -> str:
    """A difference in seconds at real speed, with its confidence interval when there is one."""
    est, low, high = (scaled_ms(row[f"{name}{s}"], scale) for s in ("", "_ci_low", "_ci_high"))
    if est is None:
        return "–"
    band = "" if low is None or high is None else f" [{low / 1000:+.2f}, {high / 1000:+.2f}]"
    return f"{est / 1000:+.2f} s{band}"


def comparisons_table(data: ReportData) -> Table:
    frame = data.analysis.comparisons if data.analysis is not None else pd.DataFrame()
    rows = []
    for r in frame.to_dict(orient="records") if not frame.empty else []:
        scale = float(r["time_scale"]) or 1.0

        extra = num(r["delta_cost_usd_per_run"])
        per_s = num(r["usd_per_s_saved"])  # real seconds: compare.py divides by the time scale
        rows.append(
            [
                str(r["scenario"]),
                f"{r['variant']} vs {r['baseline']}",
                _delta(r, "delta_e2e_p50_ms", scale),
                _delta(r, "delta_e2e_p95_ms", scale),
                _delta(r, "delta_ttfc_p50_ms", scale),
                "–" if extra is None else f"{extra:+.4f}",
                fmt_usd(per_s) + "/s" if per_s is not None else "–",
                str(r["note"] or ""),
            ]
        )
    columns = [
        "scenario",
        "variant",
        "Δ e2e p50 [95% CI]",
        "Δ e2e p95",
        "Δ TTFC p50",
        "Δ cost / run (USD)",
        "cost per s saved",
        "note",
    ]
    return make_table(columns, rows, 2)


def bottleneck_table(data: ReportData, scales: dict[tuple[str, str], float], top: int) -> Table:
    frame = data.analysis.bottlenecks if data.analysis is not None else pd.DataFrame()
    rows = []
    if not frame.empty:
        ranked = frame[frame.share_of_e2e.fillna(0) > 0]
        for (scenario, variant), group in ranked.groupby(["scenario", "variant"], sort=False):
            scale = scales.get((scenario, variant), 1.0)
            for r in group.head(top).to_dict(orient="records"):
                rows.append(
                    [
                        str(scenario) or "–",
                        str(variant) or "(foreign traces)",
                        str(r["step"]),
                        pct(r["share_of_e2e"], 1),
                        pct(r["on_path_share"]),
                        fmt_s(scaled_ms(r["cp_ms_mean"], scale), 2),
                        fmt_s(scaled_ms(r["cp_ms_p95"], scale), 2),
                        fmt_s(scaled_ms(r["queue_ms_mean"], scale), 2),
                    ]
                )
    columns = [
        "scenario",
        "variant",
        "step",
        "share of e2e",
        "on path",
        "critical mean",
        "critical p95",
        "queue mean",
    ]
    return make_table(columns, rows, 3)


def independence_table(data: ReportData) -> Table:
    from harness.report.overlap import independence_table as declared

    frame = declared(data.analysis.steps) if data.analysis is not None else pd.DataFrame()
    rows = [
        [
            str(r["scenario"]),
            str(r["step"]),
            str(r["kind"]),
            ", ".join(r["depends_on"]) or "–",
            ", ".join(r["alongside"]) or "none",
            str(r["fork"]) or "–",
        ]
        for r in (frame.to_dict(orient="records") if not frame.empty else [])
    ]
    columns = ["scenario", "step", "kind", "waits for", "can run alongside", "fork"]
    return make_table(columns, rows)


def overlaps_table(data: ReportData, top: int = 30) -> Table:
    rows = []
    for r in data.overlaps.head(top).to_dict(orient="records"):
        share = r["overlapped"] / r["together"]
        if share >= 0.5:
            reading = "independent (inferred from overlap)"
        elif share == 0:
            reading = "one after the other: a dependency, or a chance to parallelize (check)"
        else:
            reading = "sometimes overlapped (inferred)"
        rows.append(
            [str(r["parent"]), str(r["a"]), str(r["b"]), str(r["together"]), pct(share), reading]
        )
    return make_table(
        ["under", "operation", "operation", "seen together", "overlapped", "reading"], rows, 3
    )


def _branch_rows(frame: pd.DataFrame, what: str) -> list[list[str]]:
    return [
        [
            str(r["scenario"]),
            str(r["variant"]),
            str(r["step"]) if what == "branch" else str(r["fork"]),
            fmt_s(num(r["ms_saved"]), 2),
            fmt_usd(num(r["extra_cost_usd"])),
            usd_per_ms(r["usd_per_ms_saved"]),
            str(r["verdict"]).replace("_", " "),
            # The reason only adds to the numbers when there is no cost per ms saved.
            str(r["reason"]) if num(r["usd_per_ms_saved"]) is None else "",
        ]
        for r in (frame.to_dict(orient="records") if not frame.empty else [])
    ]


def branch_tables(data: ReportData) -> tuple[Table, Table]:
    """Every parallel branch, and every fork as a whole: ms saved, extra cost, verdict."""
    if data.analysis is None:
        return Table([], []), Table([], [])
    tail = ["saved / run", "extra cost / run", "cost per ms saved", "verdict", "note"]
    out = []
    for frame, what in ((data.analysis.branches, "branch"), (data.analysis.forks, "fork")):
        table = make_table(["scenario", "variant", what, *tail], _branch_rows(frame, what), 3)
        out.append(table if any(row[-1] for row in table.rows) else table.without("note"))
    return out[0], out[1]


def progressive_table(figures: list[VariantFigures]) -> Table:
    rows = []
    for f in figures:
        gain = None if f.e2e_p50_ms is None or f.si_p50_ms is None else f.e2e_p50_ms - f.si_p50_ms
        rows.append(
            [
                f.scenario,
                f.variant,
                f.source,
                fmt_s(f.ttfc_p50_ms, 2),
                fmt_s(f.ttfc_p95_ms, 2),
                fmt_s(f.si_p50_ms, 2),
                fmt_s(f.e2e_p50_ms, 2),
                fmt_s(gain, 2),
            ]
        )
    columns = [
        "scenario",
        "variant",
        "side",
        "TTFC p50",
        "TTFC p95",
        "cards as they complete (speed index p50)",
        "all at once (e2e p50)",
        "feels faster by",
    ]
    return make_table(columns, rows, 3)


def what_if_table(data: ReportData) -> Table:
    frame = data.analysis.what_if if data.analysis is not None else pd.DataFrame()
    rows = []
    for r in frame.to_dict(orient="records") if not frame.empty else []:
        scale = num(r["time_scale"]) or 1.0
        err = num(r["error_p50"])
        rows.append(
            [
                str(r["scenario"]),
                f"{r['source_variant']} → {r['target_variant']}",
                str(r["schedule"]),
                fmt_s(scaled_ms(r["predicted_p50_ms"], scale), 2),
                fmt_s(scaled_ms(r["predicted_p95_ms"], scale), 2),
                fmt_s(scaled_ms(r["measured_p50_ms"], scale), 2),
                "–" if err is None else f"{err * 100:+.1f} %",
                str(r["note"] or ""),
            ]
        )
    columns = [
        "scenario",
        "replayed",
        "schedule",
        "predicted p50",
        "predicted p95",
        "measured p50",
        "error p50",
        "note",
    ]
    return make_table(columns, rows, 3)


def build_tables(data: ReportData, figures: list[VariantFigures], top: int = 5) -> TableSet:
    """Every table of the report from gathered data and headline figures.

    With one scenario, no table repeats its name in every row.
    """
    scales = _scales(figures)
    branches, forks = branch_tables(data)
    tables = TableSet(
        variants=variants_table(figures),
        comparisons=comparisons_table(data),
        bottlenecks=bottleneck_table(data, scales, top),
        independence=independence_table(data),
        overlaps=overlaps_table(data),
        branches=branches,
        forks=forks,
        progressive=progressive_table(figures),
        load=load_table(data.summary),
        outcomes=outcomes_table(data.summary),
        queue=queue_table(data, scales),
        errors=errors_table(data),
        what_if=what_if_table(data),
        quality=quality_table(data),
        files=files_table(data),
    )
    if len({f.scenario for f in figures if f.mode != FOREIGN}) <= 1:
        for name, table in vars(tables).items():
            setattr(tables, name, table.without("scenario"))
    return tables
