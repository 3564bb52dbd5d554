"""Critical paths of harness runs from the declared DAG: longest path, slack, drag, bottlenecks.

The hand-built run (see tests/analysis_tables.py): ``plan`` (10 ms) forks into
``a`` (30), ``b`` (20) and ``c`` (50); ``d`` (5) waits for all three. In
parallel the path is plan → c → d, 65 ms.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from analysis_tables import HandRun, tables
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import dag
from harness.analysis.bottlenecks import BETWEEN_STEPS, harness_bottlenecks
from harness.analysis.critical_path import CpSpan, critical_path
from harness.analysis.dagpaths import drag, longest_paths, run_critical_paths, schedule_deps
from harness.analysis.runs import runs_table, steps_table
from harness.analysis.traces import harness_traces
from harness.scenario import load_scenario

STEPS = {
    "plan": ((), 10.0, 0.001),
    "a": (("plan",), 30.0, 0.002),
    "b": (("plan",), 20.0, 0.001),
    "c": (("plan",), 50.0, 0.0),
    "d": (("a", "b", "c"), 5.0, 0.001),
}
ORDER = list(STEPS)
DEPS = {sid: list(d) for sid, (d, _, _) in STEPS.items()}
DURATIONS = np.array([[ms for _, ms, _ in STEPS.values()]])


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[dict[str, list[str]], np.ndarray]:
    """A random DAG (each step depends on some earlier ones) and a few rows of durations."""
    n = draw(st.integers(1, 9))
    names = [f"s{i}" for i in range(n)]
    deps = {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=3)) if i else []
        for i, name in enumerate(names)
    }
    rows = draw(st.integers(1, 4))
    values = draw(
        st.lists(st.floats(0.0, 1000.0, allow_nan=False), min_size=n * rows, max_size=n * rows)
    )
    return deps, np.array(values).reshape(rows, n)


class TestLongestPaths:
    def test_hand_computed(self) -> None:
        """plan → c → d is 65 ms; a has 20 ms of slack and b 30."""
        lp = longest_paths(ORDER, DEPS, DURATIONS)
        assert lp.length[0] == pytest.approx(65.0)
        assert [s for s, on in zip(ORDER, lp.on_path[0], strict=True) if on] == ["plan", "c", "d"]
        slack = dict(zip(ORDER, lp.slack[0], strict=True))
        assert slack == pytest.approx({"plan": 0.0, "a": 20.0, "b": 30.0, "c": 0.0, "d": 0.0})

    def test_drag(self) -> None:
        """Drag: c could shrink by 20 before a takes over; plan and d by their whole length."""
        got = dict(zip(ORDER, drag(ORDER, DEPS, DURATIONS)[0], strict=True))
        assert got == pytest.approx({"plan": 10.0, "a": 0.0, "b": 0.0, "c": 20.0, "d": 5.0})

    @settings(max_examples=150, deadline=None)
    @given(random_dags())
    def test_matches_the_scalar_longest_path(
        self, case: tuple[dict[str, list[str]], np.ndarray]
    ) -> None:
        """Row by row, the vectorised answer equals harness.dag.critical_path."""
        deps, durations = case
        order = dag.topological_order(deps)
        columns = list(deps)
        lp = longest_paths(order, deps, durations[:, [columns.index(s) for s in order]])
        for i, row in enumerate(durations):
            ref = dag.critical_path(deps, dict(zip(columns, row, strict=True)), order)
            assert lp.length[i] == pytest.approx(ref.length)
            assert [s for s, on in zip(order, lp.on_path[i], strict=True) if on] == ref.steps
            assert dict(zip(order, lp.slack[i], strict=True)) == pytest.approx(ref.slack, abs=1e-6)

    def test_sequential_schedule_is_a_chain_in_start_order(self) -> None:
        """A sequential run waits for the previous step, whatever the declared DAG says."""
        assert schedule_deps("sequential", ["plan", "b", "a"], DEPS) == {
            "plan": [],
            "b": ["plan"],
            "a": ["b"],
        }
        assert schedule_deps("parallel", ["plan", "a"], DEPS) == {"plan": [], "a": ["plan"]}


class TestRunCriticalPaths:
    def test_parallel_and_sequential_runs(self) -> None:
        """Parallel: plan → c → d; sequential: every step, the path being the run."""
        runs, steps = tables(
            [HandRun("parallel", "parallel", STEPS), HandRun("sequential", "sequential", STEPS)]
        )
        got = run_critical_paths(steps, runs).set_index("variant")
        assert got.loc["parallel", "path"] == ("plan", "c", "d")
        assert got.loc["parallel", "path_ms"] == pytest.approx(65.0)
        assert got.loc["sequential", "path"] == ("plan", "a", "b", "c", "d")
        assert got.loc["sequential", "path_ms"] == pytest.approx(115.0)

    def test_runs_with_different_graphs_are_solved_separately(self) -> None:
        """A run without step b still gets its own correct path."""
        short = {k: v for k, v in STEPS.items() if k != "b"}
        short["d"] = (("a", "c"), 5.0, 0.001)
        short["c"] = (("plan",), 10.0, 0.0)
        runs, steps = tables(
            [HandRun("parallel", "parallel", STEPS), HandRun("parallel", "parallel", short)]
        )
        paths = sorted(run_critical_paths(steps, runs).path)
        assert paths == [("plan", "a", "d"), ("plan", "c", "d")]

    def test_sections_tile_the_run(self) -> None:
        """Latest first, contiguous, the run span owning the executor's overhead at the end."""
        runs, steps = tables([HandRun("parallel", "parallel", STEPS, overhead_ms=2.0)])
        spans = _names_for(runs, steps)
        traces = harness_traces(spans, runs, steps, run_critical_paths(steps, runs))
        sections = traces.critical_path.iat[0]
        assert [s["name"] for s in sections] == [
            "invoke_agent hand",
            "step d",
            "step c",
            "step plan",
        ]
        assert sections[0]["start_ms"] == pytest.approx(65.0) and sections[0][
            "end_ms"
        ] == pytest.approx(67.0)
        for later, earlier in itertools.pairwise(sections):
            assert later["start_ms"] == pytest.approx(earlier["end_ms"])
        assert sections[-1]["start_ms"] == 0.0
        assert sum(s["end_ms"] - s["start_ms"] for s in sections) == pytest.approx(
            traces.e2e_ms.iat[0]
        )


def _names_for(runs, steps):  # type: ignore[no-untyped-def]
    import pandas as pd

    names = [f"invoke_agent {s}" for s in runs.scenario] + [f"step {s}" for s in steps.step_id]
    return pd.DataFrame({"span_id": [*runs.span_id, *steps.span_id], "name": names})


class TestBottlenecks:
    def test_hand_computed(self) -> None:
        """Two runs, c on the path in one and a in the other: shares and frequencies by hand."""
        a_long = dict(STEPS, a=(("plan",), 60.0, 0.002))  # a: plan → a → d = 75 ms
        runs, steps = tables([HandRun("p", "parallel", STEPS), HandRun("p", "parallel", a_long)])
        got = harness_bottlenecks(steps, runs).set_index("step")
        assert got.loc["c", "on_path_share"] == pytest.approx(0.5)
        assert got.loc["c", "cp_ms_mean"] == pytest.approx(25.0)  # (50 + 0) / 2
        assert got.loc["a", "cp_ms_mean"] == pytest.approx(30.0)  # (0 + 60) / 2
        assert got.loc["plan", "share_of_e2e"] == pytest.approx(20.0 / 140.0)
        assert got.loc["a", "share_of_e2e"] == pytest.approx(60.0 / 140.0)
        assert got.loc[BETWEEN_STEPS, "cp_ms_mean"] == pytest.approx(0.0)
        assert got.index[0] == "a"  # ranked by share of e2e

    def test_queue_time_on_the_path(self) -> None:
        """With one slot for three branches, the waiting is queue time of the queued steps."""
        runs, steps = tables([HandRun("capped", "parallel", STEPS, cap=1)])
        got = harness_bottlenecks(steps, runs).set_index("step")
        # One slot, declared order: a 10–40, b 40–60, c 60–110, d 110–115. c waited 50 ms
        # for the slot and is on the path; b waited 30 ms but is not.
        assert got.loc["c", "queue_ms_mean"] == pytest.approx(50.0)
        assert got.loc["c", "cp_queue_ms_mean"] == pytest.approx(50.0)
        assert got.loc["c", "service_ms_mean"] == pytest.approx(50.0)
        assert got.loc["b", "queue_ms_mean"] == pytest.approx(30.0)
        assert got.loc["b", "cp_queue_ms_mean"] == pytest.approx(0.0)


class TestAgreesWithTheSpanTreeWalk:
    def test_real_runs(self, record) -> None:  # type: ignore[no-untyped-def]
        """On real harness traces, the span-tree walk crosses the same steps as the DAG path."""
        scenario = load_scenario("research_assistant")
        jobs = [(v, 7, i) for v in scenario.variants for i in range(3)]
        spans = record(scenario, jobs, time_scale=0.02).spans
        runs = runs_table(spans)
        steps = steps_table(spans, runs)
        paths = run_critical_paths(steps, runs).set_index("trace_id").path
        step_of = dict(zip(steps.span_id, steps.step_id, strict=True))
        parent_of = dict(zip(spans.span_id, spans.parent_span_id, strict=True))
        assert len(paths) == len(jobs)
        for trace_id, trace in spans.groupby("trace_id"):
            cp_spans = [
                CpSpan(r.span_id, r.parent_span_id or None, r.start_ns, r.end_ns, r.kind, r.name)
                for r in trace.itertuples()
            ]
            # A step that starts the instant its predecessor ends touches it; a tiny
            # tolerance lets the walk see that as "before", as the DAG does.
            sections = critical_path(cp_spans, overlap_tolerance=1e-6)
            walked = []
            for s in reversed(sections):
                sid = s.span_id if s.span_id in step_of else parent_of.get(s.span_id)
                if sid in step_of and (not walked or walked[-1] != step_of[sid]):
                    walked.append(step_of[sid])
            assert tuple(walked) == paths[trace_id], trace_id
