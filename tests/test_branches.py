"""Parallel branches: ms saved, extra cost, cost per ms saved and verdicts, computed by hand.

The hand-built scenario: ``plan`` (10 ms) forks into ``a`` (30), ``b`` (20),
``c`` (50) and a speculative ``spec`` (5); ``d`` (5) waits for a, b and c.
As run in parallel the makespan is 10 + 50 + 5 = 65 ms.
"""

from __future__ import annotations

import math

import pytest
from analysis_tables import HandRun, tables

from harness.analysis.branches import branch_table, verdict

BASELINE = {
    "plan": ((), 10.0, 0.001),
    "a": (("plan",), 30.0, 0.002),
    "b": (("plan",), 20.0, 0.001),
    "c": (("plan",), 50.0, 0.0),
    "d": (("a", "b", "c"), 5.0, 0.001),
}


def parallel(a_ms: float = 30.0, a_usd: float = 0.004, **kw: object) -> HandRun:
    steps = {
        "plan": ((), 10.0, 0.001),
        "a": (("plan",), a_ms, a_usd),  # re-sends the context: costs more than in the baseline
        "b": (("plan",), 20.0, 0.001),  # same cost as the baseline: free
        "c": (("plan",), 50.0, 0.0),
        "spec": (("plan",), 5.0, 0.003),  # speculative, absent from the baseline
        "d": (("a", "b", "c"), 5.0, 0.001),
    }
    return HandRun("parallel", "parallel", steps, value_of_time_usd_per_s=0.12, **kw)  # type: ignore[arg-type]


def rows(frame, key="step"):  # type: ignore[no-untyped-def]
    return {r[key]: r for r in frame.to_dict(orient="records")}


class TestBranchTable:
    def test_ms_saved_extra_cost_and_verdict_per_branch(self) -> None:
        """Each branch's saving, extra cost and verdict match the hand computation."""
        runs, steps = tables([HandRun("sequential", "sequential", BASELINE), parallel()])
        got = rows(branch_table(steps, runs).branches)
        assert set(got) == {"a", "b", "c", "spec"}
        # a forced after b, c, spec: starts at 60, ends 90, d ends 95 → 30 saved.
        assert got["a"]["ms_saved"] == pytest.approx(30.0)
        assert got["a"]["extra_cost_usd"] == pytest.approx(0.002)
        assert got["a"]["usd_per_ms_saved"] == pytest.approx(0.002 / 30)
        assert got["a"]["verdict"] == "worth_it"  # 6.7e-5 $/ms < 0.12 $/s = 1.2e-4 $/ms
        # b forced after the others: 60 → 80, d → 85: 20 saved, at no extra cost.
        assert got["b"]["ms_saved"] == pytest.approx(20.0)
        assert got["b"]["extra_cost_usd"] == pytest.approx(0.0)
        assert got["b"]["verdict"] == "free"
        # c forced after a, b, spec: 40 → 90, d → 95: 30 saved.
        assert got["c"]["ms_saved"] == pytest.approx(30.0)
        assert got["c"]["verdict"] == "free"
        # spec forced after a, b, c: 60 → 65, and nothing waits for it: saves nothing,
        # and as it is absent from the baseline all of its cost is extra.
        assert got["spec"]["ms_saved"] == pytest.approx(0.0)
        assert got["spec"]["extra_cost_usd"] == pytest.approx(0.003)
        assert math.isnan(got["spec"]["usd_per_ms_saved"])  # undefined: null in JSON
        assert got["spec"]["verdict"] == "not_worth_it"
        assert "saves no time" in got["spec"]["reason"]

    def test_fork_as_a_whole(self) -> None:
        """The fork run one branch after another (a, b, c, spec) ends at 115 ms: 50 ms saved."""
        runs, steps = tables([HandRun("sequential", "sequential", BASELINE), parallel()])
        fork = branch_table(steps, runs).forks.to_dict(orient="records")
        assert len(fork) == 1
        assert fork[0]["steps"] == ("a", "b", "c", "spec")
        assert fork[0]["ms_saved"] == pytest.approx(50.0)
        assert fork[0]["extra_cost_usd"] == pytest.approx(0.005)
        assert fork[0]["usd_per_ms_saved"] == pytest.approx(0.005 / 50)
        assert fork[0]["verdict"] == "worth_it"  # 1e-4 < 1.2e-4 $/ms

    def test_cost_per_ms_is_a_ratio_of_sums_over_runs(self) -> None:
        """Runs saving 30 and 40 ms for $0.002 and $0.004 extra: 0.006 / 70, not mean of ratios."""
        runs, steps = tables(
            [
                HandRun("sequential", "sequential", BASELINE),
                parallel(),
                parallel(a_ms=40.0, a_usd=0.006),
            ]
        )
        a = rows(branch_table(steps, runs).branches)["a"]
        assert a["runs"] == 2
        assert a["ms_saved_total"] == pytest.approx(70.0)
        assert a["extra_cost_usd_total"] == pytest.approx(0.006)
        assert a["usd_per_ms_saved"] == pytest.approx(0.006 / 70)
        assert a["usd_per_ms_saved"] != pytest.approx((0.002 / 30 + 0.004 / 40) / 2)

    def test_baseline_cost_is_the_mean_over_baseline_runs(self) -> None:
        """Baseline runs costing $0.001 and $0.003 for a make its baseline $0.002."""
        cheap = dict(BASELINE, a=(("plan",), 30.0, 0.001))
        dear = dict(BASELINE, a=(("plan",), 30.0, 0.003))
        runs, steps = tables(
            [
                HandRun("sequential", "sequential", cheap),
                HandRun("sequential", "sequential", dear),
                parallel(),
            ]
        )
        assert rows(branch_table(steps, runs).branches)["a"]["extra_cost_usd"] == pytest.approx(
            0.002
        )

    def test_ms_saved_is_reported_at_real_speed(self) -> None:
        """A run recorded at time scale 0.5 saves twice the ms it shows."""
        runs, steps = tables(
            [HandRun("sequential", "sequential", BASELINE), parallel(time_scale=0.5)]
        )
        assert rows(branch_table(steps, runs).branches)["a"]["ms_saved"] == pytest.approx(60.0)

    def test_missing_baseline_gives_unknown(self) -> None:
        """Without baseline runs the extra cost is unknown and the verdict says why."""
        runs, steps = tables([parallel()])
        a = rows(branch_table(steps, runs).branches)["a"]
        assert math.isnan(a["extra_cost_usd"])
        assert a["verdict"] == "unknown"
        assert "baseline" in a["reason"]

    def test_baseline_variant_override(self) -> None:
        """``baseline_variant`` picks another measured variant as the reference."""
        runs, steps = tables([parallel(), HandRun("cheap", "sequential", BASELINE)])
        found = branch_table(steps, runs, baseline_variant="cheap").branches
        assert set(found.baseline_variant) == {"cheap"}
        assert rows(found)["a"]["extra_cost_usd"] == pytest.approx(0.002)

    def test_sequential_variants_and_failed_runs_have_no_branches(self) -> None:
        """Only completed runs of parallel variants are counted."""
        runs, steps = tables(
            [HandRun("sequential", "sequential", BASELINE), parallel(), parallel(outcome="failed")]
        )
        found = branch_table(steps, runs).branches
        assert set(found.variant) == {"parallel"}
        assert set(found.runs) == {1}

    def test_capped_runs_are_replayed_under_their_cap(self) -> None:
        """Three 40 ms branches: uncapped each saves 40 ms; on two slots one saves nothing."""
        three = {
            "plan": ((), 10.0, 0.0),
            "x": (("plan",), 40.0, 0.001),
            "y": (("plan",), 40.0, 0.001),
            "z": (("plan",), 40.0, 0.001),
            "d": (("x", "y", "z"), 5.0, 0.0),
        }
        runs, steps = tables(
            [
                HandRun("sequential", "sequential", three),
                HandRun("parallel", "parallel", three),
                HandRun("capped", "parallel", three, cap=2),
            ]
        )
        found = branch_table(steps, runs).branches
        saved = {(r.variant, r.step): r.ms_saved for r in found.itertuples()}
        # Uncapped: 55 ms as run; x after y and z: 10 + 40 + 40 + 5 = 95.
        assert saved["parallel", "x"] == pytest.approx(40.0)
        # Two slots: x and y 10–50, z 50–90, d 90–95. Forcing x after y and z gives
        # y, z 10–50, x 50–90, d 90–95: the same 95 ms, so nothing saved.
        assert saved["capped", "x"] == pytest.approx(0.0)
        # z already waited for a slot; forcing it after x and y changes nothing either.
        assert saved["capped", "z"] == pytest.approx(0.0)


class TestVerdict:
    def test_free_when_no_extra_cost(self) -> None:
        """Zero or negative extra cost is free, whatever it saves."""
        assert verdict(0.0, 10.0, 0.01)[1] == "free"
        assert verdict(-1.0, 0.0, 0.01)[1] == "free"

    def test_threshold_is_value_of_time_per_ms(self) -> None:
        """Below value_of_time/1000 is worth it; at or above it is not."""
        assert verdict(0.009, 1000.0, 0.01)[1] == "worth_it"  # 9e-6 < 1e-5
        assert verdict(0.02, 1000.0, 0.01)[1] == "not_worth_it"  # 2e-5 ≥ 1e-5

    def test_undefined_cost_per_ms_when_nothing_saved(self) -> None:
        """A branch that costs extra and saves nothing has no cost per ms."""
        per_ms, word, reason = verdict(0.01, 0.0, 0.01)
        assert per_ms is None and word == "not_worth_it" and "undefined" in reason
