"""One call from trace files to every answer: ``analyze_files`` / ``analyze``.

The result, ``Analysis``, holds pandas tables (runs, steps, traces with their
critical paths, bottlenecks, branches, forks, per-variant summaries, variant
comparisons, what-if predictions, executor efficiency) and the data-quality
findings, and turns into the JSON that ``parabench analyze --format json``
prints (``to_json``).

Harness runs (traces with a run span carrying ``parabench.run.id``) get the
exact treatment from their declared DAG; every other trace gets the span-tree
walk. One file may mix both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.bottlenecks import foreign_bottlenecks, harness_bottlenecks
from harness.analysis.branches import branch_table
from harness.analysis.compare import compare_variants
from harness.analysis.dagpaths import run_critical_paths
from harness.analysis.ingest import DataQuality, read_spans
from harness.analysis.runs import runs_table, steps_table
from harness.analysis.summary import efficiency_table, summarize
from harness.analysis.traces import TRACE_COLUMNS, foreign_traces, harness_traces
from harness.analysis.whatif import what_if_table

__all__ = ["ANALYSIS_SCHEMA_VERSION", "Analysis", "analyze", "analyze_files"]

ANALYSIS_SCHEMA_VERSION = "1.0"

Progress = Callable[[str], None]


@dataclass
class Analysis:
    """Everything ``parabench analyze`` reports, as tables."""

    files: list[str]
    spans: int
    runs: pd.DataFrame
    steps: pd.DataFrame
    traces: pd.DataFrame
    bottlenecks: pd.DataFrame
    branches: pd.DataFrame
    forks: pd.DataFrame
    variants: list[dict[str, Any]]
    comparisons: pd.DataFrame
    what_if: pd.DataFrame
    efficiency: pd.DataFrame
    data_quality: DataQuality
    notes: list[str] = field(default_factory=list)

    @property
    def harness_runs(self) -> int:
        return len(self.runs)

    @property
    def foreign_traces(self) -> int:
        return int((self.traces.method == "span_tree").sum()) if not self.traces.empty else 0

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` document (see docs/analysis.md for every field)."""
        return {
            "schema_version": ANALYSIS_SCHEMA_VERSION,
            "files": self.files,
            "spans": self.spans,
            "harness_runs": self.harness_runs,
            "foreign_traces": self.foreign_traces,
            "traces": _records(self.traces),
            "bottlenecks": _records(self.bottlenecks),
            "branches": _records(self.branches),
            "forks": _records(self.forks),
            "variants": _clean(self.variants),
            "comparisons": _records(self.comparisons),
            "what_if": _records(self.what_if),
            "data_quality": self.data_quality.to_dict(),
            "notes": self.notes,
        }


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python, tuples → lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return [_clean(row) for row in frame.to_dict(orient="records")]


def analyze(
    spans: pd.DataFrame,
    quality: DataQuality | None = None,
    *,
    baseline_variant: str | None = None,
    overlap_tolerance: float = 0.0,
    files: Iterable[str] = (),
    progress: Progress | None = None,
) -> Analysis:
    """Analyse a span table (from ``read_spans``)."""
    say = progress or (lambda _: None)
    quality = quality or DataQuality()
    notes: list[str] = []
    say("runs and steps")
    runs = runs_table(spans)
    steps = steps_table(spans, runs)
    say("critical paths")
    paths = run_critical_paths(steps, runs)
    traces = harness_traces(spans, runs, steps, paths)
    harness_ids = set(runs.trace_id)
    other = spans[~spans.trace_id.isin(harness_ids)] if harness_ids else spans
    foreign_rows: list[dict[str, Any]] = []
    per_trace: list[tuple[float, dict[str, float], list[str]]] = []
    for row, e2e, exclusive, names in foreign_traces(other, overlap_tolerance=overlap_tolerance):
        foreign_rows.append(row)
        per_trace.append((e2e, exclusive, names))
    if foreign_rows:
        traces = pd.concat(
            [traces, pd.DataFrame(foreign_rows, columns=TRACE_COLUMNS)], ignore_index=True
        )
    say("bottlenecks")
    bottlenecks = harness_bottlenecks(steps, runs)
    if per_trace:
        foreign = foreign_bottlenecks(per_trace)
        bottlenecks = (
            pd.concat([bottlenecks, foreign], ignore_index=True) if len(bottlenecks) else foreign
        )
    say("branches")
    found = branch_table(steps, runs, baseline_variant)
    say("variants")
    efficiency = efficiency_table(runs, steps)
    variants = summarize(spans, quality, runs=runs, steps=steps, efficiency=efficiency)["variants"]
    comparisons = pd.DataFrame()
    what_if = pd.DataFrame()
    if not runs.empty:
        comparisons = compare_variants(runs, baseline_variant)
        say("what-if")
        what_if = what_if_table(steps, runs, baseline_variant=baseline_variant)
    if baseline_variant and not runs.empty and baseline_variant not in set(runs.variant):
        notes.append(f"baseline variant '{baseline_variant}' is not in the data")
    return Analysis(
        files=list(files),
        spans=len(spans),
        runs=runs,
        steps=steps,
        traces=traces,
        bottlenecks=bottlenecks,
        branches=found.branches,
        forks=found.forks,
        variants=variants,
        comparisons=comparisons,
        what_if=what_if,
        efficiency=efficiency,
        data_quality=quality,
        notes=notes,
    )


def analyze_files(
    paths: Iterable[str | Path],
    *,
    baseline_variant: str | None = None,
    overlap_tolerance: float = 0.0,
    progress: Progress | None = None,
) -> Analysis:
    """Read trace files (OTLP JSON lines or Jaeger JSON) and analyse them together."""
    paths = [Path(p) for p in paths]
    if progress:
        progress("reading " + ", ".join(str(p) for p in paths))
    spans, quality = read_spans(paths)
    return analyze(
        spans,
        quality,
        baseline_variant=baseline_variant,
        overlap_tolerance=overlap_tolerance,
        files=[str(p) for p in paths],
        progress=progress,
    )
