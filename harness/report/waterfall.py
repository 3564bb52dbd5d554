"""Waterfalls: one representative run per variant, its critical path in red.

The representative run is the completed run whose e2e is nearest the
variant's median. Each step is a bar from its start to its end, split into
the time it queued (grey: waiting for a slot or a rate limit) and the time it
ran (red when on the run's critical path, from ``Analysis.traces``); a
diamond marks each card on the row of the step that produced it. Foreign
traces get one waterfall of their representative trace, span by span.
Times are seconds at real speed since the run started.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from harness.report._plot import CRITICAL, OFF_PATH, QUEUED, label, layout
from harness.report.build import ReportData
from harness.report.findings import FOREIGN, VariantFigures

__all__ = ["waterfalls"]

_MAX_SPANS = 60  # a foreign trace can have thousands; the first ones tell the story


def _nearest_median(e2e: np.ndarray) -> int:
    return int(np.argmin(np.abs(e2e - np.median(e2e))))


def _harness(data: ReportData, f: VariantFigures) -> go.Figure | None:
    assert data.analysis is not None
    runs = data.analysis.runs
    done = runs[
        (runs.scenario == f.scenario) & (runs.variant == f.variant) & (runs.outcome == "completed")
    ]
    if done.empty:
        return None
    pick = done.iloc[_nearest_median(done.e2e_ms.to_numpy(float))]
    steps = data.analysis.steps
    mine = steps[steps.trace_id == pick.trace_id].sort_values("start_ms", kind="stable")
    traces = data.analysis.traces
    path = traces.loc[traces.trace_id == pick.trace_id, "critical_path"]
    on_path = {s["span_id"] for s in path.iloc[0]} if len(path) else set()
    scale = f.scale * 1000
    names = [label(s) for s in mine.step_id]
    start = mine.start_ms.to_numpy(float) / scale
    queue = mine.queue_ms.to_numpy(float) / scale
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=names,
            x=queue,
            base=start,
            orientation="h",
            name="queued",
            marker_color=QUEUED,
            hovertemplate="%{y}: queued %{x:.2f} s<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=mine.service_ms.to_numpy(float) / scale,
            base=start + queue,
            orientation="h",
            name="running (red: on the critical path)",
            marker_color=[CRITICAL if sid in on_path else OFF_PATH for sid in mine.span_id],
            customdata=[label(s) for s in mine.status],
            hovertemplate="%{y}: from %{base:.2f} s, ran %{x:.2f} s, %{customdata}<extra></extra>",
        )
    )
    cards = data.cards[data.cards.trace_id == pick.trace_id]
    if len(cards):
        row = {sid: name for sid, name in zip(mine.step_id, names, strict=True)}
        times = np.asarray(cards.card_times_ms.iloc[0], dtype=float) / scale
        fig.add_trace(
            go.Scatter(
                x=times,
                y=[row.get(sid, names[-1]) for sid in cards.card_steps.iloc[0]],
                mode="markers",
                name="card shown",
                marker={"symbol": "diamond", "size": 11, "color": "#ff7f0e"},
                hovertemplate="%{y}: card shown at %{x:.2f} s<extra></extra>",
            )
        )
    fig.update_yaxes(categoryorder="array", categoryarray=names, autorange="reversed")
    return layout(
        fig,
        f"time since the run started (s, real speed) · run {label(pick.trace_id[:8])}, "
        f"e2e {pick.e2e_ms / scale:.2f} s",
        "step",
        barmode="overlay",
        height=max(260, 120 + 28 * len(names)),
    )


def _foreign(data: ReportData) -> go.Figure | None:
    assert data.analysis is not None
    traces = data.analysis.traces
    foreign = traces[traces.method == "span_tree"]
    if foreign.empty:
        return None
    pick = foreign.iloc[_nearest_median(foreign.e2e_ms.to_numpy(float))]
    spans = data.spans[data.spans.trace_id == pick.trace_id].sort_values("start_ns", kind="stable")
    spans = spans.head(_MAX_SPANS)
    on_path = {s["span_id"] for s in pick.critical_path}
    origin = int(spans.start_ns.min())
    seen: dict[str, int] = {}
    names = []
    for name in spans.name:
        # Repeated names would share one row: number them.
        seen[name] = seen.get(name, 0) + 1
        names.append(label(name if seen[name] == 1 else f"{name} #{seen[name]}"))
    start_ns = spans.start_ns.to_numpy("int64")
    length_ns = np.clip(spans.end_ns.to_numpy("int64") - start_ns, 0, None)
    fig = go.Figure(
        go.Bar(
            y=names,
            x=length_ns / 1e9,
            base=(start_ns - origin) / 1e9,
            orientation="h",
            name="span (red: on the critical path)",
            marker_color=[CRITICAL if s in on_path else OFF_PATH for s in spans.span_id],
            hovertemplate="%{y}: from %{base:.3f} s, %{x:.3f} s<extra></extra>",
        )
    )
    fig.update_yaxes(categoryorder="array", categoryarray=names, autorange="reversed")
    return layout(
        fig,
        f"time since the trace started (s) · trace {label(str(pick.trace_id)[:16])}",
        "span",
        height=max(260, 120 + 22 * len(names)),
    )


def waterfalls(data: ReportData, figures: list[VariantFigures]) -> list[tuple[str, go.Figure]]:
    """(title, figure) for each variant with spans, then one for foreign traces if any."""
    if data.analysis is None:
        return []
    many = len({f.scenario for f in figures if f.mode != FOREIGN}) > 1
    out = []
    for f in figures:
        if f.mode is None or f.mode == FOREIGN:
            continue  # seen only in load samples (no spans), or drawn below
        fig = _harness(data, f)
        if fig is not None:
            out.append((f"{f.scenario} / {f.variant}" if many else f.variant, fig))
    foreign = _foreign(data)
    if foreign is not None:
        out.append(("foreign traces", foreign))
    return out
