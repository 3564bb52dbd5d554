"""The critical path of every trace, as sections of time latest first.

* **Harness runs** (a run span with ``parabench.run.id``): the exact path from the
  declared DAG (``dagpaths``), at step granularity. Walking back from the run's
  end, each step on the path owns ``[start, end]`` (cut at the time already
  covered) and the run span owns what no path step covers: the time before the
  first step, between a step and the next, and after the last — the executor's
  own overhead. ``method`` is ``declared_dag``.
* **Any other trace**: the Jaeger-compatible backward walk over the span tree
  (``critical_path``), ``method`` ``span_tree``.

Times are milliseconds since the trace's root span started. Sections tile the
root span exactly, so their lengths add up to ``e2e_ms``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.critical_path import CpSpan, critical_path, exclusive_by_name

__all__ = ["TRACE_COLUMNS", "foreign_traces", "harness_traces"]

TRACE_COLUMNS = ["trace_id", "method", "scenario", "variant", "e2e_ms", "critical_path"]

Section = dict[str, Any]


def _section(span_id: str, name: str, start: float, end: float) -> Section:
    return {"span_id": span_id, "name": name, "start_ms": start, "end_ms": end}


def harness_traces(
    spans: pd.DataFrame, runs: pd.DataFrame, steps: pd.DataFrame, paths: pd.DataFrame
) -> pd.DataFrame:
    """One row per harness run with a DAG path (``paths`` from ``run_critical_paths``)."""
    if paths.empty:
        return pd.DataFrame(columns=TRACE_COLUMNS)
    wanted = set(runs.span_id) | set(steps.span_id)
    named = spans[spans.span_id.isin(wanted)]
    name_of = dict(zip(named.span_id, named.name, strict=True))
    step_at = {
        (t, s): (sid, start, end)
        for t, s, sid, start, end in zip(
            steps.trace_id, steps.step_id, steps.span_id, steps.start_ms, steps.end_ms, strict=True
        )
    }
    run_of = {r.trace_id: r for r in runs.itertuples(index=False)}
    rows = []
    for trace_id, path in zip(paths.trace_id, paths.path, strict=True):
        run = run_of[trace_id]
        run_name = name_of.get(run.span_id, "")
        sections: list[Section] = []
        cur = float(run.e2e_ms)
        for step in reversed(path):
            span_id, start, end = step_at[(trace_id, step)]
            end = min(float(end), cur)
            start = max(min(float(start), end), 0.0)
            if cur > end:
                sections.append(_section(run.span_id, run_name, end, cur))
            if end > start:
                sections.append(_section(span_id, name_of.get(span_id, ""), start, end))
            cur = start
        if cur > 0:
            sections.append(_section(run.span_id, run_name, 0.0, cur))
        rows.append(
            {
                "trace_id": trace_id,
                "method": "declared_dag",
                "scenario": run.scenario,
                "variant": run.variant,
                "e2e_ms": float(run.e2e_ms),
                "critical_path": sections,
            }
        )
    return pd.DataFrame(rows, columns=TRACE_COLUMNS)


def _cp_spans(trace: pd.DataFrame) -> list[CpSpan]:
    """The trace's spans with times in ns since its earliest start.

    Subtracting in integers first keeps nanoseconds exact: an absolute Unix time
    in ns as a float is only good to about 256 ns.
    """
    origin = int(trace.start_ns.min())
    return [
        CpSpan(
            span_id=sid,
            parent_id=pid or None,
            start=float(start - origin),
            end=float(end - origin),
            kind=kind,
            name=name,
        )
        for sid, pid, start, end, kind, name in zip(
            trace.span_id,
            trace.parent_span_id,
            trace.start_ns.to_numpy(dtype="int64"),
            trace.end_ns.to_numpy(dtype="int64"),
            trace.kind,
            trace.name,
            strict=True,
        )
    ]


def foreign_traces(
    spans: pd.DataFrame, *, overlap_tolerance: float = 0.0
) -> Iterator[tuple[dict[str, Any], float, dict[str, float], list[str]]]:
    """Per trace: its row (``TRACE_COLUMNS``), e2e, exclusive critical ms by name, span names."""
    for trace_id, trace in spans.groupby("trace_id", sort=False):
        cp_spans = _cp_spans(trace)
        sections = critical_path(cp_spans, overlap_tolerance=overlap_tolerance)
        if not sections:
            continue
        origin = min(s.start for s in sections)
        end = max(s.end for s in sections)
        names = {s.span_id: s.name for s in cp_spans}
        path = [
            _section(
                s.span_id,
                names.get(s.span_id, ""),
                (s.start - origin) / 1e6,
                (s.end - origin) / 1e6,
            )
            for s in sections
        ]
        exclusive = {k: v / 1e6 for k, v in exclusive_by_name(cp_spans, sections).items()}
        row = {
            "trace_id": trace_id,
            "method": "span_tree",
            "scenario": "",
            "variant": "",
            "e2e_ms": (end - origin) / 1e6,
            "critical_path": path,
        }
        yield (
            row,
            row["e2e_ms"],
            exclusive,
            [n or s for n, s in zip(trace.name, trace.span_id, strict=True)],
        )


def trace_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows from ``foreign_traces`` as a table."""
    return (
        pd.DataFrame(rows, columns=TRACE_COLUMNS) if rows else pd.DataFrame(columns=TRACE_COLUMNS)
    )


def e2e_quantiles(frame: pd.DataFrame) -> dict[str, float | None]:
    """p50 and p95 of ``e2e_ms`` (``None`` when empty)."""
    values = frame.e2e_ms.to_numpy(dtype=float)
    if values.size == 0:
        return {"p50": None, "p95": None}
    return {"p50": float(np.quantile(values, 0.5)), "p95": float(np.quantile(values, 0.95))}
