"""Per-run and per-step tables from a span table of harness traces."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.measures import speed_index

__all__ = ["RUN_COLUMNS", "STEP_COLUMNS", "runs_table", "speed_index_s", "steps_table"]

RUN_COLUMNS = [
    "trace_id",
    "span_id",
    "run_id",
    "scenario",
    "variant",
    "mode",
    "max_concurrency",
    "outcome",
    "start_ns",
    "e2e_ms",
    "ttfc_ms",
    "speed_index_ms",
    "cards",
    "cost_usd",
    "unpriced",
    "time_scale",
    "value_of_time_usd_per_s",
    "baseline_variant",
]
STEP_COLUMNS = [
    "trace_id",
    "span_id",
    "scenario",
    "variant",
    "step_id",
    "kind",
    "depends_on",
    "status",
    "start_ms",
    "end_ms",
    "duration_ms",
    "queue_ms",
    "service_ms",
    "attempts",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "priority_s",
]


def speed_index_s(card_times_s: list[float]) -> float | None:
    """The speed index of card times in seconds (see ``harness.measures.speed_index``)."""
    return speed_index(card_times_s)


def _ms(ns: float) -> float:
    return max(ns, 0) / 1e6


def runs_table(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per run span (``gen_ai.operation.name == invoke_agent`` with a run id)."""
    rows: list[dict[str, Any]] = []
    for span in spans.itertuples(index=False):
        attrs = span.attributes
        if attrs.get("gen_ai.operation.name") != "invoke_agent" or "parabench.run.id" not in attrs:
            continue
        cards = sorted(
            (e["time_ns"] - span.start_ns) / 1e9
            for e in span.events
            if e["name"] == "parabench.card"
        )
        si = speed_index_s(cards)
        rows.append(
            {
                "trace_id": span.trace_id,
                "span_id": span.span_id,
                "run_id": attrs["parabench.run.id"],
                "scenario": attrs.get("parabench.scenario", ""),
                "variant": attrs.get("parabench.variant", ""),
                "mode": attrs.get("parabench.variant.mode", ""),
                "max_concurrency": attrs.get("parabench.variant.max_concurrency") or None,
                "outcome": attrs.get("parabench.outcome", "unknown"),
                "start_ns": span.start_ns,
                "e2e_ms": _ms(span.end_ns - span.start_ns),
                "ttfc_ms": cards[0] * 1000 if cards else np.nan,
                "speed_index_ms": si * 1000 if si is not None else np.nan,
                "cards": len(cards),
                "cost_usd": float(attrs.get("parabench.cost_usd", 0.0)),
                "unpriced": bool(attrs.get("parabench.cost.unpriced", False)),
                "time_scale": float(attrs.get("parabench.time_scale", 1.0)),
                "value_of_time_usd_per_s": float(
                    attrs.get("parabench.value_of_time_usd_per_s", 0.0)
                ),
                "baseline_variant": attrs.get("parabench.baseline_variant", ""),
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def steps_table(spans: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per step span, times in ms since its run started."""
    if runs is None:
        runs = runs_table(spans)
    run_by_span = {r.span_id: r for r in runs.itertuples(index=False)}
    rows: list[dict[str, Any]] = []
    for span in spans.itertuples(index=False):
        attrs = span.attributes
        if "parabench.step.id" not in attrs:
            continue
        run = run_by_span.get(span.parent_span_id)
        if run is None:
            continue
        duration = _ms(span.end_ns - span.start_ns)
        queue = min(float(attrs.get("parabench.step.queue_ms", 0.0)), duration)
        rows.append(
            {
                "trace_id": span.trace_id,
                "span_id": span.span_id,
                "scenario": run.scenario,
                "variant": run.variant,
                "step_id": attrs["parabench.step.id"],
                "kind": attrs.get("parabench.step.kind", ""),
                "depends_on": tuple(attrs.get("parabench.step.depends_on") or ()),
                "status": attrs.get("parabench.step.status", "ok"),
                "start_ms": (span.start_ns - run.start_ns) / 1e6,
                "end_ms": (span.end_ns - run.start_ns) / 1e6,
                "duration_ms": duration,
                "queue_ms": queue,
                "service_ms": duration - queue,
                "attempts": int(attrs.get("parabench.step.attempts", 0)),
                "cost_usd": float(attrs.get("parabench.cost_usd", 0.0)),
                "input_tokens": int(attrs.get("gen_ai.usage.input_tokens", 0)),
                "output_tokens": int(attrs.get("gen_ai.usage.output_tokens", 0)),
                "priority_s": float(attrs.get("parabench.step.priority_s", np.nan)),
            }
        )
    return pd.DataFrame(rows, columns=STEP_COLUMNS)
