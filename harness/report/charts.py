"""The report's plotly figures, every axis with its unit.

Latencies are seconds at real speed (measured ÷ time scale); costs USD.
Each figure carries only what it draws: distributions are reduced to 201
quantiles and cards over time to a 200-point grid, so a report of 10,000
runs stays small. Each variant keeps one colour across figures, and every
string from the data goes through ``_plot.label``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from harness.report._plot import colors, label, layout
from harness.report.build import ReportData
from harness.report.findings import FOREIGN, FOREIGN_NAME, Choice, VariantFigures
from harness.report.waterfall import waterfalls

__all__ = ["Charts", "build_charts"]

VERDICT_COLORS = {
    "worth_it": "#2ca02c",
    "free": "#17becf",
    "not_worth_it": "#d62728",
    "unknown": "#7f7f7f",
}
_QUANTILES = np.linspace(0.0, 1.0, 201)
_GRID_POINTS = 200


@dataclass
class Charts:
    """Figures by name (``None`` when the data cannot draw it) and the waterfalls."""

    waterfalls: list[tuple[str, go.Figure]] = field(default_factory=list)
    figures: dict[str, go.Figure | None] = field(default_factory=dict)


class _Style:
    """Names and colours of the variants, shared by every figure of one report."""

    def __init__(self, figures: list[VariantFigures]) -> None:
        self.many = len({f.scenario for f in figures if f.mode != FOREIGN}) > 1
        self.color = colors([(f.scenario, f.variant) for f in figures])

    def name(self, scenario: str, variant: str) -> str:
        return label(f"{scenario} / {variant}" if self.many and scenario else variant)

    def of(self, f: VariantFigures) -> tuple[str, str]:
        return self.name(f.scenario, f.variant), self.color[f.scenario, f.variant]


def _samples_of(data: ReportData, f: VariantFigures) -> list[dict]:
    return [s for s in data.samples if (s.get("scenario"), s.get("variant")) == f.key]


def _latency_values(data: ReportData, f: VariantFigures, column: str) -> np.ndarray:
    """The raw values behind one variant's headline latency, in seconds at real speed."""
    if f.source == "client":
        values = [s[column] for s in _samples_of(data, f) if isinstance(s.get(column), int | float)]
        return np.asarray(values, dtype=float) / f.scale / 1000
    if data.analysis is None:
        return np.empty(0)
    if f.mode == FOREIGN:
        traces = data.analysis.traces
        wanted = traces[traces.method == "span_tree"]
        return wanted.e2e_ms.to_numpy(float) / 1000 if column == "e2e_ms" else np.empty(0)
    runs = data.analysis.runs
    mine = runs[(runs.scenario == f.scenario) & (runs.variant == f.variant)]
    return mine[column].dropna().to_numpy(dtype=float) / f.scale / 1000


def cdf_figure(
    data: ReportData, figures: list[VariantFigures], style: _Style, column: str
) -> go.Figure | None:
    fig = go.Figure()
    for f in figures:
        values = _latency_values(data, f, column)
        if values.size == 0:
            continue
        name, color = style.of(f)
        fig.add_trace(
            go.Scatter(
                x=np.quantile(values, _QUANTILES),
                y=_QUANTILES * 100,
                mode="lines",
                name=f"{name} ({f.source})",
                line={"color": color},
                hovertemplate="%{x:.2f} s at p%{y:.0f}<extra>%{fullData.name}</extra>",
            )
        )
    if not fig.data:
        return None
    what = "e2e latency" if column == "e2e_ms" else "time to first card"
    side = " and ".join(sorted({f.source for f in figures}))
    return layout(fig, f"{what}, {side} side (s, real speed)", "runs at or below (%)")


def concurrency_figure(
    data: ReportData, figures: list[VariantFigures], style: _Style
) -> go.Figure | None:
    """p50/p95 client e2e and the share of runs not completed, per concurrency level."""
    levels = {s["concurrency"] for s in data.samples if isinstance(s.get("concurrency"), int)}
    if len(levels) < 2:
        return None
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for f in figures:
        mine = pd.DataFrame(_samples_of(data, f))
        if mine.empty or "concurrency" not in mine:
            continue
        mine = mine[mine.concurrency.notna()]
        mine["e2e_s"] = pd.to_numeric(mine.e2e_ms, errors="coerce") / f.scale / 1000
        by_level = mine.groupby("concurrency")
        e2e = by_level.e2e_s.quantile([0.5, 0.95]).unstack()
        refused = by_level.outcome.apply(lambda o: float((o != "completed").mean()) * 100)
        name, color = style.of(f)
        for q, dash in ((0.5, "solid"), (0.95, "dash")):
            fig.add_trace(
                go.Scatter(
                    x=[str(level) for level in e2e.index],
                    y=e2e[q],
                    mode="lines+markers",
                    line={"dash": dash, "color": color},
                    name=f"{name} e2e p{int(q * 100)}",
                )
            )
        fig.add_trace(
            go.Bar(
                x=[str(level) for level in refused.index],
                y=refused.to_numpy(),
                name=f"{name} not completed",
                marker_color=color,
                opacity=0.3,
            ),
            secondary_y=True,
        )
    if not fig.data:
        return None
    layout(
        fig, "concurrent users (users)", "e2e latency, client side (s, real speed)", barmode="group"
    )
    # Sweep levels double: evenly spaced categories read better than a linear axis.
    fig.update_xaxes(
        type="category",
        categoryorder="array",
        categoryarray=[str(level) for level in sorted(levels)],
    )
    fig.update_yaxes(
        title_text="runs not completed (%)",
        secondary_y=True,
        rangemode="tozero",
        tickformat=".0f",
        showgrid=False,
    )
    return fig


def cost_latency_figure(figures: list[VariantFigures], style: _Style) -> go.Figure | None:
    """Mean cost per run against p50 e2e (bar to p95), and each scenario's Pareto frontier."""
    fig = go.Figure()
    for scenario in dict.fromkeys(f.scenario for f in figures):
        mine = [
            f
            for f in figures
            if f.scenario == scenario and f.e2e_p50_ms is not None and f.cost_usd is not None
        ]
        if not mine:
            continue
        x = np.array([f.e2e_p50_ms for f in mine], dtype=float) / 1000
        p95 = np.array([f.e2e_p95_ms or f.e2e_p50_ms for f in mine], dtype=float) / 1000
        y = np.array([f.cost_usd for f in mine], dtype=float)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="markers+text",
                text=[style.of(f)[0] for f in mine],
                textposition="top center",
                name=label(scenario) + ": p50, bar to p95",
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": p95 - x,
                    "arrayminus": np.zeros_like(x),
                },
                marker={"size": 12, "color": [style.of(f)[1] for f in mine]},
                hovertemplate="%{text}: %{x:.2f} s p50, %{y:.4f} USD per run<extra></extra>",
            )
        )
        # The frontier: each variant no other beats on both latency and cost.
        order = np.argsort(x, kind="stable")
        frontier = [i for k, i in enumerate(order) if y[i] < min(y[order[:k]], default=np.inf)]
        if len(frontier) > 1:
            fig.add_trace(
                go.Scatter(
                    x=x[frontier],
                    y=y[frontier],
                    mode="lines",
                    line={"dash": "dot", "color": "#999"},
                    name=label(scenario) + ": trade-off frontier",
                    hoverinfo="skip",
                )
            )
    if not fig.data:
        return None
    side = " and ".join(sorted({f.source for f in figures}))
    return layout(fig, f"e2e latency p50, {side} side (s, real speed)", "mean cost per run (USD)")


def branch_cost_figure(data: ReportData, style: _Style) -> go.Figure | None:
    """Cost per ms saved of every branch and fork, coloured by verdict, and the value of time."""
    if data.analysis is None or data.analysis.branches.empty:
        return None
    # Each variant's branches, then its fork as a whole.
    rows = []
    forks = data.analysis.forks.to_dict(orient="records")
    for key, group in data.analysis.branches.groupby(["scenario", "variant"], sort=False):
        rows += [(r, str(r["step"])) for r in group.to_dict(orient="records")]
        rows += [(r, "whole fork") for r in forks if (r["scenario"], r["variant"]) == key]
    rows = [
        (r, what)
        for r, what in rows
        if r["usd_per_ms_saved"] is not None and np.isfinite(r["usd_per_ms_saved"])
    ]
    names = [style.name(r["scenario"], r["variant"]) + ": " + label(w) for r, w in rows]
    fig = go.Figure()
    for verdict, color in VERDICT_COLORS.items():
        picked = [
            (name, r) for name, (r, _) in zip(names, rows, strict=True) if r["verdict"] == verdict
        ]
        if picked:
            fig.add_trace(
                go.Bar(
                    y=[name for name, _ in picked],
                    x=[max(float(r["usd_per_ms_saved"]), 0.0) for _, r in picked],
                    # A free branch is a bar of length 0: its label says so.
                    text=[
                        f"{float(r['usd_per_ms_saved']):.3g}" if verdict != "free" else "free"
                        for _, r in picked
                    ],
                    textposition="outside",
                    cliponaxis=False,
                    orientation="h",
                    name=verdict.replace("_", " "),
                    marker_color=color,
                    hovertemplate="%{y}: %{x:.3g} USD per ms saved<extra></extra>",
                )
            )
    if not fig.data:
        return None
    value_of_time = data.analysis.branches.groupby("scenario").value_of_time_usd_per_s.first()
    for scenario, vot in value_of_time.items():
        fig.add_vline(
            x=float(vot) / 1000,
            line={"dash": "dash", "color": "#333"},
            annotation_text=(label(f"{scenario}: ") if style.many else "")
            + f"value of time {float(vot) / 1000:.3g} USD/ms",
            annotation_position="bottom right",
        )
    fig.update_xaxes(exponentformat="e", rangemode="tozero")
    fig.update_yaxes(categoryorder="array", categoryarray=names, autorange="reversed")
    return layout(
        fig,
        "extra cost per ms saved (USD per ms)",
        "variant: branch",
        height=max(280, 140 + 26 * len(rows)),
    )


def bottleneck_figure(data: ReportData, style: _Style, top: int = 12) -> go.Figure | None:
    """Share of e2e each step spends on the critical path, per variant."""
    frame = data.analysis.bottlenecks if data.analysis is not None else pd.DataFrame()
    if frame.empty:
        return None
    frame = frame[frame.share_of_e2e.fillna(0) > 0]
    keep = frame.groupby("step").share_of_e2e.max().nlargest(top).index
    frame = frame[frame.step.isin(keep)]
    fig = go.Figure()
    for (scenario, variant), group in frame.groupby(["scenario", "variant"], sort=False):
        fig.add_trace(
            go.Bar(
                y=[label(s) for s in group.step],
                x=group.share_of_e2e * 100,
                orientation="h",
                name=style.name(scenario, variant) if variant else FOREIGN_NAME,
                marker_color=style.color.get((scenario, variant)),
                hovertemplate="%{y}: %{x:.1f} % of e2e<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_yaxes(autorange="reversed")
    return layout(
        fig,
        "share of e2e on the critical path (%)",
        "step",
        barmode="group",
        height=max(300, 120 + 18 * len(frame)),
    )


def _card_runs(data: ReportData, f: VariantFigures) -> list[np.ndarray]:
    """Card times per completed run of one variant (s, real speed)."""
    if f.source == "client":
        return [
            np.asarray(s["card_times_ms"], dtype=float) / f.scale / 1000
            for s in _samples_of(data, f)
            if s.get("outcome") == "completed" and s.get("card_times_ms")
        ]
    mine = data.cards[(data.cards.scenario == f.scenario) & (data.cards.variant == f.variant)]
    return [np.asarray(t, dtype=float) / f.scale / 1000 for t in mine.card_times_ms if len(t)]


def _median_share(runs: list[np.ndarray], grid: np.ndarray) -> np.ndarray:
    """At each grid time, the median over runs of the share of the run's cards shown (%)."""
    times = np.full((len(runs), max(len(r) for r in runs)), np.inf)
    for i, r in enumerate(runs):
        times[i, : len(r)] = np.sort(r)
    counts = np.array([len(r) for r in runs], dtype=float)
    shown = np.stack([(times <= t).sum(axis=1) for t in grid], axis=1) / counts[:, None]
    return np.median(shown, axis=0) * 100


def cards_figure(
    data: ReportData, figures: list[VariantFigures], style: _Style, picks: list[Choice]
) -> go.Figure | None:
    """Cards shown over time per variant, against the baseline shown all at once."""
    per_variant = [(f, runs) for f in figures if (runs := _card_runs(data, f))]
    if not per_variant:
        return None
    end = max(float(np.quantile([r.max() for r in runs], 0.95)) for _, runs in per_variant)
    grid = np.linspace(0.0, end * 1.05, _GRID_POINTS)
    fig = go.Figure()
    for f, runs in per_variant:
        name, color = style.of(f)
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=_median_share(runs, grid),
                mode="lines",
                line={"shape": "hv", "color": color},
                name=f"{name}: cards as they complete ({f.source})",
            )
        )
    for c in picks:
        base = c.baseline
        if base is not None and base.e2e_p50_ms is not None:
            at = base.e2e_p50_ms / 1000
            fig.add_trace(
                go.Scatter(
                    x=[0, at, at, grid[-1]],
                    y=[0, 0, 100, 100],
                    mode="lines",
                    line={"dash": "dash", "color": style.of(base)[1]},
                    name=f"{style.of(base)[0]}: all at once (e2e p50)",
                )
            )
    return layout(fig, "time since the request (s, real speed)", "cards shown, median run (%)")


def build_charts(data: ReportData, figures: list[VariantFigures], picks: list[Choice]) -> Charts:
    """Every figure the report shows."""
    style = _Style(figures)
    return Charts(
        waterfalls=waterfalls(data, figures),
        figures={
            "e2e-cdf": cdf_figure(data, figures, style, "e2e_ms"),
            "ttfc-cdf": cdf_figure(data, figures, style, "ttfc_ms"),
            "concurrency": concurrency_figure(data, figures, style),
            "cost-latency": cost_latency_figure(figures, style),
            "branch-cost": branch_cost_figure(data, style),
            "bottlenecks": bottleneck_figure(data, style),
            "cards": cards_figure(data, figures, style, picks),
        },
    )
