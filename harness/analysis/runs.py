"""Per-run and per-step tables from a span table of harness traces."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.analysis._gc import paused_gc
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


def _is_run(attrs: dict[str, Any]) -> bool:
    return attrs.get("gen_ai.operation.name") == "invoke_agent" and "parabench.run.id" in attrs


def runs_table(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per run span (``gen_ai.operation.name == invoke_agent`` with a run id)."""
    with paused_gc():
        return _runs_table(spans)


def _runs_table(spans: pd.DataFrame) -> pd.DataFrame:
    mask = np.fromiter(map(_is_run, spans["attributes"]), dtype=bool, count=len(spans))
    rows: list[dict[str, Any]] = []
    sub = spans[mask]
    for trace_id, span_id, start_ns, end_ns, attrs, events in zip(
        sub.trace_id, sub.span_id, sub.start_ns, sub.end_ns, sub.attributes, sub.events, strict=True
    ):
        cards = sorted(
            (e["time_ns"] - start_ns) / 1e9 for e in events or () if e["name"] == "parabench.card"
        )
        si = speed_index_s(cards)
        rows.append(
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "run_id": attrs["parabench.run.id"],
                "scenario": attrs.get("parabench.scenario", ""),
                "variant": attrs.get("parabench.variant", ""),
                "mode": attrs.get("parabench.variant.mode", ""),
                "max_concurrency": attrs.get("parabench.variant.max_concurrency") or None,
                "outcome": attrs.get("parabench.outcome", "unknown"),
                "start_ns": start_ns,
                "e2e_ms": _ms(end_ns - start_ns),
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
    """One row per step span whose parent is a run span, times in ms since its run started."""
    if runs is None:
        runs = runs_table(spans)
    with paused_gc():
        return _steps_table(spans, runs)


def _steps_table(spans: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    attributes = spans["attributes"]
    mask = np.fromiter(("parabench.step.id" in a for a in attributes), dtype=bool, count=len(spans))
    sub = spans[mask]
    sub = sub[sub.parent_span_id.isin(runs.span_id)]
    if sub.empty:
        return pd.DataFrame(columns=STEP_COLUMNS)
    by_run = runs.set_index("span_id")
    parent = sub.parent_span_id
    run_start = parent.map(by_run.start_ns).to_numpy(dtype=np.int64)
    start = sub.start_ns.to_numpy(dtype=np.int64)
    end = sub.end_ns.to_numpy(dtype=np.int64)
    attrs = sub.attributes.tolist()
    duration = np.clip(end - start, 0, None) / 1e6
    queue = np.minimum(
        np.array([float(a.get("parabench.step.queue_ms", 0.0)) for a in attrs]), duration
    )
    frame = pd.DataFrame(
        {
            "trace_id": sub.trace_id.to_numpy(),
            "span_id": sub.span_id.to_numpy(),
            "scenario": parent.map(by_run.scenario).to_numpy(),
            "variant": parent.map(by_run.variant).to_numpy(),
            "step_id": [a["parabench.step.id"] for a in attrs],
            "kind": [a.get("parabench.step.kind", "") for a in attrs],
            "depends_on": [tuple(a.get("parabench.step.depends_on") or ()) for a in attrs],
            "status": [a.get("parabench.step.status", "ok") for a in attrs],
            "start_ms": (start - run_start) / 1e6,
            "end_ms": (end - run_start) / 1e6,
            "duration_ms": duration,
            "queue_ms": queue,
            "service_ms": duration - queue,
            "attempts": [int(a.get("parabench.step.attempts", 0)) for a in attrs],
            "cost_usd": [float(a.get("parabench.cost_usd", 0.0)) for a in attrs],
            "input_tokens": [int(a.get("gen_ai.usage.input_tokens", 0)) for a in attrs],
            "output_tokens": [int(a.get("gen_ai.usage.output_tokens", 0)) for a in attrs],
            "priority_s": [float(a.get("parabench.step.priority_s", np.nan)) for a in attrs],
        }
    )
    return frame[STEP_COLUMNS]
