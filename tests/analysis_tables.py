"""Hand-built runs and steps tables, for tests whose answers are computed by hand.

``tables([...])`` lays each run out the way the executor would have run it —
sequential runs one step after another in the given order, parallel runs each
step as soon as its dependencies are done (and queued behind a cap, when there
is one) — and returns the ``runs_table`` / ``steps_table`` pair the analysis
reads from real spans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count

import pandas as pd

from harness import dag
from harness.analysis.runs import RUN_COLUMNS, STEP_COLUMNS

_ids = count(1)


@dataclass
class HandRun:
    """One run: ``steps`` maps step id → (depends_on, duration_ms, cost_usd), in declared order."""

    variant: str
    mode: str
    steps: Mapping[str, tuple[Sequence[str], float, float]]
    scenario: str = "hand"
    cap: int | None = None
    outcome: str = "completed"
    time_scale: float = 1.0
    value_of_time_usd_per_s: float = 0.1
    baseline_variant: str = "sequential"
    overhead_ms: float = 0.0
    trace_id: str = field(default_factory=lambda: f"{next(_ids):032x}")


def tables(runs: Sequence[HandRun]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and steps tables of these runs."""
    run_rows, step_rows = [], []
    for run in runs:
        deps = {sid: list(d) for sid, (d, _, _) in run.steps.items()}
        durations = {sid: ms for sid, (_, ms, _) in run.steps.items()}
        cap = 1 if run.mode == "sequential" else run.cap
        schedule = dag.replay(deps, durations, cap, order=list(deps))
        e2e = schedule.makespan + run.overhead_ms
        for sid, (depends_on, ms, cost) in run.steps.items():
            ready = max((schedule.end[d] for d in depends_on), default=0.0)
            start = schedule.start[sid] if run.mode == "sequential" else ready
            queue = schedule.start[sid] - start
            step_rows.append(
                {
                    "trace_id": run.trace_id,
                    "span_id": f"{next(_ids):016x}",
                    "scenario": run.scenario,
                    "variant": run.variant,
                    "step_id": sid,
                    "kind": "llm",
                    "depends_on": tuple(depends_on),
                    "status": "ok",
                    "start_ms": start,
                    "end_ms": schedule.end[sid],
                    "duration_ms": schedule.end[sid] - start,
                    "queue_ms": queue,
                    "service_ms": ms,
                    "attempts": 1,
                    "cost_usd": cost,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "priority_s": float("nan"),
                }
            )
        run_rows.append(
            {
                "trace_id": run.trace_id,
                "span_id": f"{next(_ids):016x}",
                "run_id": run.trace_id,
                "scenario": run.scenario,
                "variant": run.variant,
                "mode": run.mode,
                "max_concurrency": run.cap,
                "outcome": run.outcome,
                "start_ns": 0,
                "e2e_ms": e2e,
                "ttfc_ms": float("nan"),
                "speed_index_ms": float("nan"),
                "cards": 0,
                "cost_usd": sum(c for _, _, c in run.steps.values()),
                "unpriced": False,
                "time_scale": run.time_scale,
                "value_of_time_usd_per_s": run.value_of_time_usd_per_s,
                "baseline_variant": run.baseline_variant,
            }
        )
    return pd.DataFrame(run_rows, columns=RUN_COLUMNS), pd.DataFrame(
        step_rows, columns=STEP_COLUMNS
    )
