"""What-if replay: predict how long a variant would take from another variant's traces.

Question answered: "we measured the sequential agent; how fast would the same
work be run in parallel, or with at most two calls in flight?" — before (or
instead of) measuring that variant.

How: take the completed runs of the *source* variant, and for every step of
the *target* DAG its measured **service** time (step duration minus the time it
queued for a slot; queueing is a product of the schedule, so the replay
re-creates it instead of resampling it). Draw ``n`` sets of step durations and
replay each with ``harness.dag.replay`` under the target schedule — the
executor's own list-scheduling policy:

* sequential: one step at a time in topological order (cap 1);
* parallel: each step starts when its dependencies finish (no cap);
* capped: at most N steps at once; when slots are short the step with the
  longest remaining path (bottom level, from the median service times) goes
  first, as the executor does.

The makespans form the predicted latency distribution (ms, at the source's
time scale). Resampling (``resample=``):

* ``"run"`` (default): draw a whole source run and take all of its step
  durations together. This keeps correlations between steps (a slow provider
  minute slows every call of that run), so it does not invent combinations
  that never happen; the prediction has as many distinct values as source runs.
* ``"step"``: draw each step's duration from a different random run. Smoother,
  but it treats steps as independent, which narrows the spread when they are not.

Where the target variant was measured too (at the same time scale), the
result carries its measured p50/p95 and the prediction error
``(predicted − measured) / measured``. The replay covers the steps only: the
executor's small per-step overhead and any change of the work itself (a
variant that sends more tokens per step) are not predicted — ``note`` names
steps whose token counts differ between source and target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness import dag
from harness.analysis.compare import resolve_baseline
from harness.errors import ConfigError, ParabenchError

__all__ = ["WHAT_IF_COLUMNS", "WhatIf", "what_if", "what_if_table"]

Resample = Literal["run", "step"]

WHAT_IF_COLUMNS = [
    "scenario",
    "time_scale",
    "source_variant",
    "target_variant",
    "schedule",
    "n_source_runs",
    "n_target_runs",
    "predicted_p50_ms",
    "predicted_p95_ms",
    "measured_p50_ms",
    "measured_p95_ms",
    "error_p50",
    "error_p95",
    "note",
]


@dataclass(frozen=True)
class WhatIf:
    """A predicted latency distribution and, where measured, how far off it was."""

    scenario: str
    source_variant: str
    target_variant: str | None
    schedule: str
    max_concurrency: int | None  # 1 = sequential, None = no cap
    resample: str
    time_scale: float
    n_source_runs: int
    samples_ms: npt.NDArray[np.float64] = field(repr=False)
    p50_ms: float
    p95_ms: float
    mean_ms: float
    n_target_runs: int = 0
    measured_p50_ms: float | None = None
    measured_p95_ms: float | None = None
    error_p50: float | None = None  # (predicted − measured) / measured
    error_p95: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Everything but the samples, JSON-ready."""
        return {k: v for k, v in self.__dict__.items() if k != "samples_ms"}


def _where(scenario: str, source: str, target: str | None) -> str:
    return f"what-if {scenario}: {source} → {target or 'replayed schedule'}"


def _ordered_deps(steps: pd.DataFrame) -> dict[str, list[str]]:
    """Declared dependencies from step spans, steps in the order they usually start."""
    first = steps.groupby("step_id", sort=False).agg(
        start=("start_ms", "median"), depends_on=("depends_on", "first")
    )
    first = first.sort_values("start", kind="stable")
    return {str(sid): list(d) for sid, d in zip(first.index, first.depends_on, strict=True)}


def _schedule(
    sequential: bool, max_concurrency: int | None, target_runs: pd.DataFrame, where: str
) -> int | None:
    if sequential and max_concurrency is not None:
        raise ConfigError(
            "both sequential=True and max_concurrency were given",
            where=where,
            fix="pass one of them: sequential is a cap of 1",
        )
    if max_concurrency is not None and max_concurrency < 1:
        raise ConfigError(
            f"max_concurrency must be at least 1, got {max_concurrency}",
            where=where,
            fix="pass a positive cap, or None for no cap",
        )
    if sequential:
        return 1
    if max_concurrency is not None:
        return max_concurrency
    if not target_runs.empty:  # the target's own schedule
        mode, cap = target_runs["mode"].iloc[0], target_runs["max_concurrency"].iloc[0]
        if mode == "sequential":
            return 1
        if cap is not None and not pd.isna(cap) and int(cap) > 0:
            return int(cap)
    return None


def _describe(cap: int | None) -> str:
    if cap == 1:
        return "sequential (one step at a time)"
    if cap is None:
        return "parallel (each step starts when its dependencies finish)"
    return f"parallel, at most {cap} steps at once"


def _work_changes(source: pd.DataFrame, target: pd.DataFrame, ids: Sequence[str]) -> list[str]:
    """Steps whose median token counts differ between source and target step spans."""
    out = []
    for sid in ids:
        s, t = source[source.step_id == sid], target[target.step_id == sid]
        if s.empty or t.empty:
            continue
        for column in ("input_tokens", "output_tokens"):
            a, b = float(s[column].median()), float(t[column].median())
            if abs(a - b) > 0.01 * max(a, b, 1.0):
                out.append(f"{sid} {column.replace('_', ' ')} {a:g} → {b:g}")
    return out


def what_if(
    steps: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    scenario: str,
    source_variant: str,
    target_variant: str | None = None,
    deps: Mapping[str, Sequence[str]] | None = None,
    max_concurrency: int | None = None,
    sequential: bool = False,
    n: int = 2000,
    seed: int = 0,
    resample: Resample = "run",
) -> WhatIf:
    """Predict the makespan distribution of the source variant's work under another schedule.

    ``steps``/``runs`` are ``steps_table``/``runs_table``. The target DAG is
    ``deps`` if given, else the target variant's declared dependencies (from its
    step spans), else the source's. The schedule is ``sequential=True`` (cap 1),
    else ``max_concurrency`` (a cap), else the target variant's own measured
    mode and cap, else plain parallel. Raises ``ConfigError`` when the source
    has no completed runs (or several time scales), the DAG is invalid, or a
    step of the target DAG was never measured in the source.
    """
    where = _where(scenario, source_variant, target_variant)
    mine = runs[runs.scenario == scenario]
    src_runs = mine[(mine.variant == source_variant) & (mine.outcome == "completed")]
    if src_runs.empty:
        measured = ", ".join(sorted(set(mine.variant))) or "none"
        raise ConfigError(
            f"no completed runs of variant '{source_variant}' in scenario '{scenario}'",
            where=where,
            fix=f"use a measured variant as the source (measured: {measured})",
        )
    scales = sorted(set(src_runs.time_scale.astype(float)))
    if len(scales) > 1:
        raise ConfigError(
            f"the source runs were recorded at several time scales ({scales})",
            where=where,
            fix="filter the runs to one time_scale first: runs[runs.time_scale == x]",
        )
    time_scale = scales[0]
    src_steps = steps[steps.trace_id.isin(set(src_runs.trace_id)) & (steps.status == "ok")]
    tgt_runs = mine[mine.variant == target_variant] if target_variant else mine.iloc[0:0]
    tgt_steps = steps[steps.trace_id.isin(set(tgt_runs.trace_id))]
    notes: list[str] = []
    if deps is not None:
        graph = {str(k): [str(d) for d in v] for k, v in deps.items()}
    elif not tgt_steps.empty:
        graph = _ordered_deps(tgt_steps)
    else:
        graph = _ordered_deps(src_steps)
        if target_variant:
            notes.append(f"'{target_variant}' was not measured: its DAG is taken from the source")
    try:
        order = dag.topological_order(graph)
    except ValueError as exc:
        raise ConfigError(
            f"the target DAG is invalid: {exc}",
            where=where,
            fix="pass deps= naming only steps of the DAG, without cycles",
        ) from None
    missing = [sid for sid in order if sid not in set(src_steps.step_id)]
    if missing:
        raise ConfigError(
            f"steps never measured in '{source_variant}' cannot be predicted: {', '.join(missing)}",
            where=where,
            fix="measure a source variant that runs these steps, or pass deps= without them",
        )
    dropped = sorted(set(src_steps.step_id) - set(order))
    if dropped:
        notes.append("source steps not in the target DAG left out: " + ", ".join(dropped))
    table = src_steps.pivot_table(
        index="trace_id", columns="step_id", values="service_ms", aggfunc="first"
    )
    table = table[order].dropna()
    if table.empty:
        raise ConfigError(
            "no source run measured every step of the target DAG",
            where=where,
            fix="check the step spans of the source runs (status ok for every step)",
        )
    durations = table.to_numpy(dtype=float)
    cap = _schedule(sequential, max_concurrency, tgt_runs, where)
    priority = None
    if cap not in (None, 1):
        medians = dict(zip(order, np.median(durations, axis=0), strict=True))
        priority = dag.bottom_levels(graph, medians)

    def makespan(row: npt.NDArray[np.float64]) -> float:
        spans = dict(zip(order, row.tolist(), strict=True))
        return dag.replay(graph, spans, cap, order=order, priority=priority).makespan

    rng = np.random.default_rng(seed)
    if resample == "run":
        # Replay each drawn run once, however often it was drawn.
        drawn_runs, back = np.unique(rng.integers(0, len(durations), n), return_inverse=True)
        per_run = np.array([makespan(durations[i]) for i in drawn_runs])
        samples = per_run[back]
    elif resample == "step":
        picks = rng.integers(0, len(durations), (n, len(order)))
        drawn = durations[picks, np.arange(len(order))]
        samples = np.array([makespan(row) for row in drawn])
    else:
        raise ConfigError(f"unknown resample '{resample}'", where=where, fix="use 'run' or 'step'")
    result: dict[str, Any] = {}
    done = tgt_runs[tgt_runs.outcome == "completed"]
    same_scale = done[done.time_scale.astype(float) == time_scale]
    if not same_scale.empty:
        measured = same_scale.e2e_ms.to_numpy(dtype=float)
        p50, p95 = float(np.median(measured)), float(np.quantile(measured, 0.95))
        result.update(
            n_target_runs=len(same_scale),
            measured_p50_ms=p50,
            measured_p95_ms=p95,
            error_p50=(float(np.median(samples)) - p50) / p50 if p50 > 0 else None,
            error_p95=(float(np.quantile(samples, 0.95)) - p95) / p95 if p95 > 0 else None,
        )
    elif not done.empty:
        other = ", ".join(f"{s:g}" for s in sorted(set(done.time_scale.astype(float))))
        notes.append(
            f"'{target_variant}' was measured at time_scale {other}, not {time_scale:g}: "
            "no prediction error"
        )
    changed = _work_changes(src_steps, tgt_steps, order)
    if changed:
        notes.append("the target does different work (not predicted): " + "; ".join(changed))
    return WhatIf(
        scenario=scenario,
        source_variant=source_variant,
        target_variant=target_variant,
        schedule=_describe(cap),
        max_concurrency=cap,
        resample=resample,
        time_scale=time_scale,
        n_source_runs=len(durations),
        samples_ms=samples,
        p50_ms=float(np.median(samples)),
        p95_ms=float(np.quantile(samples, 0.95)),
        mean_ms=float(np.mean(samples)),
        note="; ".join(notes),
        **result,
    )


def what_if_table(
    steps: pd.DataFrame,
    runs: pd.DataFrame,
    baseline_variant: str | None = None,
    *,
    n: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every measured non-baseline variant predicted from its scenario's baseline runs.

    The baseline is chosen as in ``compare_variants``: ``baseline_variant`` if
    given, else the scenario's own, else ``sequential``. One row per (scenario,
    time scale, variant): predicted vs measured p50/p95 and the errors; a
    variant that cannot be predicted (a step the baseline never runs, no
    baseline runs) gets a row whose ``note`` says why.
    """
    rows: list[dict[str, Any]] = []
    for scenario, group in runs.groupby("scenario", sort=False):
        baseline = resolve_baseline(group, baseline_variant)
        for time_scale in sorted(set(group.time_scale.astype(float))):
            at_scale = group[group.time_scale.astype(float) == time_scale]
            for variant in dict.fromkeys(at_scale.variant):
                if variant == baseline:
                    continue
                row: dict[str, Any] = dict.fromkeys(WHAT_IF_COLUMNS)
                row.update(
                    scenario=scenario,
                    time_scale=time_scale,
                    source_variant=baseline,
                    target_variant=variant,
                    n_target_runs=int((at_scale.variant == variant).sum()),
                )
                if baseline is None:
                    row["note"] = "no baseline variant to predict from"
                    rows.append(row)
                    continue
                try:
                    got = what_if(
                        steps,
                        at_scale,
                        scenario=str(scenario),
                        source_variant=baseline,
                        target_variant=str(variant),
                        n=n,
                        seed=seed,
                    )
                except ParabenchError as exc:
                    row["note"] = exc.what
                    rows.append(row)
                    continue
                row.update(
                    schedule=got.schedule,
                    n_source_runs=got.n_source_runs,
                    n_target_runs=got.n_target_runs,
                    predicted_p50_ms=got.p50_ms,
                    predicted_p95_ms=got.p95_ms,
                    measured_p50_ms=got.measured_p50_ms,
                    measured_p95_ms=got.measured_p95_ms,
                    error_p50=got.error_p50,
                    error_p95=got.error_p95,
                    note=got.note,
                )
                rows.append(row)
    return pd.DataFrame(rows, columns=WHAT_IF_COLUMNS)
