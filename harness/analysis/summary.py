"""``summary.json``: the per-variant numbers, computed from spans read back from disk."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import dag
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
    Executor efficiency = lower bound / observed makespan.
    """
    rows = []
    by_trace = {t: g for t, g in steps.groupby("trace_id", sort=False)}
    for run in runs.itertuples(index=False):
        group = by_trace.get(run.trace_id)
        if group is None or run.outcome != "completed":
            continue
        deps = {r.step_id: [d for d in r.depends_on] for r in group.itertuples(index=False)}
        if any(d not in deps for ds in deps.values() for d in ds):
            continue
        service = dict(zip(group.step_id, group.service_ms, strict=True))
        cap = _cap(run.mode, run.max_concurrency)
        bound = dag.lower_bound(deps, service, cap)
        # Replay with the executor's own policy: its recorded priorities when present.
        order = list(group.sort_values("start_ms").step_id)
        priority = None
        if cap != 1 and group.priority_s.notna().all():
            priority = dict(zip(group.step_id, group.priority_s, strict=True))
        replayed = dag.replay(deps, service, cap, order=order, priority=priority).makespan
        rows.append(
            {
                "trace_id": run.trace_id,
                "scenario": run.scenario,
                "variant": run.variant,
                "critical_path_ms": dag.critical_path(deps, service).length,
                "work_ms": sum(service.values()),
                "lower_bound_ms": bound,
                "replay_ms": replayed,
                "makespan_ms": run.e2e_ms,
                "efficiency": bound / run.e2e_ms if run.e2e_ms > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def summarize(spans: pd.DataFrame, quality: DataQuality | None = None) -> dict[str, Any]:
    """The summary of a span table: per scenario and variant, p50/p95 e2e, TTFC, cost per run."""
    runs = runs_table(spans)
    steps = steps_table(spans, runs)
    eff = efficiency_table(runs, steps)
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
