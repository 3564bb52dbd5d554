"""Parallel branches: what each one saves, what it costs, and whether it is worth it.

Definitions (DESIGN.md, "Definitions"; decisions marked *):

* **Fork, branch** — a fork is a set of 2+ steps with the same ``depends_on``
  set in the variant's declared DAG (read from its step spans); each member is
  a parallel branch. Only variants that ran in ``parallel`` mode have branches:
  a sequential variant ran its forks one step at a time.
* **ms saved by branch b** (per run) — the makespan of the DAG replayed with
  ``b`` forced to wait for its fork siblings, minus the makespan replayed as
  run. Both replays use the run's measured *service* times (span duration minus
  queue time: waiting for a slot is a product of the schedule, which the replay
  re-creates) and the run's own schedule: uncapped runs are replayed as the
  longest path; capped runs with ``harness.dag.replay`` at the same cap and with
  the priorities the executor recorded. *Using a replay on both sides (not the
  observed makespan) keeps executor overhead out of the difference.
* **ms saved by a fork** (per run) — the fork replayed with its members one after
  another (in declared order) minus the replay as run.
* *ms saved are reported at real speed*: measured ÷ the run's time scale, since
  the value of time is per real second. Costs do not scale.
* **Extra cost of branch b** (per run) — its measured cost minus the mean
  measured cost of the same step in the baseline variant's completed runs; a
  step absent from the baseline costs all of its cost. A fork's extra cost is
  the sum over its members. *If the baseline variant was not measured at all
  the extra cost is unknown (``NaN``) and the verdict says why.
* **Cost per ms saved** — Σ extra cost / Σ ms saved over the variant's completed
  runs.
* **Verdict** — ``free`` when Σ extra cost ≤ 0 (whether or not it saves time);
  otherwise ``not_worth_it`` when nothing is saved (Σ ms saved ≤ 0; the cost per
  ms is then undefined and ``reason`` says so); otherwise ``worth_it`` when the
  cost per ms saved is below ``value_of_time_usd_per_s / 1000`` and
  ``not_worth_it`` when it is not; ``unknown`` when the extra cost is.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness import dag
from harness.analysis.dagpaths import GraphRuns, graph_groups, longest_paths

__all__ = ["BRANCH_COLUMNS", "FORK_COLUMNS", "Branches", "branch_table", "verdict"]

_COMMON = [
    "scenario",
    "variant",
    "baseline_variant",
    "runs",
    "ms_saved",
    "ms_saved_total",
    "extra_cost_usd",
    "extra_cost_usd_total",
    "usd_per_ms_saved",
    "value_of_time_usd_per_s",
    "verdict",
    "reason",
]
BRANCH_COLUMNS = [*_COMMON[:2], "fork", "step", *_COMMON[2:]]
FORK_COLUMNS = [*_COMMON[:2], "fork", "steps", *_COMMON[2:]]


@dataclass(frozen=True)
class Branches:
    """Per-branch and per-fork tables (columns ``BRANCH_COLUMNS`` / ``FORK_COLUMNS``)."""

    branches: pd.DataFrame
    forks: pd.DataFrame


def verdict(
    extra_usd_total: float, ms_saved_total: float, value_of_time_usd_per_s: float
) -> tuple[float | None, str, str]:
    """``(usd_per_ms_saved, verdict, reason)`` from the run totals of one branch or fork."""
    if np.isnan(extra_usd_total):
        return (
            None,
            "unknown",
            "the baseline variant was not measured, so the extra cost is unknown",
        )
    per_ms = extra_usd_total / ms_saved_total if ms_saved_total > 0 else None
    if extra_usd_total <= 0:
        if ms_saved_total > 0:
            return per_ms, "free", "costs nothing over the baseline"
        return None, "free", "costs nothing over the baseline and saves no time"
    if per_ms is None:
        return None, "not_worth_it", "saves no time, so the cost per ms saved is undefined"
    limit = value_of_time_usd_per_s / 1000.0
    if per_ms < limit:
        return (
            per_ms,
            "worth_it",
            f"${per_ms:.3g}/ms saved is below the value of time ${limit:.3g}/ms",
        )
    return (
        per_ms,
        "not_worth_it",
        f"${per_ms:.3g}/ms saved is not below the value of time ${limit:.3g}/ms",
    )


def _fork_label(shared: Sequence[str], members: Sequence[str]) -> str:
    after = ", ".join(shared) if shared else "start"
    return f"{after} → {{{', '.join(members)}}}"


def _makespans(
    deps: Mapping[str, Sequence[str]],
    columns: Sequence[str],
    service: np.ndarray,
    cap: int | None,
    priorities: np.ndarray | None,
    starts: np.ndarray,
) -> np.ndarray:
    """Replayed makespan of each run (row of ``service``) under ``deps``."""
    if cap is None:
        order = dag.topological_order(deps)
        index = [list(columns).index(s) for s in order]
        return longest_paths(order, deps, service[:, index], with_slack=False).length
    out = np.empty(service.shape[0])
    for i in range(service.shape[0]):
        durations = dict(zip(columns, service[i], strict=True))
        run_order = [columns[j] for j in np.argsort(starts[i], kind="stable")]
        priority = None
        if priorities is not None and not np.isnan(priorities[i]).any():
            priority = dict(zip(columns, priorities[i], strict=True))
        out[i] = dag.replay(deps, durations, cap, order=run_order, priority=priority).makespan
    return out


def _baseline_costs(
    steps: pd.DataFrame, runs: pd.DataFrame, scenario: str, baseline: str
) -> dict[str, float] | None:
    done = runs[
        (runs.scenario == scenario) & (runs.variant == baseline) & (runs.outcome == "completed")
    ]
    if done.empty:
        return None
    mine = steps[steps.trace_id.isin(done.trace_id)]
    return {str(k): float(v) for k, v in mine.groupby("step_id").cost_usd.mean().items()}


def _baseline_of(runs: pd.DataFrame, scenario: str, override: str | None) -> str:
    if override:
        return override
    named = runs.loc[runs.scenario == scenario, "baseline_variant"].dropna()
    named = named[named != ""]
    return str(named.iat[0]) if len(named) else "sequential"


def _row(
    common: dict[str, object], ms: np.ndarray, extra: np.ndarray, vot: float
) -> dict[str, object]:
    ms_total = float(ms.sum())
    extra_total = float(extra.sum()) if not np.isnan(extra).any() else float("nan")
    per_ms, word, reason = verdict(extra_total, ms_total, vot)
    n = len(ms)
    return {
        **common,
        "runs": n,
        "ms_saved": ms_total / n if n else float("nan"),
        "ms_saved_total": ms_total,
        "extra_cost_usd": extra_total / n if n else float("nan"),
        "extra_cost_usd_total": extra_total,
        "usd_per_ms_saved": per_ms,
        "value_of_time_usd_per_s": vot,
        "verdict": word,
        "reason": reason,
    }


def _group_rows(
    group: GraphRuns,
    runs: pd.DataFrame,
    base_costs: dict[str, float] | None,
    baseline: str,
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    meta = runs.set_index("trace_id").loc[group.trace_ids]
    done = (meta.outcome == "completed").to_numpy()
    if not done.any():
        return [], []
    columns = group.order
    service = group.column("service_ms")[done]
    starts = group.column("start_ms")[done]
    costs = group.column("cost_usd")[done]
    prio = group.column("priority_s")[done]
    scale = meta.time_scale.to_numpy(dtype=float)[done]
    scale = np.where(scale > 0, scale, 1.0)
    vot = float(meta.value_of_time_usd_per_s.iat[0])
    caps = meta.max_concurrency.dropna()
    cap = int(caps.iat[0]) if len(caps) and int(caps.iat[0]) > 0 else None
    # Only the steps the runs have: a dependency on a step missing from the trace is dropped.
    declared = {s: [d for d in group.declared[s] if d in group.declared] for s in columns}
    as_run = _makespans(declared, columns, service, cap, prio, starts)
    common = {"scenario": group.scenario, "variant": group.variant, "baseline_variant": baseline}

    def extra_of(step: str) -> np.ndarray:
        mine = costs[:, columns.index(step)]
        if base_costs is None:
            return np.full(mine.shape, np.nan)
        return mine - base_costs.get(step, 0.0)

    branch_rows: list[dict[str, object]] = []
    fork_rows: list[dict[str, object]] = []
    for shared, members in dag.forks(declared):
        label = _fork_label(shared, members)
        for step in members:
            forced = dag.force_after_siblings(declared, step, members)
            saved = (_makespans(forced, columns, service, cap, prio, starts) - as_run) / scale
            branch_rows.append(
                _row({**common, "fork": label, "step": step}, saved, extra_of(step), vot)
            )
        chained = {s: list(p) for s, p in declared.items()}
        for before, after in itertools.pairwise(members):
            chained[after] = [*chained[after], before]
        saved = (_makespans(chained, columns, service, cap, prio, starts) - as_run) / scale
        extra = np.sum([extra_of(s) for s in members], axis=0)
        fork_rows.append(
            _row({**common, "fork": label, "steps": tuple(members)}, saved, extra, vot)
        )
    return branch_rows, fork_rows


def branch_table(
    steps: pd.DataFrame, runs: pd.DataFrame, baseline_variant: str | None = None
) -> Branches:
    """Every parallel branch and fork of every parallel variant in the data.

    ``baseline_variant`` overrides the scenario's own ``baseline_variant``
    (default ``sequential``) as the variant extra costs are measured against.
    """
    branch_rows: list[dict[str, object]] = []
    fork_rows: list[dict[str, object]] = []
    baselines: dict[str, tuple[str, dict[str, float] | None]] = {}
    for group in graph_groups(steps, runs):
        if group.mode == "sequential":
            continue
        if group.scenario not in baselines:
            name = _baseline_of(runs, group.scenario, baseline_variant)
            baselines[group.scenario] = (name, _baseline_costs(steps, runs, group.scenario, name))
        name, costs = baselines[group.scenario]
        if group.variant == name:
            continue
        b, f = _group_rows(group, runs, costs, name)
        branch_rows += b
        fork_rows += f
    branches = _merge(pd.DataFrame(branch_rows, columns=BRANCH_COLUMNS), ["fork", "step"])
    forks = _merge(pd.DataFrame(fork_rows, columns=FORK_COLUMNS), ["fork", "steps"])
    return Branches(branches, forks)


def _merge(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Combine rows of one variant's branch that came from different graph groups.

    Runs of one variant usually share one graph; when some runs differ (a step
    failed and was retried differently), their totals are added up and the
    verdict recomputed from the sums.
    """
    if frame.empty:
        return frame
    by = ["scenario", "variant", *keys]
    if not frame.duplicated(by).any():
        return frame.reset_index(drop=True)
    rows = []
    for _, part in frame.groupby(by, sort=False):
        first = part.iloc[0].to_dict()
        n = int(part.runs.sum())
        ms_total = float(part.ms_saved_total.sum())
        extra_total = float(part.extra_cost_usd_total.sum())
        per_ms, word, reason = verdict(
            extra_total, ms_total, float(first["value_of_time_usd_per_s"])
        )
        first.update(
            runs=n,
            ms_saved=ms_total / n,
            ms_saved_total=ms_total,
            extra_cost_usd=extra_total / n,
            extra_cost_usd_total=extra_total,
            usd_per_ms_saved=per_ms,
            verdict=word,
            reason=reason,
        )
        rows.append(first)
    return pd.DataFrame(rows, columns=frame.columns)
