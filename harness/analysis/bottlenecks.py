"""Bottlenecks: which steps the runs spend their critical-path time in.

For harness runs the unit is the step (per scenario and variant); for foreign
traces it is the operation (span name). For each, over the runs that contain
it:

* ``cp_ms_mean`` / ``cp_ms_p95`` — critical-path time per run (0 in runs where
  it is not on the path). For a harness step that is its duration when it is on
  the path of the schedule graph (see ``dagpaths``); for a foreign operation, the
  exclusive critical time of the spans with that name (see ``critical_path``).
* ``share_of_e2e`` — Σ critical-path time / Σ e2e over those runs.
* ``on_path_share`` — the fraction of those runs in which it is on the path.
* ``queue_ms_mean`` / ``service_ms_mean`` — for harness steps, the mean time the
  step waited for a slot or a rate limit before its first attempt, and the rest
  of its duration; ``cp_queue_ms_mean`` is the queue time it spent *on the path*.
  (Foreign traces do not say, so these are empty there.)
* ``slack_ms_mean`` / ``drag_ms_mean`` — for harness steps, the mean slack and
  drag over the schedule graph (see ``dagpaths``): how much longer the step could
  have taken without delaying the run, and how much sooner the run would have
  ended had the step taken no time.

A harness run's time on its path that no step covers — before the first step,
between a step and the next, after the last — is the executor's own overhead,
reported as the row ``(between steps)``.

Rows are ranked within each scenario and variant by ``share_of_e2e``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from harness.analysis.dagpaths import drag, graph_groups, longest_paths

__all__ = ["BETWEEN_STEPS", "BOTTLENECK_COLUMNS", "foreign_bottlenecks", "harness_bottlenecks"]

BETWEEN_STEPS = "(between steps)"
BOTTLENECK_COLUMNS = [
    "scenario",
    "variant",
    "step",
    "runs",
    "cp_ms_mean",
    "cp_ms_p95",
    "share_of_e2e",
    "on_path_share",
    "duration_ms_mean",
    "queue_ms_mean",
    "service_ms_mean",
    "cp_queue_ms_mean",
    "slack_ms_mean",
    "drag_ms_mean",
]


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _p95(values: np.ndarray) -> float:
    return float(np.quantile(values, 0.95)) if values.size else float("nan")


def harness_bottlenecks(steps: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per scenario, variant and step of harness runs (see the module docstring)."""
    e2e_of = dict(zip(runs.trace_id, runs.e2e_ms, strict=True))
    parts: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
    for group in graph_groups(steps, runs):
        duration = group.column("duration_ms")
        queue = np.nan_to_num(group.column("queue_ms"))
        lp = longest_paths(group.order, group.deps, duration)
        drags = drag(group.order, group.deps, duration)
        on = lp.on_path
        cp = np.where(on, np.clip(duration, 0.0, None), 0.0)
        e2e = np.array([e2e_of.get(t, np.nan) for t in group.trace_ids], dtype=float)
        between = np.clip(e2e - cp.sum(axis=1), 0.0, None)
        bucket = parts.setdefault((group.scenario, group.variant), [])
        for j, step in enumerate(group.order):
            bucket.append(
                {
                    "step": np.array([step]),
                    "cp": cp[:, j],
                    "on": on[:, j],
                    "e2e": e2e,
                    "duration": duration[:, j],
                    "queue": queue[:, j],
                    "cp_queue": np.where(on[:, j], np.minimum(queue[:, j], cp[:, j]), 0.0),
                    "slack": lp.slack[:, j],
                    "drag": drags[:, j],
                }
            )
        bucket.append(
            {
                "step": np.array([BETWEEN_STEPS]),
                "cp": between,
                "on": between > 0,
                "e2e": e2e,
                "duration": between,
                "queue": np.zeros_like(between),
                "cp_queue": np.zeros_like(between),
                "slack": np.full_like(between, np.nan),
                "drag": np.full_like(between, np.nan),
            }
        )
    rows: list[dict[str, object]] = []
    for (scenario, variant), bucket in parts.items():
        by_step: dict[str, list[dict[str, np.ndarray]]] = {}
        for item in bucket:
            by_step.setdefault(str(item["step"][0]), []).append(item)
        for step, items in by_step.items():
            cat = {k: np.concatenate([i[k] for i in items]) for k in items[0] if k != "step"}
            rows.append(_row(scenario, variant, step, cat, harness=step != BETWEEN_STEPS))
    return _rank(pd.DataFrame(rows, columns=BOTTLENECK_COLUMNS))


def _row(
    scenario: str, variant: str, step: str, cat: Mapping[str, np.ndarray], *, harness: bool
) -> dict[str, object]:
    cp, e2e = cat["cp"], cat["e2e"]
    total_e2e = float(np.nansum(e2e))
    row: dict[str, object] = {
        "scenario": scenario,
        "variant": variant,
        "step": step,
        "runs": int(cp.size),
        "cp_ms_mean": float(cp.mean()) if cp.size else float("nan"),
        "cp_ms_p95": _p95(cp),
        "share_of_e2e": float(cp.sum()) / total_e2e if total_e2e > 0 else float("nan"),
        "on_path_share": float(cat["on"].mean()) if cp.size else float("nan"),
        "duration_ms_mean": _mean(cat["duration"]),
        "queue_ms_mean": float("nan"),
        "service_ms_mean": float("nan"),
        "cp_queue_ms_mean": float("nan"),
        "slack_ms_mean": _mean(cat["slack"]) if "slack" in cat else float("nan"),
        "drag_ms_mean": _mean(cat["drag"]) if "drag" in cat else float("nan"),
    }
    if harness:
        queue = cat["queue"]
        row["queue_ms_mean"] = float(queue.mean())
        row["service_ms_mean"] = _mean(cat["duration"] - queue)
        row["cp_queue_ms_mean"] = float(cat["cp_queue"].mean())
    return row


def _rank(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    order = frame.sort_values(
        ["scenario", "variant", "share_of_e2e"], ascending=[True, True, False], kind="stable"
    )
    return order.reset_index(drop=True)


def foreign_bottlenecks(
    per_trace: Iterable[tuple[float, Mapping[str, float], Iterable[str]]],
) -> pd.DataFrame:
    """Per operation name, from ``(e2e, exclusive critical time by name, names present)`` per trace.

    The scenario and variant columns are empty: foreign traces carry neither.
    """
    cps: dict[str, list[float]] = {}
    e2es: dict[str, list[float]] = {}
    for e2e, exclusive, names in per_trace:
        for name in set(names):
            cps.setdefault(name, []).append(float(exclusive.get(name, 0.0)))
            e2es.setdefault(name, []).append(e2e)
    rows = []
    for name, values in cps.items():
        cp = np.asarray(values)
        cat = {
            "cp": cp,
            "e2e": np.asarray(e2es[name]),
            "on": cp > 0,
            "duration": np.full(cp.shape, np.nan),
            "queue": np.zeros_like(cp),
            "cp_queue": np.zeros_like(cp),
        }
        rows.append(_row("", "", name, cat, harness=False))
    return _rank(pd.DataFrame(rows, columns=BOTTLENECK_COLUMNS))
