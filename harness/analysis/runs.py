"""Per-run and per-step tables from a span table of harness traces."""

from __future__ import annotations

import math
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
    return attrs.get("gen_ai.operation.name") == "invoke_agent" and isinstance(
        attrs.get("parabench.run.id"), str
    )


# Attributes are read as the harness writes them. One of another type (a trace
# edited by hand or by another tool) counts as absent rather than stopping the
# analysis: a text where a number belongs, a list where a step id belongs.


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return default


def _time_scale(value: Any) -> float:
    """The run's time scale; one that is not a positive number (0, -1, NaN) counts as 1."""
    scale = _number(value, 1.0)
    return scale if 0 < scale < math.inf else 1.0


def _floats(values: list[Any], default: float) -> list[float]:
    """``float`` of each value; if one is not a number, each bad one is ``default``."""
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        return [_number(v, default) for v in values]


def _int(value: Any, default: int) -> int:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return default


def _ints(values: list[Any], default: int) -> list[int]:
    """``int`` of each value; if one is not a number, each bad one is ``default``."""
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        return [_int(v, default) for v in values]


def _step_ids(value: Any) -> tuple[str, ...]:
    """``parabench.step.depends_on`` as a tuple of step ids (what is not text is dropped)."""
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()


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
                "scenario": _text(attrs.get("parabench.scenario")),
                "variant": _text(attrs.get("parabench.variant")),
                "mode": _text(attrs.get("parabench.variant.mode")),
                "max_concurrency": _int(attrs.get("parabench.variant.max_concurrency"), 0) or None,
                "outcome": _text(attrs.get("parabench.outcome"), "unknown"),
                "start_ns": start_ns,
                "e2e_ms": _ms(end_ns - start_ns),
                "ttfc_ms": cards[0] * 1000 if cards else np.nan,
                "speed_index_ms": si * 1000 if si is not None else np.nan,
                "cards": len(cards),
                "cost_usd": _number(attrs.get("parabench.cost_usd"), 0.0),
                "unpriced": bool(attrs.get("parabench.cost.unpriced", False)),
                "time_scale": _time_scale(attrs.get("parabench.time_scale")),
                "value_of_time_usd_per_s": _number(
                    attrs.get("parabench.value_of_time_usd_per_s"), 0.0
                ),
                "baseline_variant": _text(attrs.get("parabench.baseline_variant")),
            }
        )
    # One run per trace: a second run span in a trace (copied or edited by hand) is dropped.
    return pd.DataFrame(rows, columns=RUN_COLUMNS).drop_duplicates("trace_id", ignore_index=True)


def steps_table(spans: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per step span whose parent is a run span, times in ms since its run started."""
    if runs is None:
        runs = runs_table(spans)
    with paused_gc():
        return _steps_table(spans, runs)


def _steps_table(spans: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    attributes = spans["attributes"]
    mask = np.fromiter(
        (isinstance(a.get("parabench.step.id"), str) for a in attributes),
        dtype=bool,
        count=len(spans),
    )
    sub = spans[mask]
    sub = sub[sub.parent_span_id.isin(runs.span_id)]
    # The parent must be the run span of the step's own trace, not one with the same id elsewhere.
    run_keys = pd.MultiIndex.from_arrays([runs.trace_id, runs.span_id])
    run_row = run_keys.get_indexer(pd.MultiIndex.from_arrays([sub.trace_id, sub.parent_span_id]))
    sub, run_row = sub[run_row >= 0], run_row[run_row >= 0]
    if sub.empty:
        return pd.DataFrame(columns=STEP_COLUMNS)
    run_start = runs.start_ns.to_numpy(dtype=np.int64)[run_row]
    start = sub.start_ns.to_numpy(dtype=np.int64)
    end = sub.end_ns.to_numpy(dtype=np.int64)
    attrs = sub.attributes.tolist()
    duration = np.clip(end - start, 0, None) / 1e6
    queue = np.minimum(
        np.array(_floats([a.get("parabench.step.queue_ms", 0.0) for a in attrs], 0.0)), duration
    )
    frame = pd.DataFrame(
        {
            "trace_id": sub.trace_id.to_numpy(),
            "span_id": sub.span_id.to_numpy(),
            "scenario": runs.scenario.to_numpy()[run_row],
            "variant": runs.variant.to_numpy()[run_row],
            "step_id": [a["parabench.step.id"] for a in attrs],
            "kind": [_text(a.get("parabench.step.kind")) for a in attrs],
            "depends_on": [_step_ids(a.get("parabench.step.depends_on")) for a in attrs],
            "status": [_text(a.get("parabench.step.status"), "ok") for a in attrs],
            "start_ms": (start - run_start) / 1e6,
            "end_ms": (end - run_start) / 1e6,
            "duration_ms": duration,
            "queue_ms": queue,
            "service_ms": duration - queue,
            "attempts": _ints([a.get("parabench.step.attempts", 0) for a in attrs], 0),
            "cost_usd": _floats([a.get("parabench.cost_usd", 0.0) for a in attrs], 0.0),
            "input_tokens": _ints([a.get("gen_ai.usage.input_tokens", 0) for a in attrs], 0),
            "output_tokens": _ints([a.get("gen_ai.usage.output_tokens", 0) for a in attrs], 0),
            "priority_s": _floats(
                [a.get("parabench.step.priority_s", np.nan) for a in attrs], np.nan
            ),
        }
    )
    return frame[STEP_COLUMNS]
