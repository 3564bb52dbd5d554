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
    frame: pd.DataFrame  # the steps of these runs, indexed by (trace_id, step_id)

    def column(self, name: str) -> np.ndarray:
        """One step column as a runs × steps array (columns in ``order``)."""
        wide = self.frame[name].unstack("step_id")
        return wide.reindex(index=self.trace_ids, columns=self.order).to_numpy(dtype=float)


def graph_groups(steps: pd.DataFrame, runs: pd.DataFrame) -> list[GraphRuns]:
    """Split the steps table into groups of runs with the same schedule graph.

    Steps of a parallel run are keyed in step-id order, so the order in which
    branches happened to start does not split a variant into many groups; a
    sequential run's steps are keyed in the order they started.
    """
    if steps.empty:
        return []
    mode_of = dict(zip(runs.trace_id, runs["mode"], strict=True))
    frame = steps.assign(_mode=steps.trace_id.map(mode_of).fillna("parallel"))
    sequential = frame._mode == "sequential"
    frame = frame.assign(_rank=np.where(sequential, frame.start_ms, 0.0))
    frame = frame.sort_values(["trace_id", "_rank", "step_id"], kind="stable")
    token = frame.step_id.astype(str) + "<" + frame.depends_on.map(",".join)
    keys = token.groupby(frame.trace_id, sort=False).agg("|".join)
    head = frame.groupby("trace_id", sort=False)[["scenario", "variant", "_mode"]].first()
    head["_key"] = head.scenario + "\x1f" + head.variant + "\x1f" + head._mode + "\x1f" + keys
    frame = frame.join(head["_key"], on="trace_id")
    out: list[GraphRuns] = []
    for key, part in frame.groupby("_key", sort=False):
        scenario, variant, mode, _ = str(key).split("\x1f", 3)
        first = part[part.trace_id == part.trace_id.iat[0]]
        started = [str(s) for s in first.step_id]
        declared = {
            str(s): [str(d) for d in deps]
            for s, deps in zip(first.step_id, first.depends_on, strict=True)
        }
        sched = schedule_deps(mode, started, declared)
        if len(set(started)) != len(started):
            continue  # one step id twice in a run: not a harness DAG
        try:
            order = dag.topological_order(sched)
        except ValueError:
            continue  # a malformed trace (cycle, unknown step): no DAG path for it
        ids = part.trace_id.drop_duplicates().to_numpy(dtype=object)
        indexed = part.drop(columns=["_mode", "_rank", "_key"]).set_index(["trace_id", "step_id"])
        out.append(GraphRuns(scenario, variant, mode, order, sched, declared, ids, indexed))
    return out


def run_critical_paths(steps: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per harness run: its critical path over the schedule graph with measured step durations.

    Columns: trace_id, scenario, variant, path (tuple of step ids, first to
    last), path_ms (the path's length), makespan_ms (run span e2e).
    """
    rows: list[pd.DataFrame] = []
    e2e = dict(zip(runs.trace_id, runs.e2e_ms, strict=True))
    for group in graph_groups(steps, runs):
        lp = longest_paths(group.order, group.deps, group.column("duration_ms"), with_slack=False)
        names = np.array(group.order, dtype=object)
        patterns, inverse = np.unique(lp.on_path, axis=0, return_inverse=True)
        paths = [tuple(names[p]) for p in patterns]
        rows.append(
            pd.DataFrame(
                {
                    "trace_id": group.trace_ids,
                    "scenario": group.scenario,
                    "variant": group.variant,
                    "path": [paths[i] for i in inverse.ravel()],
                    "path_ms": lp.length,
                    "makespan_ms": [e2e.get(t, np.nan) for t in group.trace_ids],
                }
            )
        )
    columns = ["trace_id", "scenario", "variant", "path", "path_ms", "makespan_ms"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True)[columns]
