"""``summary.json``: the per-variant numbers, from spans read back from disk and load samples.

One code path writes the file for both ``parabench run`` (``write_summary``)
and ``parabench report`` (``summarize`` with the analysis's tables and the
load samples), so a gate reads the same structure from either. The schema is
documented in docs/report.md; ``SUMMARY_SCHEMA_VERSION`` changes whenever the
structure does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import dag
from harness.analysis.branches import Branches, branch_table
from harness.analysis.dagpaths import graph_groups, longest_paths
from harness.analysis.ingest import DataQuality, read_spans
from harness.analysis.runs import runs_table, steps_table

__all__ = [
    "SUMMARY_SCHEMA_VERSION",
    "dump_summary",
    "efficiency_table",
    "error_table",
    "summarize",
    "write_summary",
]

SUMMARY_SCHEMA_VERSION = "2.0"
_RATE_LIMITED = {"rate_limited", "http_429"}


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


def error_table(spans: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Failed LLM and tool attempts per scenario, variant and ``error.type``."""
    columns = ["scenario", "variant", "error_type", "attempts", "rate_limited"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    attrs = spans.attributes
    is_call = np.fromiter(
        (a.get("gen_ai.operation.name") in ("chat", "execute_tool") for a in attrs),
        dtype=bool,
        count=len(spans),
    )
    calls = spans[is_call]
    has_error = (bool(a.get("error.type")) for a in calls.attributes)
    failed = calls[np.fromiter(has_error, dtype=bool, count=len(calls))]
    by_trace = runs.drop_duplicates("trace_id").set_index("trace_id")
    failed = failed[failed.trace_id.isin(by_trace.index)]
    if failed.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        {
            "scenario": failed.trace_id.map(by_trace.scenario).to_numpy(),
            "variant": failed.trace_id.map(by_trace.variant).to_numpy(),
            "error_type": [str(a["error.type"]) for a in failed.attributes],
        }
    )
    table = frame.value_counts().rename("attempts").reset_index()
    table["rate_limited"] = table.error_type.isin(_RATE_LIMITED)
    return table[columns]


def _quantiles(series: pd.Series, qs: dict[str, float], scale: float = 1.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, q in qs.items():
        value = _q(series, q)
        out[name] = None if value is None else value / scale
    return out


_P50_P95 = {"p50": 0.5, "p95": 0.95}
_P50_P95_P99 = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
_BRANCH_KEYS = ["fork", "step", "runs", "ms_saved", "extra_cost_usd", "usd_per_ms_saved"]
_VERDICT_KEYS = ["verdict", "reason", "baseline_variant"]


def _server_entry(scenario: str, variant: str, group: pd.DataFrame, eff: pd.DataFrame) -> dict:
    """The span-side figures of one scenario and variant (the schema "1.0" keys, extended)."""
    time_scale = float(group.time_scale.iloc[0]) if len(group) else 1.0
    ok = group[group.outcome == "completed"]
    veff = eff[(eff.scenario == scenario) & (eff.variant == variant)] if not eff.empty else eff
    mode = group["mode"].iloc[0]
    return {
        "scenario": scenario,
        "variant": variant,
        "mode": mode,
        "max_concurrency": _cap(mode, group["max_concurrency"].iloc[0]),
        "runs": len(group),
        "outcomes": {k: int(v) for k, v in group.outcome.value_counts().items()},
        "time_scale": time_scale,
        "e2e_ms": {
            **_quantiles(group.e2e_ms, _P50_P95_P99),
            "mean": _clean(float(group.e2e_ms.mean())),
        },
        "ttfc_ms": _quantiles(group.ttfc_ms, _P50_P95),
        "speed_index_ms": _quantiles(group.speed_index_ms, _P50_P95),
        "cost_usd_per_run": {
            "mean": _clean(float(group.cost_usd.mean())),
            "p50": _q(group.cost_usd, 0.5),
        },
        "unpriced_runs": int(group.unpriced.sum()),
        "completed_runs": len(ok),
        "error_rate": 1.0 - len(ok) / len(group),
        "executor_efficiency": {
            "p50": _q(veff.efficiency, 0.5) if not veff.empty else None,
            "min": _clean(float(veff.efficiency.min())) if not veff.empty else None,
        },
        # At real speed: measured ÷ time scale (executor overhead is scaled up too).
        "e2e_ms_unscaled": _quantiles(group.e2e_ms, _P50_P95_P99, time_scale),
        "value_of_time_usd_per_s": _clean(float(group.value_of_time_usd_per_s.iloc[0])),
        "baseline_variant": str(group.baseline_variant.iloc[0]) or None,
        "latency_source": "server",
        "client": None,
    }


def _samples_only_entry(scenario: str, variant: str) -> dict[str, Any]:
    """A variant seen only in load samples: every span-side figure is empty."""
    empty = {"p50": None, "p95": None}
    return {
        "scenario": scenario,
        "variant": variant,
        "mode": None,
        "max_concurrency": None,
        "runs": 0,
        "outcomes": {},
        "time_scale": None,
        "e2e_ms": {**empty, "p99": None, "mean": None},
        "ttfc_ms": dict(empty),
        "speed_index_ms": dict(empty),
        "cost_usd_per_run": {"mean": None, "p50": None},
        "unpriced_runs": 0,
        "completed_runs": 0,
        "error_rate": None,
        "executor_efficiency": {"p50": None, "min": None},
        "e2e_ms_unscaled": {"p50": None, "p95": None, "p99": None},
        "value_of_time_usd_per_s": None,
        "baseline_variant": None,
        "latency_source": "client",
        "client": None,
        "errors": {},
    }


def _client_block(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Client-side figures of one variant's load samples (see ``harness.load.samples``)."""
    from harness.load.samples import summarize_samples

    summary = summarize_samples(samples)
    runs = summary["runs"]
    outcomes = summary["outcomes"]
    costs = [float(s["cost_usd"]) for s in samples if isinstance(s.get("cost_usd"), int | float)]

    def rate(count: int, total: int) -> float | None:
        return count / total if total else None

    return {
        "runs": runs,
        "outcomes": outcomes,
        "error_rate": rate(runs - outcomes.get("completed", 0), runs),
        "rejected_rate": rate(outcomes.get("rejected", 0), runs),
        "e2e_ms": summary["e2e_ms"],
        "ttfc_ms": summary["ttfc_ms"],
        "speed_index_ms": summary["speed_index_ms"],
        "cost_usd_per_run": {"mean": float(np.mean(costs)) if costs else None},
        "concurrency_levels": [
            {
                "concurrency": level["concurrency"],
                "runs": level["runs"],
                "outcomes": level["outcomes"],
                "error_rate": rate(
                    level["runs"] - level["outcomes"].get("completed", 0), level["runs"]
                ),
                "e2e_ms": level["e2e_ms"],
                "ttfc_ms": level["ttfc_ms"],
            }
            for level in summary["concurrency_levels"]
        ],
    }


def _branch_records(frame: pd.DataFrame, scenario: str, variant: str, key: str) -> list[dict]:
    if frame.empty:
        return []
    mine = frame[(frame.scenario == scenario) & (frame.variant == variant)]
    keys = [k if k != "step" else key for k in _BRANCH_KEYS] + _VERDICT_KEYS
    return [
        {k: _clean(list(v) if isinstance(v, tuple) else v) for k, v in row.items()}
        for row in mine[keys].to_dict(orient="records")
    ]


def summarize(
    spans: pd.DataFrame,
    quality: DataQuality | None = None,
    *,
    runs: pd.DataFrame | None = None,
    steps: pd.DataFrame | None = None,
    efficiency: pd.DataFrame | None = None,
    branches: Branches | None = None,
    samples: list[dict[str, Any]] | None = None,
    errors: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The summary: per scenario and variant, latency, TTFC, speed index, cost, errors.

    Pass tables already built from ``spans`` (``errors``: ``error_table``) to
    save building them again. With
    ``branches`` (from ``branch_table``) every entry lists its parallel branches
    and forks with their cost per ms saved and verdict; with ``samples`` (load
    samples, ``harness.load.samples``) every entry gets its client-side figures
    under ``client``, and variants seen only in the samples get an entry too.
    """
    runs = runs_table(spans) if runs is None else runs
    steps = steps_table(spans, runs) if steps is None else steps
    eff = efficiency_table(runs, steps) if efficiency is None else efficiency
    errors = error_table(spans, runs) if errors is None else errors
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for (scenario, variant), group in runs.groupby(["scenario", "variant"], sort=False):
        key = (str(scenario), str(variant))
        entry = _server_entry(*key, group, eff)
        mine = errors[(errors.scenario == key[0]) & (errors.variant == key[1])]
        entry["errors"] = {
            str(r.error_type): int(r.attempts)
            for r in mine.sort_values("attempts", ascending=False, kind="stable").itertuples()
        }
        if branches is not None:
            entry["branches"] = _branch_records(
                branches.branches, entry["scenario"], variant, "step"
            )
            entry["forks"] = _branch_records(branches.forks, entry["scenario"], variant, "steps")
        entries[key] = entry
    by_variant: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sample in samples or ():
        key = (str(sample.get("scenario")), str(sample.get("variant")))
        by_variant.setdefault(key, []).append(sample)
    for key, group in by_variant.items():
        if key not in entries:
            entries[key] = _samples_only_entry(*key)
            if branches is not None:
                entries[key].update(branches=[], forks=[])
        # What a user waits for is measured at the client: it leads when it exists.
        entries[key].update(client=_client_block(group), latency_source="client")
    sources = [name for name, n in (("spans", len(runs)), ("samples", len(samples or ()))) if n]
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "source": "+".join(sources) or "spans",
        "runs": len(runs),
        "spans": len(spans),
        "samples": len(samples or ()),
        "variants": list(entries.values()),
        "data_quality": (quality or DataQuality()).to_dict(),
    }


def dump_summary(summary: dict[str, Any], out_path: str | Path) -> None:
    """Write ``summary`` as summary.json (indented, one trailing newline)."""
    Path(out_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def write_summary(
    spans_path: str | Path, out_path: str | Path, *, samples_path: str | Path | None = None
) -> dict[str, Any]:
    """Read ``spans_path`` (and the load samples, if given) back and write summary.json."""
    spans, quality = read_spans(spans_path)
    runs = runs_table(spans)
    steps = steps_table(spans, runs)
    samples = None
    if samples_path is not None and Path(samples_path).is_file():
        from harness.load.samples import read_samples

        samples = read_samples(samples_path)
    summary = summarize(
        spans,
        quality,
        runs=runs,
        steps=steps,
        branches=branch_table(steps, runs),
        samples=samples,
    )
    dump_summary(summary, out_path)
    return summary
