"""Pure DAG arithmetic shared by the executor, the scenario theory and the analysis.

Steps are string ids; ``deps`` maps each step to the steps it waits for.
Durations are seconds (or any unit, as long as it is one unit throughout).

* ``topological_order`` / ``find_cycle`` — ordering and validation.
* ``critical_path`` — the longest path through the DAG (``L``), with slack.
* ``replay`` — a list-scheduling replay of the DAG with a concurrency cap, the
  same policy the executor uses, so theory, replay and measurement agree.
* ``forks`` — parallel branches: steps sharing the same ``depends_on`` set.
* ``lower_bound`` — ``max(L, W / m)`` from DESIGN.md.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CriticalPath",
    "Schedule",
    "bottom_levels",
    "critical_path",
    "find_cycle",
    "force_after_siblings",
    "forks",
    "lower_bound",
    "replay",
    "topological_order",
]

Deps = Mapping[str, Sequence[str]]


def _dependents(deps: Deps) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {sid: [] for sid in deps}
    for sid, parents in deps.items():
        for p in parents:
            out.setdefault(p, []).append(sid)
    return out


def topological_order(deps: Deps) -> list[str]:
    """Kahn's order; among ready steps the declared (mapping) order wins.

    Raises ``ValueError`` on a cycle or an unknown dependency.
    """
    position = {sid: i for i, sid in enumerate(deps)}
    indegree = {sid: 0 for sid in deps}
    for sid, parents in deps.items():
        for p in parents:
            if p not in position:
                raise ValueError(f"step '{sid}' depends on unknown step '{p}'")
            indegree[sid] += 1
    children = _dependents(deps)
    ready = [position[s] for s, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    names = list(deps)
    order: list[str] = []
    while ready:
        sid = names[heapq.heappop(ready)]
        order.append(sid)
        for child in children[sid]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, position[child])
    if len(order) != len(deps):
        raise ValueError("the dependencies form a cycle")
    return order


def find_cycle(deps: Deps) -> list[str] | None:
    """One dependency cycle as a list of steps (each depends on the next), or ``None``."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in deps:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            sid, i = stack.pop()
            if i == 0:
                state[sid] = 1
                path.append(sid)
            parents = [p for p in deps.get(sid, ()) if p in deps]
            if i < len(parents):
                stack.append((sid, i + 1))
                nxt = parents[i]
                if state.get(nxt) == 1:
                    return path[path.index(nxt) :]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[sid] = 2
                path.pop()
    return None


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The longest path: its steps (first to last), its length and each step's slack."""

    steps: list[str]
    length: float
    earliest_start: dict[str, float]
    slack: dict[str, float]


def critical_path(
    deps: Deps, durations: Mapping[str, float], order: Sequence[str] | None = None
) -> CriticalPath:
    """Longest path through the DAG with the given step durations.

    Ties go to the dependency that comes first in ``deps`` so the answer is
    deterministic. ``slack`` is how much a step could grow without making the
    path longer (0 on the critical path).
    """
    order = list(order) if order is not None else topological_order(deps)
    est: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for sid in order:
        best, arg = 0.0, None
        for p in deps[sid]:
            finish = est[p] + durations[p]
            if arg is None or finish > best:
                best, arg = finish, p
        est[sid] = best
        via[sid] = arg
    if not order:
        return CriticalPath([], 0.0, {}, {})
    end = max(order, key=lambda s: est[s] + durations[s])
    length = est[end] + durations[end]
    path: list[str] = []
    cur: str | None = end
    while cur is not None:
        path.append(cur)
        cur = via[cur]
    path.reverse()
    # Latest finish times, backwards.
    children = _dependents(deps)
    lft: dict[str, float] = {}
    for sid in reversed(order):
        kids = children.get(sid, [])
        lft[sid] = min((lft[k] - durations[k] for k in kids), default=length)
    slack = {sid: max(lft[sid] - durations[sid] - est[sid], 0.0) for sid in order}
    return CriticalPath(path, length, est, slack)


def bottom_levels(deps: Deps, durations: Mapping[str, float]) -> dict[str, float]:
    """Longest path from each step's start to the end of the DAG (list-scheduling priority)."""
    order = topological_order(deps)
    children = _dependents(deps)
    level: dict[str, float] = {}
    for sid in reversed(order):
        level[sid] = durations[sid] + max((level[k] for k in children.get(sid, [])), default=0.0)
    return level


@dataclass(frozen=True, slots=True)
class Schedule:
    """When each step ran in a replay, and the makespan."""

    start: dict[str, float]
    end: dict[str, float]
    makespan: float


def replay(
    deps: Deps,
    durations: Mapping[str, float],
    max_concurrency: int | None = None,
    *,
    order: Sequence[str] | None = None,
    priority: Mapping[str, float] | None = None,
) -> Schedule:
    """Replay the DAG with these durations and at most ``max_concurrency`` steps at once.

    The policy is the executor's: a step is ready the moment its dependencies
    finish; when slots are short, the ready step with the highest priority
    (default: longest path to the end, the bottom level) goes first, ties in
    ``order``. With ``max_concurrency=1`` and no priority the steps run in
    ``order`` (the sequential variant).
    """
    order = list(order) if order is not None else topological_order(deps)
    position = {sid: i for i, sid in enumerate(order)}
    cap = max_concurrency if max_concurrency is not None else len(order) or 1
    if priority is None:
        priority = (
            {sid: -position[sid] for sid in order} if cap == 1 else bottom_levels(deps, durations)
        )
    remaining = {sid: len(deps[sid]) for sid in order}
    children = _dependents(deps)
    ready: list[tuple[float, int, str]] = []
    for sid in order:
        if remaining[sid] == 0:
            heapq.heappush(ready, (-priority[sid], position[sid], sid))
    running: list[tuple[float, int, str]] = []
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    now = 0.0
    while ready or running:
        while ready and len(running) < cap:
            _, pos, sid = heapq.heappop(ready)
            start[sid] = now
            end[sid] = now + max(durations[sid], 0.0)
            heapq.heappush(running, (end[sid], pos, sid))
        finish, _, sid = heapq.heappop(running)
        now = finish
        done = [sid]
        while running and running[0][0] <= now:
            done.append(heapq.heappop(running)[2])
        for d in done:
            for child in children.get(d, []):
                remaining[child] -= 1
                if remaining[child] == 0:
                    heapq.heappush(ready, (-priority[child], position[child], child))
    return Schedule(start, end, max(end.values(), default=0.0))


def forks(deps: Deps) -> list[tuple[tuple[str, ...], list[str]]]:
    """Parallel branches: groups of 2+ steps with the same ``depends_on`` set.

    Returns ``(shared dependencies, branch steps)`` in declared order; the root
    steps (no dependencies) form a fork too when there are several.
    """
    groups: dict[frozenset[str], list[str]] = {}
    for sid, parents in deps.items():
        groups.setdefault(frozenset(parents), []).append(sid)
    out = []
    for key, members in groups.items():
        if len(members) >= 2:
            out.append((tuple(sorted(key)), members))
    return out


def force_after_siblings(deps: Deps, branch: str, siblings: Sequence[str]) -> dict[str, list[str]]:
    """``deps`` with ``branch`` made to wait for its fork siblings (the "not parallel" replay)."""
    out = {sid: list(parents) for sid, parents in deps.items()}
    out[branch] = list(dict.fromkeys([*out[branch], *(s for s in siblings if s != branch)]))
    return out


def lower_bound(
    deps: Deps, durations: Mapping[str, float], max_concurrency: int | None = None
) -> float:
    """``max(L, W / m)``: no schedule of these durations can finish sooner."""
    length = critical_path(deps, durations).length
    work = sum(max(d, 0.0) for d in durations.values())
    if max_concurrency is None:
        return length
    return max(length, work / max_concurrency)
