"""Which steps may run at the same time: from the declared DAG, or inferred from overlap.

* **Harness runs** declare their DAG (``parabench.step.depends_on``), so two
  steps are independent exactly when neither is reachable from the other.
  ``independence_table`` lists, per scenario, each step with its dependencies,
  the steps it can run alongside and the fork (same ``depends_on`` set, the
  DESIGN.md definition of a parallel branch) it belongs to.
* **Foreign traces** declare nothing. Two sibling spans (same parent) that
  overlapped in time cannot have waited for each other, so they are
  independent; siblings that never overlapped ran one after another, which
  may be a dependency or a missed chance to parallelize — the trace cannot
  say which. ``inferred_overlaps`` counts, per parent operation and pair of
  child operations, how often both ran under one parent and how often they
  overlapped. Everything it reports is labelled *inferred*.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pandas as pd

from harness import dag

__all__ = ["independence_table", "inferred_overlaps"]

_MAX_CHILDREN = 40  # pairs per parent grow quadratically; a bigger fan-out is sampled
_MAX_PARENTS = 20_000


def _reachable(deps: dict[str, list[str]]) -> dict[str, set[str]]:
    """For each step, every step it (transitively) depends on."""
    before: dict[str, set[str]] = {}
    for sid in dag.topological_order(deps):
        before[sid] = set()
        for parent in deps[sid]:
            before[sid] |= {parent, *before.get(parent, ())}
    return before


def independence_table(steps: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and step: dependencies, steps it can run alongside, its fork."""
    columns = ["scenario", "step", "kind", "depends_on", "alongside", "fork"]
    if steps.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for scenario, group in steps.groupby("scenario", sort=False):
        # One row per step id; the declared order is the order the steps first appear.
        first = group.drop_duplicates("step_id")
        deps = {
            sid: [d for d in parents if d in set(first.step_id)]
            for sid, parents in zip(first.step_id, first.depends_on, strict=True)
        }
        if dag.find_cycle(deps) is not None:
            continue
        before = _reachable(deps)
        fork_of = {}
        for shared, members in dag.forks(deps):
            label = f"{', '.join(shared) or 'start'} → {{{', '.join(members)}}}"
            fork_of.update(dict.fromkeys(members, label))
        for sid, kind in zip(first.step_id, first.kind, strict=True):
            alongside = [
                other
                for other in deps
                if other != sid and other not in before[sid] and sid not in before[other]
            ]
            rows.append(
                {
                    "scenario": scenario,
                    "step": sid,
                    "kind": kind,
                    "depends_on": list(deps[sid]),
                    "alongside": alongside,
                    "fork": fork_of.get(sid, ""),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def inferred_overlaps(spans: pd.DataFrame) -> pd.DataFrame:
    """Per parent operation and pair of child operations: seen together, and overlapping.

    ``together`` counts parent spans under which both operations ran,
    ``overlapped`` those in which they ran at the same time at least once.
    """
    columns = ["parent", "a", "b", "together", "overlapped"]
    children = spans[spans.parent_span_id.astype(bool)] if len(spans) else spans
    if not children.empty:
        size = children.groupby(["trace_id", "parent_span_id"]).span_id.transform("size")
        children = children[size.to_numpy() >= 2]
    if children.empty:
        return pd.DataFrame(columns=columns)
    name_of = dict(zip(zip(spans.trace_id, spans.span_id, strict=True), spans.name, strict=True))
    together: Counter[tuple[str, str, str]] = Counter()
    overlapped: Counter[tuple[str, str, str]] = Counter()
    groups = children.groupby(["trace_id", "parent_span_id"], sort=False)
    for done, ((trace_id, parent_id), group) in enumerate(groups):
        if done >= _MAX_PARENTS:
            break
        parent = name_of.get((trace_id, parent_id), "(missing parent)")
        rows = sorted(
            zip(group.start_ns.tolist(), group.end_ns.tolist(), group.name.tolist(), strict=True)
        )[:_MAX_CHILDREN]
        seen: set[tuple[str, str, str]] = set()
        hit: set[tuple[str, str, str]] = set()
        for (s1, e1, n1), (s2, e2, n2) in itertools.combinations(rows, 2):
            key = (parent, *sorted((n1, n2)))
            seen.add(key)
            if max(s1, s2) < min(e1, e2):
                hit.add(key)
        together.update(seen)
        overlapped.update(hit)
    rows_out = [
        {"parent": k[0], "a": k[1], "b": k[2], "together": n, "overlapped": overlapped[k]}
        for k, n in together.items()
    ]
    frame = pd.DataFrame(rows_out, columns=columns)
    return frame.sort_values(["together", "overlapped"], ascending=False, ignore_index=True)
