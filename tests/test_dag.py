"""Tests of harness.dag: ordering, cycles, critical path, replay, forks and bounds."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import dag

# a(2) → b(3), c(5) → d(1): the critical path is a, c, d (8); b has 2 of slack.
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
DIAMOND_S = {"a": 2.0, "b": 3.0, "c": 5.0, "d": 1.0}

# r(1) → x(4), y(3), z(2) → s(1): a fork of three between a root and a sink.
FORK3 = {"r": [], "x": ["r"], "y": ["r"], "z": ["r"], "s": ["x", "y", "z"]}
FORK3_S = {"r": 1.0, "x": 4.0, "y": 3.0, "z": 2.0, "s": 1.0}


class TestTopologicalOrder:
    """topological_order respects dependencies and keeps the declared order on ties."""

    def test_ties_keep_the_declared_order(self) -> None:
        """Among ready steps the one declared first runs first, not alphabetical nor FIFO."""
        # Alphabetical would give a, m, z; first-ready-first would give z, a, m.
        assert dag.topological_order({"z": [], "m": ["z"], "a": []}) == ["z", "m", "a"]

    def test_dependencies_come_first_whatever_the_declaration(self) -> None:
        """A step declared before its dependency still comes after it."""
        assert dag.topological_order({"draft": ["plan"], "plan": []}) == ["plan", "draft"]

    def test_a_cycle_raises(self) -> None:
        """A cycle raises ValueError instead of returning a partial order."""
        with pytest.raises(ValueError, match="cycle"):
            dag.topological_order({"a": ["b"], "b": ["a"], "c": []})

    def test_an_unknown_dependency_raises(self) -> None:
        """A dependency on an undeclared step raises ValueError naming both."""
        with pytest.raises(ValueError, match="'b' depends on unknown step 'nope'"):
            dag.topological_order({"a": [], "b": ["nope"]})

    def test_empty(self) -> None:
        """No steps, no order."""
        assert dag.topological_order({}) == []


class TestFindCycle:
    """find_cycle returns one cycle, each step depending on the next, or None."""

    def test_two_step_cycle(self) -> None:
        """a waits for b and b for a: the cycle is [a, b]."""
        assert dag.find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b"]

    def test_longer_cycle_excludes_the_way_in(self) -> None:
        """The root leading into a three-step cycle is not part of the cycle returned."""
        deps = {"start": [], "a": ["start", "c"], "b": ["a"], "c": ["b"]}
        assert dag.find_cycle(deps) == ["a", "c", "b"]

    def test_self_loop(self) -> None:
        """A step depending on itself is a cycle of one."""
        assert dag.find_cycle({"a": [], "b": ["a", "b"]}) == ["b"]

    def test_acyclic_returns_none(self) -> None:
        """A DAG has no cycle, and unknown dependencies are not mistaken for one."""
        assert dag.find_cycle(DIAMOND) is None
        assert dag.find_cycle({"a": ["ghost"]}) is None


class TestCriticalPath:
    """critical_path finds the longest path, its length, earliest starts and slack."""

    def test_diamond(self) -> None:
        """In the diamond the path is a, c, d (2 + 5 + 1 = 8) and b has 2 of slack."""
        cp = dag.critical_path(DIAMOND, DIAMOND_S)
        assert cp.steps == ["a", "c", "d"]
        assert cp.length == pytest.approx(8.0)
        assert cp.earliest_start == {"a": 0.0, "b": 2.0, "c": 2.0, "d": 7.0}
        assert cp.slack == pytest.approx({"a": 0.0, "b": 2.0, "c": 0.0, "d": 0.0})

    def test_slack_of_a_dangling_step_runs_to_the_end(self) -> None:
        """A side step with no dependents may grow until it reaches the path's end."""
        deps = {"a": [], "b": ["a"], "side": ["a"]}
        cp = dag.critical_path(deps, {"a": 1.0, "b": 10.0, "side": 4.0})
        assert cp.steps == ["a", "b"]
        assert cp.slack["side"] == pytest.approx(11.0 - 1.0 - 4.0)

    def test_ties_go_to_the_first_declared_dependency(self) -> None:
        """Two equally long branches: the path goes through the dependency listed first."""
        deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["c", "b"]}
        cp = dag.critical_path(deps, {"a": 1.0, "b": 2.0, "c": 2.0, "d": 1.0})
        assert cp.steps == ["a", "c", "d"]
        assert cp.slack["b"] == 0.0 and cp.slack["c"] == 0.0

    def test_empty(self) -> None:
        """An empty DAG has an empty path of length 0."""
        cp = dag.critical_path({}, {})
        assert cp.steps == [] and cp.length == 0.0


class TestBottomLevels:
    """bottom_levels is each step's longest path to the end, itself included."""

    def test_diamond(self) -> None:
        """d 1, c 5 + 1, b 3 + 1, a 2 + max(6, 4)."""
        assert dag.bottom_levels(DIAMOND, DIAMOND_S) == {"a": 8.0, "b": 4.0, "c": 6.0, "d": 1.0}


class TestReplay:
    """replay schedules the DAG as the executor does, with or without a cap."""

    def test_uncapped_is_the_longest_path(self) -> None:
        """Without a cap every step starts when its dependencies finish."""
        schedule = dag.replay(DIAMOND, DIAMOND_S)
        assert schedule.makespan == pytest.approx(8.0)
        assert schedule.start == {"a": 0.0, "b": 2.0, "c": 2.0, "d": 7.0}

    def test_cap_one_is_the_sum_in_order(self) -> None:
        """With cap 1 and an order the steps run back to back in that order."""
        schedule = dag.replay(DIAMOND, DIAMOND_S, 1, order=["a", "c", "b", "d"])
        assert schedule.makespan == pytest.approx(11.0)
        assert schedule.start == {"a": 0.0, "c": 2.0, "b": 7.0, "d": 10.0}

    def test_cap_two_on_a_fork_of_three(self) -> None:
        """Cap 2: x and y start at 1, z takes y's slot at 4, s runs 6–7."""
        schedule = dag.replay(FORK3, FORK3_S, 2)
        assert schedule.start == {"r": 0.0, "x": 1.0, "y": 1.0, "z": 4.0, "s": 6.0}
        assert schedule.makespan == pytest.approx(7.0)

    def test_longest_remaining_work_goes_first(self) -> None:
        """When slots are short the branch with the most work after it starts first."""
        deps = {"r": [], "p": ["r"], "q": ["r"], "w": ["r"], "s": ["p", "q", "w"]}
        durations = {"r": 1.0, "p": 1.0, "q": 1.0, "w": 6.0, "s": 1.0}
        schedule = dag.replay(deps, durations, 2)
        # w (bottom level 7) and p (2, declared before q) start at 1; q follows p at 2.
        assert schedule.start["w"] == 1.0 and schedule.start["q"] == 2.0
        assert schedule.makespan == pytest.approx(8.0)
        # Declared order as the priority would start w only at 2 and end at 9.
        by_order = {sid: -float(i) for i, sid in enumerate(deps)}
        assert dag.replay(deps, durations, 2, priority=by_order).makespan == pytest.approx(9.0)

    def test_zero_and_negative_durations_take_no_time(self) -> None:
        """A zero-length step finishes when it starts; a negative one is clamped at 0."""
        schedule = dag.replay({"a": [], "b": ["a"], "c": ["b"]}, {"a": 1.0, "b": -3.0, "c": 0.0})
        assert schedule.end == {"a": 1.0, "b": 1.0, "c": 1.0}

    def test_empty(self) -> None:
        """An empty DAG replays to a makespan of 0."""
        assert dag.replay({}, {}).makespan == 0.0


class TestForks:
    """forks groups steps that share the same depends_on set."""

    def test_fork_of_three(self) -> None:
        """x, y and z all wait for r only: one fork, in declared order."""
        assert dag.forks(FORK3) == [(("r",), ["x", "y", "z"])]

    def test_root_fork(self) -> None:
        """Several steps with no dependencies form a fork with an empty key."""
        assert dag.forks({"b": [], "a": [], "c": ["a", "b"]}) == [((), ["b", "a"])]

    def test_dependency_order_does_not_matter(self) -> None:
        """The same set listed in a different order is the same fork."""
        deps = {"a": [], "b": [], "x": ["a", "b"], "y": ["b", "a"]}
        assert dag.forks(deps) == [((), ["a", "b"]), (("a", "b"), ["x", "y"])]

    def test_chain_has_no_fork(self) -> None:
        """A chain has no parallel branches."""
        assert dag.forks({"a": [], "b": ["a"], "c": ["b"]}) == []


class TestForceAfterSiblings:
    """force_after_siblings makes one branch wait for its fork siblings."""

    def test_branch_waits_for_its_siblings(self) -> None:
        """x gains y and z as dependencies; the others and the input are untouched."""
        forced = dag.force_after_siblings(FORK3, "x", ["x", "y", "z"])
        assert forced["x"] == ["r", "y", "z"]
        assert {k: v for k, v in forced.items() if k != "x"} == {
            k: list(v) for k, v in FORK3.items() if k != "x"
        }
        assert FORK3["x"] == ["r"]

    def test_ms_saved_by_a_branch(self) -> None:
        """Forcing c after b in the diamond costs 3: the time c saves by running in parallel."""
        forced = dag.force_after_siblings(DIAMOND, "c", ["b", "c"])
        saved = dag.replay(forced, DIAMOND_S).makespan - dag.replay(DIAMOND, DIAMOND_S).makespan
        assert saved == pytest.approx(3.0)

    def test_no_duplicate_dependencies(self) -> None:
        """A sibling that is already a dependency is not listed twice."""
        forced = dag.force_after_siblings({"a": [], "b": ["a"]}, "b", ["a"])
        assert forced["b"] == ["a"]


class TestLowerBound:
    """lower_bound is max(L, W / m)."""

    def test_uncapped_is_the_critical_path(self) -> None:
        """With no cap the bound is the critical-path length."""
        assert dag.lower_bound(DIAMOND, DIAMOND_S) == pytest.approx(8.0)

    def test_cap_one_is_the_work(self) -> None:
        """With cap 1 the bound is the total work."""
        assert dag.lower_bound(DIAMOND, DIAMOND_S, 1) == pytest.approx(11.0)

    def test_wide_dag_is_bounded_by_work_over_cap(self) -> None:
        """Four independent 1 s steps on 2 slots need at least 2 s though L is 1 s."""
        deps: dict[str, list[str]] = {s: [] for s in "abcd"}
        assert dag.lower_bound(deps, dict.fromkeys("abcd", 1.0), 2) == pytest.approx(2.0)

    def test_long_dag_is_bounded_by_the_path(self) -> None:
        """The diamond on 2 slots: L = 8 beats W / m = 5.5."""
        assert dag.lower_bound(DIAMOND, DIAMOND_S, 2) == pytest.approx(8.0)


@st.composite
def weighted_dags(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, float]]:
    """A random DAG of up to 12 steps, declared in a shuffled order, with durations."""
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"s{i}" for i in range(n)]
    deps = {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i, name in enumerate(names)
    }
    declared = draw(st.permutations(names))
    durations = {
        name: draw(st.floats(min_value=0.0, max_value=10.0, allow_nan=False)) for name in names
    }
    return {name: deps[name] for name in declared}, durations


def longest_path_networkx(deps: dict[str, list[str]], durations: dict[str, float]) -> float:
    """Node-weighted longest path via networkx: each edge carries its source's duration."""
    graph = nx.DiGraph()
    for sid, parents in deps.items():
        graph.add_edge(sid, "END", weight=durations[sid])
        for p in parents:
            graph.add_edge(p, sid, weight=durations[p])
    return float(nx.dag_longest_path_length(graph))


class TestProperties:
    """Random DAGs: replay, critical path and lower bound agree with each other and networkx."""

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(weighted_dags(), st.integers(min_value=1, max_value=5))
    def test_replay_invariants(
        self, case: tuple[dict[str, list[str]], dict[str, float]], cap: int
    ) -> None:
        """Replays respect dependencies and the cap and never beat the lower bound."""
        deps, durations = case
        order = dag.topological_order(deps)
        length = dag.critical_path(deps, durations).length
        assert dag.replay(deps, durations).makespan == pytest.approx(length)
        assert dag.replay(deps, durations, 1, order=order).makespan == pytest.approx(
            sum(durations.values())
        )
        schedule = dag.replay(deps, durations, cap)
        assert schedule.makespan >= dag.lower_bound(deps, durations, cap) - 1e-9
        for sid, parents in deps.items():
            assert schedule.end[sid] == pytest.approx(schedule.start[sid] + durations[sid])
            for p in parents:
                assert schedule.start[sid] >= schedule.end[p] - 1e-9
        # Zero-length steps hold no slot for any time, so count steps with a duration.
        for sid in deps:
            t = schedule.start[sid]
            running = [s for s in deps if schedule.start[s] <= t < schedule.end[s]]
            assert len(running) <= cap

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(weighted_dags())
    def test_critical_path_matches_networkx(
        self, case: tuple[dict[str, list[str]], dict[str, float]]
    ) -> None:
        """The critical-path length equals networkx's longest node-weighted path."""
        deps, durations = case
        cp = dag.critical_path(deps, durations)
        assert cp.length == pytest.approx(longest_path_networkx(deps, durations))
        # The path is a chain of dependencies whose durations add up to the length.
        assert all(a in deps[b] for a, b in zip(cp.steps, cp.steps[1:], strict=False))
        assert sum(durations[s] for s in cp.steps) == pytest.approx(cp.length)
        assert all(cp.slack[s] == pytest.approx(0.0, abs=1e-9) for s in cp.steps)

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(
        st.integers(min_value=1, max_value=8).flatmap(
            lambda n: st.lists(
                st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n
            ).map(lambda edges: (n, edges))
        )
    )
    def test_find_cycle_matches_networkx(self, case: tuple[int, list[tuple[int, int]]]) -> None:
        """find_cycle finds a cycle exactly when networkx says the graph is not a DAG."""
        n, edges = case
        deps: dict[str, list[str]] = {f"s{i}": [] for i in range(n)}
        for child, parent in edges:
            deps[f"s{child}"].append(f"s{parent}")
        graph = nx.DiGraph()
        graph.add_nodes_from(deps)
        graph.add_edges_from((p, c) for c, ps in deps.items() for p in ps)
        cycle = dag.find_cycle(deps)
        if nx.is_directed_acyclic_graph(graph):
            assert cycle is None
            assert len(dag.topological_order(deps)) == n
        else:
            assert cycle
            for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
                assert b in deps[a]
            with pytest.raises(ValueError):
                dag.topological_order(deps)
