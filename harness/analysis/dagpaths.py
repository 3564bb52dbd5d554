"""Critical paths of harness runs from their declared DAG, many runs at once.

A harness trace says which steps each step waited for (``parabench.step.depends_on``),
so its critical path need not be guessed from span overlap: it is the longest
path through the run's *schedule graph* with the measured step durations.

The schedule graph
------------------
* ``parallel`` runs (with or without a cap): the declared dependencies. A step's
  span starts the moment its dependencies are done and includes any time it
  waited for a concurrency slot or a rate limit (``parabench.step.queue_ms``),
  so the longest path over span durations retraces the run as it happened, and
  queue time shows up on the path as part of the waiting step.
* ``sequential`` runs: the steps in the order they started, each waiting for the
  previous one (that is what running them one at a time means).

Runs with the same graph (scenario, variant, steps and edges) are grouped and
solved together with numpy: one forward pass per step gives earliest starts and
the path, one backward pass the slack. Ties go to the dependency declared first
and, at the end of the run, to the step that comes first in topological order,
the same rules as ``harness.dag.critical_path``.

Slack and drag
--------------
* slack: how much longer a step could have taken without the path getting
  longer (0 on the path).
* drag (Devaux): how much shorter the path would be if the step took no time at
  all: ``L − L(step = 0)``. 0 off the path; at most the step's duration on it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness import dag

__all__ = [
    "GraphRuns",
    "LongestPaths",
    "graph_groups",
    "longest_paths",
    "run_critical_paths",
    "schedule_deps",
]


@dataclass(frozen=True)
class LongestPaths:
    """Longest paths of many runs over one graph (arrays are runs × steps, in ``order``)."""

    order: list[str]
    earliest_start: np.ndarray
    length: np.ndarray
    on_path: np.ndarray
    slack: np.ndarray


def longest_paths(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    durations: np.ndarray,
    *,
    with_slack: bool = True,
) -> LongestPaths:
    """Longest path of each row of ``durations`` (runs × steps, columns in ``order``).

    ``order`` must be a topological order of ``deps``. Negative durations count as 0.
    """
    order = list(order)
    pos = {sid: j for j, sid in enumerate(order)}
    d = np.clip(np.asarray(durations, dtype=float), 0.0, None)
    if d.ndim != 2 or d.shape[1] != len(order):
        raise ValueError(f"durations must be runs × {len(order)} steps, got {d.shape}")
    n_runs, n_steps = d.shape
    est = np.zeros_like(d)
    pred = np.full((n_runs, n_steps), -1, dtype=np.int64)
    rows = np.arange(n_runs)
    parents = [np.array([pos[p] for p in deps[sid]], dtype=np.int64) for sid in order]
    for j in range(n_steps):
        pj = parents[j]
        if pj.size == 0:
            continue
        finish = est[:, pj] + d[:, pj]
        best = np.argmax(finish, axis=1)  # first maximum: the dependency declared first
        est[:, j] = finish[rows, best]
        pred[:, j] = pj[best]
    finish_all = est + d
    on_path = np.zeros((n_runs, n_steps), dtype=bool)
    if n_steps == 0:
        length = np.zeros(n_runs)
        return LongestPaths(order, est, length, on_path, np.zeros_like(d))
    cur = np.argmax(finish_all, axis=1)
    length = finish_all[rows, cur]
    alive = np.ones(n_runs, dtype=bool)
    for _ in range(n_steps):
        on_path[rows[alive], cur[alive]] = True
        cur = np.where(alive, pred[rows, np.maximum(cur, 0)], -1)
        alive = cur >= 0
        if not alive.any():
            break
    slack = np.zeros_like(d)
    if with_slack:
        children: list[list[int]] = [[] for _ in order]
        for j, pj in enumerate(parents):
            for p in pj:
                children[int(p)].append(j)
        lft = np.empty_like(d)
        for j in range(n_steps - 1, -1, -1):
            kids = children[j]
            if kids:
                lft[:, j] = np.min(lft[:, kids] - d[:, kids], axis=1)
            else:
                lft[:, j] = length
        slack = np.clip(lft - d - est, 0.0, None)
    return LongestPaths(order, est, length, on_path, slack)


def drag(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], durations: np.ndarray
) -> np.ndarray:
    """Drag of every step in every run: ``L − L(step takes 0)`` (runs × steps)."""
    d = np.asarray(durations, dtype=float)
    base = longest_paths(order, deps, d, with_slack=False)
    out = np.zeros_like(d)
    for j in range(d.shape[1]):
        if not base.on_path[:, j].any():
            continue
        zeroed = d.copy()
        zeroed[:, j] = 0.0
        shorter = longest_paths(order, deps, zeroed, with_slack=False).length
        out[:, j] = np.where(base.on_path[:, j], base.length - shorter, 0.0)
    return np.clip(out, 0.0, None)


def schedule_deps(
    mode: str, steps: Sequence[str], declared: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """The schedule graph: declared dependencies, or a chain in start order for sequential runs.

    ``steps`` lists the run's steps in the order they started. Dependencies on
    steps the run does not contain are dropped.
    """
    if mode == "sequential":
        return {sid: ([steps[i - 1]] if i else []) for i, sid in enumerate(steps)}
    present = set(steps)
    return {sid: [p for p in declared[sid] if p in present] for sid in steps}


@dataclass(frozen=True)
class GraphRuns:
    """Runs that share one schedule graph, with their step columns as arrays."""

    scenario: str
    variant: str
    mode: str
    order: list[str]
    deps: dict[str, list[str]]
    declared: dict[str, list[str]]
    trace_ids: np.ndarray
    steps: pd.DataFrame  # the whole steps table (not copied)
    rows: np.ndarray  # positions in ``steps`` of these runs' steps
    run_index: np.ndarray  # per row: its run's index in ``trace_ids``
    step_index: np.ndarray  # per row: its step's column in ``order``

    def column(self, name: str) -> np.ndarray:
        """One step column as a runs × steps array (columns in ``order``)."""
        out = np.full((len(self.trace_ids), len(self.order)), np.nan)
        values = self.steps[name].to_numpy(dtype=float)
        out[self.run_index, self.step_index] = values[self.rows]
        return out


def _codes(*columns: np.ndarray) -> np.ndarray:
    """Dense integer codes of the row-wise combination of ``columns``."""
    out = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes = pd.factorize(column, use_na_sentinel=False)[0].astype(np.int64)
        out = pd.factorize(out * (int(codes.max(initial=0)) + 1) + codes)[0].astype(np.int64)
    return out


def _set_hashes(
    token: np.ndarray, position: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Two independent 64-bit hashes per run of its (token, position) multiset.

    Rows are sorted by run and ``starts`` are the first row of each run. The
    sums wrap modulo 2**64, which is what makes them order-free and exact to
    compute; equal graphs always hash equal, and ``_exact_groups`` checks every
    group, so a collision can never merge different graphs.
    """
    salt = np.random.default_rng(20221125).integers(1, 2**63, size=4, dtype=np.uint64)
    salt |= np.uint64(1)
    with np.errstate(over="ignore"):
        mixed = (token.astype(np.uint64) + np.uint64(1)) * salt[0] + position.astype(
            np.uint64
        ) * salt[1]
        h1 = (mixed ^ (mixed >> np.uint64(29))) * salt[2]
        h2 = (mixed ^ (mixed >> np.uint64(31))) * salt[3]
        return np.add.reduceat(h1, starts), np.add.reduceat(h2, starts)


def graph_groups(steps: pd.DataFrame, runs: pd.DataFrame) -> list[GraphRuns]:
    """Split the steps table into groups of runs with the same schedule graph.

    The order in which a parallel run's branches happened to start does not
    split a variant into many groups; a sequential run's steps are taken in the
    order they started. Everything is array arithmetic on integer codes, since
    this runs over every step of every run.
    """
    if steps.empty:
        return []
    trace_code, trace_names = pd.factorize(steps.trace_id.to_numpy())
    mode_of = pd.Series(runs["mode"].to_numpy(dtype=object), index=runs.trace_id.to_numpy())
    mode_of = mode_of[~mode_of.index.duplicated()]
    trace_mode = mode_of.reindex(trace_names).fillna("parallel").to_numpy(dtype=object)
    sequential = (trace_mode == "sequential")[trace_code]
    step_code = pd.factorize(steps.step_id.to_numpy(), sort=True)[0]
    start_ms = steps.start_ms.to_numpy(dtype=float)
    rows = np.lexsort((step_code, np.where(sequential, start_ms, 0.0), trace_code))
    trace = trace_code[rows]
    starts = np.flatnonzero(np.r_[True, trace[1:] != trace[:-1]])
    counts = np.diff(np.r_[starts, len(rows)])
    rank = np.arange(len(rows)) - np.repeat(starts, counts)
    deps_code = pd.factorize(steps.depends_on.to_numpy())[0]
    token = _codes(step_code, deps_code)[rows]
    sequential = sequential[rows]
    h1, h2 = _set_hashes(token, np.where(sequential, rank + 1, 0), starts)
    firsts = rows[starts]
    run_group = _codes(
        steps.scenario.to_numpy()[firsts],
        steps.variant.to_numpy()[firsts],
        trace_mode[trace[starts]],
        h1,
        h2,
        counts,
    )
    row_group = np.repeat(run_group, counts)
    by_group = np.argsort(row_group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, row_group[by_group][1:] != row_group[by_group][:-1], True])
    out: list[GraphRuns] = []
    for lo, hi in itertools.pairwise(bounds):
        pick = by_group[lo:hi]
        out.extend(
            _exact_groups(steps, rows[pick], token[pick], rank[pick], trace[pick], trace_mode)
        )
    return out


def _exact_groups(
    steps: pd.DataFrame,
    rows: np.ndarray,
    token: np.ndarray,
    rank: np.ndarray,
    trace: np.ndarray,
    trace_mode: np.ndarray,
) -> list[GraphRuns]:
    """These rows as GraphRuns, split further if (against all odds) their runs' graphs differ."""
    first = rows[trace == trace[0]]
    mode = str(trace_mode[trace[0]])
    scenario, variant = str(steps.scenario.iat[first[0]]), str(steps.variant.iat[first[0]])
    started = [str(s) for s in steps.step_id.to_numpy()[first]]
    first_deps = steps.depends_on.to_numpy()[first]
    declared = {sid: [str(d) for d in deps] for sid, deps in zip(started, first_deps, strict=True)}
    expected = token[trace == trace[0]]
    if mode == "sequential":
        same = (rank < len(expected)) & (expected[np.minimum(rank, len(expected) - 1)] == token)
    else:
        same = np.isin(token, expected)
    local = pd.factorize(trace)[0]
    matches = np.bincount(local, weights=same.astype(float))
    good = (matches == len(expected)) & (np.bincount(local) == len(expected))
    ok = good[local]
    out: list[GraphRuns] = []
    if len(set(started)) == len(started):  # one step id twice in a run: not a harness DAG
        sched = schedule_deps(mode, started, declared)
        try:
            order = dag.topological_order(sched)
            # A sequential run is scheduled as a chain, but its declared DAG is used too
            # (replays, branches): a cycle there is as malformed as in a parallel run.
            dag.topological_order(schedule_deps("parallel", started, declared))
        except ValueError:  # a malformed trace (cycle, unknown step): no DAG path for it
            order = []
        if order and good.any():
            mine = rows[ok]
            run_index = pd.factorize(local[ok])[0]
            names = steps.trace_id.to_numpy()[mine[np.r_[True, np.diff(run_index) != 0]]]
            step_index = pd.Index(order).get_indexer(steps.step_id.to_numpy()[mine])
            out.append(
                GraphRuns(
                    scenario,
                    variant,
                    mode,
                    order,
                    sched,
                    declared,
                    np.asarray(names, dtype=object),
                    steps,
                    mine,
                    run_index,
                    step_index.astype(np.int64),
                )
            )
    if not ok.all():
        out.extend(_exact_groups(steps, rows[~ok], token[~ok], rank[~ok], trace[~ok], trace_mode))
    return out


def run_critical_paths(steps: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per harness run: its critical path over the schedule graph with measured step durations.

    Columns: trace_id, scenario, variant, path (tuple of step ids, first to
    last), path_ms (the path's length), makespan_ms (run span e2e).
    """
    rows: list[pd.DataFrame] = []
    e2e = pd.Series(runs.e2e_ms.to_numpy(dtype=float), index=runs.trace_id.to_numpy())
    for group in graph_groups(steps, runs):
        lp = longest_paths(group.order, group.deps, group.column("duration_ms"), with_slack=False)
        names = np.array(group.order, dtype=object)
        # One integer per path (a bit per step), so equal paths are found in one pass.
        weight = np.ones(len(group.order), dtype=np.int64 if len(group.order) < 63 else object)
        bits = lp.on_path @ (weight << np.arange(len(group.order)))
        _, first, inverse = np.unique(bits, return_index=True, return_inverse=True)
        paths = [tuple(names[lp.on_path[i]]) for i in first]
        rows.append(
            pd.DataFrame(
                {
                    "trace_id": group.trace_ids,
                    "scenario": group.scenario,
                    "variant": group.variant,
                    "path": [paths[i] for i in inverse.ravel()],
                    "path_ms": lp.length,
                    "makespan_ms": e2e.reindex(group.trace_ids).to_numpy(),
                }
            )
        )
    columns = ["trace_id", "scenario", "variant", "path", "path_ms", "makespan_ms"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True)[columns]
