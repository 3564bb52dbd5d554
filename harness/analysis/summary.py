"""``summary.json``: the per-variant numbers, computed from spans read back from disk."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import dag
from harness.analysis.dagpaths import graph_groups, longest_paths
from harness.analysis.ingest import DataQuality, read_spans
from harness.analysis.runs import runs_table, steps_table

__all__ = ["SUMMARY_SCHEMA_VERSION", "efficiency_table", "summarize", "write_summary"]

SUMMARY_SCHEMA_VERSION = "1.0"


def _q(series: pd.Series, q: float) -> float | None:
    values = series.dropna().to_numpy(dtype=float)
    if values.size == 0:
        return None
    return float(np.quantile(values, q))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _cap(mode: str, max_concurrency: Any) -> int | None:
    if mode == "sequential":
        return 1
    if max_concurrency is None or pd.isna(max_concurrency) or int(max_concurrency) <= 0:
        return None
    return int(max_concurrency)


def efficiency_table(runs: pd.DataFrame, steps: pd.DataFrame) -> pd.DataFrame:
    """Per completed run: the lower bound ``max(L, W/m)`` from measured service times.

    ``L`` is the critical-path length of the declared DAG, ``W`` the sum of
    service times, ``m`` the concurrency cap (1 for sequential, ∞ for parallel).
    Executor efficiency = lower bound / observed makespan. ``replay_ms`` is the
    same durations replayed under the executor's own policy (for a cap, with the
    priorities it recorded), which is what a capped run can actually reach.
    """
    columns = [
        "trace_id",
        "scenario",
        "variant",
        "critical_path_ms",
        "work_ms",
        "lower_bound_ms",
        "replay_ms",
        "makespan_ms",
        "efficiency",
    ]
    done = runs[runs.outcome == "completed"]
    parts = []
    for group in graph_groups(steps[steps.trace_id.isin(done.trace_id)], done):
        meta = done.set_index("trace_id").loc[group.trace_ids]
        cap = _cap(group.mode, meta.max_concurrency.iat[0])
        declared = {s: [d for d in group.declared[s] if d in group.declared] for s in group.order}
        order = dag.topological_order(declared)
        service = np.clip(group.column("service_ms"), 0.0, None)
        service = service[:, [group.order.index(s) for s in order]]
        length = longest_paths(order, declared, service, with_slack=False).length
        work = service.sum(axis=1)
        bound = length if cap is None else np.maximum(length, work / cap)
        if cap is None:
            replayed = length
        elif cap == 1:
            replayed = work
        else:
            starts = group.column("start_ms")[:, [group.order.index(s) for s in order]]
            prio = group.column("priority_s")[:, [group.order.index(s) for s in order]]
            replayed = np.array(
                [
                    dag.replay(
                        declared,
                        dict(zip(order, service[i], strict=True)),
                        cap,
                        order=[order[j] for j in np.argsort(starts[i], kind="stable")],
                        priority=None
                        if np.isnan(prio[i]).any()
                        else dict(zip(order, prio[i], strict=True)),
                    ).makespan
                    for i in range(len(service))
                ]
            )
        makespan = meta.e2e_ms.to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            efficiency = np.where(makespan > 0, bound / makespan, np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "trace_id": group.trace_ids,
                    "scenario": group.scenario,
                    "variant": group.variant,
                    "critical_path_ms": length,
                    "work_ms": work,
                    "lower_bound_ms": bound,
                    "replay_ms": replayed,
                    "makespan_ms": makespan,
                    "efficiency": efficiency,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def summarize(
    spans: pd.DataFrame,
    quality: DataQuality | None = None,
    *,
    runs: pd.DataFrame | None = None,
    steps: pd.DataFrame | None = None,
    efficiency: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The summary of a span table: per scenario and variant, p50/p95 e2e, TTFC, cost per run.

    Pass tables already built from ``spans`` to save building them again.
    """
    runs = runs_table(spans) if runs is None else runs
    steps = steps_table(spans, runs) if steps is None else steps
    eff = efficiency_table(runs, steps) if efficiency is None else efficiency
    variants: list[dict[str, Any]] = []
    for (scenario, variant), group in runs.groupby(["scenario", "variant"], sort=False):
        time_scale = float(group.time_scale.iloc[0]) if len(group) else 1.0
        ok = group[group.outcome == "completed"]
        veff = eff[(eff.scenario == scenario) & (eff.variant == variant)] if not eff.empty else eff
        entry = {
            "scenario": scenario,
            "variant": variant,
            "mode": group["mode"].iloc[0],
            "max_concurrency": _cap(group["mode"].iloc[0], group["max_concurrency"].iloc[0]),
            "runs": len(group),
            "outcomes": {k: int(v) for k, v in group.outcome.value_counts().items()},
            "time_scale": time_scale,
            "e2e_ms": {
                "p50": _q(group.e2e_ms, 0.5),
                "p95": _q(group.e2e_ms, 0.95),
                "mean": _clean(float(group.e2e_ms.mean())),
            },
            "ttfc_ms": {"p50": _q(group.ttfc_ms, 0.5), "p95": _q(group.ttfc_ms, 0.95)},
            "speed_index_ms": {
                "p50": _q(group.speed_index_ms, 0.5),
                "p95": _q(group.speed_index_ms, 0.95),
            },
            "cost_usd_per_run": {
                "mean": _clean(float(group.cost_usd.mean())),
                "p50": _q(group.cost_usd, 0.5),
            },
            "unpriced_runs": int(group.unpriced.sum()),
            "completed_runs": len(ok),
            "executor_efficiency": {
                "p50": _q(veff.efficiency, 0.5) if not veff.empty else None,
                "min": _clean(float(veff.efficiency.min())) if not veff.empty else None,
            },
            # At real speed: measured ÷ time scale (executor overhead is scaled up too).
            "e2e_ms_unscaled": {
                "p50": (_q(group.e2e_ms, 0.5) or 0) / time_scale if len(group) else None,
                "p95": (_q(group.e2e_ms, 0.95) or 0) / time_scale if len(group) else None,
            },
        }
        variants.append(entry)
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "source": "spans",
        "runs": len(runs),
        "spans": len(spans),
        "variants": variants,
        "data_quality": (quality or DataQuality()).to_dict(),
    }


def write_summary(spans_path: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Read ``spans_path`` back and write ``out_path`` (summary.json)."""
    spans, quality = read_spans(spans_path)
    summary = summarize(spans, quality)
    Path(out_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
