"""Variant comparison: deltas vs the baseline with bootstrap CIs, and the gate's helpers."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.analysis import compare
from harness.analysis.compare import (
    COMPARE_COLUMNS,
    bootstrap_diff,
    compare_variants,
    mann_whitney_p,
    quantile,
)
from harness.analysis.ingest import read_spans
from harness.analysis.runs import RUN_COLUMNS, runs_table
from harness.runner import run_batch
from harness.scenario import load_scenario


def _runs(variant: str, e2e: list[float], cost: list[float], **cols: Any) -> pd.DataFrame:
    """A runs table (``runs_table`` columns) for one variant; latency and TTFC alike by default."""
    n = len(e2e)
    data: dict[str, Any] = {c: [None] * n for c in RUN_COLUMNS}
    data.update(
        trace_id=[f"{variant}-{i}" for i in range(n)],
        scenario="s",
        variant=variant,
        mode="sequential" if variant == "sequential" else "parallel",
        outcome="completed",
        e2e_ms=e2e,
        ttfc_ms=e2e,
        cost_usd=cost,
        time_scale=1.0,
        value_of_time_usd_per_s=0.002,
        baseline_variant="sequential",
    )
    data.update(cols)
    return pd.DataFrame(data, columns=RUN_COLUMNS)


def _one(frame: pd.DataFrame) -> pd.Series:
    assert len(frame) == 1
    return frame.iloc[0]


class TestHandComputed:
    """Deltas small enough to check by hand."""

    def test_deltas_and_which_runs_count(self):
        """Latency from completed runs only, cost from all runs (a failed run paid too).

        Baseline completed e2e 100/200/300, plus a failed run (10 ms, $0.004);
        variant 50/100/150. p50: 100 − 200 = −100. p95 (linear): 145 − 290 = −145.
        Cost: 0.02 − (3 × 0.01 + 0.004) / 4 = 0.0115 per run. Saved: (200 − 100)
        ms = 0.1 s per run, so $/s saved = 0.0115 / 0.1 = 0.115.
        """
        base = _runs("sequential", [100, 200, 300, 10], [0.01, 0.01, 0.01, 0.004])
        base.loc[3, "outcome"] = "failed"
        runs = pd.concat([base, _runs("parallel", [50, 100, 150], [0.02] * 3)])
        row = _one(compare_variants(runs, n_resamples=999))
        assert list(compare_variants(runs).columns) == COMPARE_COLUMNS
        assert (row.baseline, row.variant) == ("sequential", "parallel")
        assert (row.n_baseline, row.n_variant) == (4, 3)
        assert (row.n_baseline_completed, row.n_variant_completed) == (3, 3)
        assert row.delta_e2e_p50_ms == pytest.approx(-100)
        assert row.delta_e2e_p95_ms == pytest.approx(-145)
        assert row.delta_ttfc_p50_ms == pytest.approx(-100)
        assert row.delta_ttfc_p95_ms == pytest.approx(-145)
        assert row.delta_cost_usd_per_run == pytest.approx(0.0115)
        assert row.saved_s_per_run == pytest.approx(0.1)
        assert row.usd_per_s_saved == pytest.approx(0.115)
        # 0.115 $/s is far above what a second is worth here (0.002 $/s).
        assert row.worth_it is not None and not row.worth_it
        for metric in ("delta_e2e_p50_ms", "delta_cost_usd_per_run", "saved_s_per_run"):
            assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"]

    def test_seconds_saved_are_real_seconds(self):
        """Runs recorded at time scale 0.1 saved ten times the seconds their spans show."""
        runs = pd.concat(
            [
                _runs("sequential", [100, 200, 300], [0.01] * 3, time_scale=0.1),
                _runs("parallel", [50, 100, 150], [0.02] * 3, time_scale=0.1),
            ]
        )
        row = _one(compare_variants(runs, n_resamples=999))
        assert row.delta_e2e_p50_ms == pytest.approx(-100)  # as measured
        assert row.saved_s_per_run == pytest.approx(1.0)  # 0.1 s measured = 1 s real
        assert row.usd_per_s_saved == pytest.approx(0.01)

    def test_free_when_cheaper_and_faster(self):
        """A variant that saves time and money has a negative $/s: free, worth it."""
        runs = pd.concat(
            [
                _runs("sequential", [100, 110, 120, 130], [0.02, 0.02, 0.03, 0.03]),
                _runs("parallel", [50, 60, 70, 80], [0.01, 0.01, 0.01, 0.02]),
            ]
        )
        row = _one(compare_variants(runs, n_resamples=999))
        assert row.usd_per_s_saved < 0
        assert row.worth_it
        assert "free" in row.note

    def test_no_time_saved_means_no_dollars_per_second(self):
        """A slower, dearer variant: $/s saved is undefined, with the reason, and not worth it."""
        runs = pd.concat(
            [
                _runs("sequential", [100, 110, 120], [0.01, 0.01, 0.01]),
                _runs("parallel", [130, 140, 150], [0.02, 0.02, 0.03]),
            ]
        )
        row = _one(compare_variants(runs, n_resamples=999))
        assert np.isnan(row.usd_per_s_saved)
        assert np.isnan(row.usd_per_s_saved_ci_low) and np.isnan(row.usd_per_s_saved_ci_high)
        assert "saves no time" in row.note
        assert row.saved_s_per_run == pytest.approx(-0.03)
        assert row.worth_it is not None and not row.worth_it


class TestIntervals:
    """The bootstrap intervals: contain the estimate, narrow with data, degenerate gracefully."""

    @staticmethod
    def _normal(n: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.concat(
            [
                _runs(
                    "sequential", list(rng.normal(1000, 100, n)), list(rng.normal(0.01, 0.001, n))
                ),
                _runs("parallel", list(rng.normal(600, 100, n)), list(rng.normal(0.015, 0.001, n))),
            ]
        )

    def test_contains_the_estimate_and_narrows_with_more_data(self):
        """Twenty runs give a wide interval; two thousand a much narrower one around −400 ms."""
        small = _one(compare_variants(self._normal(20, 1), n_resamples=999))
        big = _one(compare_variants(self._normal(2000, 2), n_resamples=999))
        for row in (small, big):
            for metric in ("delta_e2e_p50_ms", "delta_e2e_p95_ms", "delta_cost_usd_per_run"):
                assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"]
            assert row.delta_e2e_p50_ms_ci_high < 0  # clearly faster
        width = {
            name: row.delta_e2e_p50_ms_ci_high - row.delta_e2e_p50_ms_ci_low
            for name, row in (("small", small), ("big", big))
        }
        assert width["big"] < width["small"] / 4
        assert big.delta_e2e_p50_ms == pytest.approx(-400, abs=20)

    def test_identical_values_give_a_zero_width_interval(self):
        """Every run the same in both variants: Δ = 0 exactly, no NaN, no warnings."""
        runs = pd.concat(
            [
                _runs("sequential", [100.0] * 5, [0.01] * 5),
                _runs("parallel", [100.0] * 5, [0.01] * 5),
            ]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            row = _one(compare_variants(runs))
        for metric in ("delta_e2e_p50_ms", "delta_e2e_p95_ms", "delta_cost_usd_per_run"):
            assert row[metric] == row[f"{metric}_ci_low"] == row[f"{metric}_ci_high"] == 0
        assert "saves no time" in row.note

    def test_degenerate_bca_falls_back_to_percentile(self):
        """Medians of a few repeated values break BCa's jackknife: a percentile CI, no warning."""
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est, low, high = bootstrap_diff([1, 1, 1, 5], [2, 2, 2, 2, 9], np.median, method="BCa")
        assert est == 1.0
        assert np.isfinite(low) and np.isfinite(high) and low <= est <= high

    def test_reproducible_with_a_seed(self):
        """The same seed gives the same table; another seed other intervals, same estimates."""
        runs = self._normal(30, 3)
        first = compare_variants(runs, seed=7, n_resamples=999)
        pd.testing.assert_frame_equal(first, compare_variants(runs, seed=7, n_resamples=999))
        other = compare_variants(runs, seed=8, n_resamples=999)
        assert other.delta_e2e_p50_ms.iloc[0] == first.delta_e2e_p50_ms.iloc[0]
        assert other.delta_e2e_p50_ms_ci_low.iloc[0] != first.delta_e2e_p50_ms_ci_low.iloc[0]

    def test_big_inputs_stay_fast(self):
        """2 × 50,000 runs: resamples are cut to the value budget (≈1.7 s on the dev machine)."""
        rng = np.random.default_rng(4)
        n = 50_000
        runs = pd.concat(
            [
                _runs(
                    "sequential", list(rng.lognormal(10, 0.2, n)), list(rng.normal(0.01, 1e-3, n))
                ),
                _runs(
                    "parallel", list(rng.lognormal(9.3, 0.2, n)), list(rng.normal(0.02, 1e-3, n))
                ),
            ]
        )
        started = time.perf_counter()
        row = _one(compare_variants(runs))
        elapsed = time.perf_counter() - started
        assert "300 resamples (reduced from 4999" in row.ci_method
        assert row.delta_e2e_p50_ms_ci_low <= row.delta_e2e_p50_ms <= row.delta_e2e_p50_ms_ci_high
        assert elapsed < 10  # 3 s budget on an idle machine; loose against a busy one

    def test_over_budget_runs_are_subsampled(self, monkeypatch: pytest.MonkeyPatch):
        """Beyond the value budget even at the fewest resamples, runs are subsampled (wider CI)."""
        monkeypatch.setattr(compare, "MAX_RESAMPLED_VALUES", 10_000)
        rng = np.random.default_rng(7)
        a, b = rng.normal(100, 10, 100), rng.normal(90, 10, 100)
        # 200 values × 200 resamples is 4× the budget: a quarter of each sample is kept.
        est, low, high = bootstrap_diff(a, b, np.mean, method="percentile")
        assert est == pytest.approx(b.mean() - a.mean())
        assert low < est < high
        runs = pd.concat(
            [_runs("sequential", list(a), [0.01] * 100), _runs("parallel", list(b), [0.02] * 100)]
        )
        assert "runs subsampled to 50" in _one(compare_variants(runs)).ci_method


class TestBaselines:
    """Which variant is the baseline, and what happens when it is missing."""

    def test_missing_baseline_is_a_note_not_an_error(self):
        """The scenario names 'sequential' but only parallel variants ran: rows say so."""
        runs = pd.concat(
            [_runs("parallel", [1, 2], [0.1, 0.1]), _runs("capped", [1, 2], [0.1, 0.1])]
        )
        table = compare_variants(runs)
        assert list(table.variant) == ["parallel", "capped"]
        assert all("baseline 'sequential' has no runs" in note for note in table.note)
        assert table.delta_e2e_p50_ms.isna().all()

    def test_explicit_baseline_wins(self):
        """``baseline_variant=`` overrides the one the runs name."""
        runs = pd.concat(
            [
                _runs("sequential", [100, 200, 300], [0.01] * 3),
                _runs("parallel", [50, 100, 150], [0.02] * 3),
            ]
        )
        row = _one(compare_variants(runs, "parallel", n_resamples=999))
        assert (row.baseline, row.variant) == ("parallel", "sequential")
        assert row.delta_e2e_p50_ms == pytest.approx(100)

    def test_no_named_baseline_falls_back_to_sequential(self):
        """Runs without a recorded baseline compare against 'sequential'."""
        runs = pd.concat(
            [
                _runs("parallel", [50, 100, 150], [0.02] * 3),
                _runs("sequential", [100, 200, 300], [0.01] * 3),
            ]
        )
        runs["baseline_variant"] = ""
        assert _one(compare_variants(runs, n_resamples=999)).baseline == "sequential"

    def test_time_scales_are_not_mixed(self):
        """A variant recorded at another time scale than its baseline is not compared."""
        runs = pd.concat(
            [
                _runs("sequential", [100, 200, 300], [0.01] * 3),
                _runs("parallel", [5, 10, 15], [0.02] * 3, time_scale=0.1),
            ]
        )
        row = _one(compare_variants(runs))
        assert row.time_scale == 0.1
        assert "time_scale 0.1" in row.note and "only at 1" in row.note
        assert np.isnan(row.delta_e2e_p50_ms)

    def test_empty_runs_table(self):
        assert compare_variants(pd.DataFrame(columns=RUN_COLUMNS)).empty


class TestHelpers:
    """``bootstrap_diff`` and ``mann_whitney_p``, for the CI gate."""

    def test_bootstrap_diff_of_means(self):
        """b − a with a CI around it; fewer than two values give NaN bounds."""
        est, low, high = bootstrap_diff([1, 2, 3, 4], [3, 4, 5, 6], np.mean, n_resamples=999)
        assert est == pytest.approx(2.0)
        assert low <= 2.0 <= high
        est, low, high = bootstrap_diff([1.0, np.nan], [3.0, 4.0], np.mean)
        assert est == pytest.approx(2.5) and np.isnan(low) and np.isnan(high)
        assert all(np.isnan(bootstrap_diff([], [1.0, 2.0])))

    def test_bootstrap_diff_of_a_quantile_is_seeded(self):
        rng = np.random.default_rng(5)
        a, b = rng.normal(100, 10, 200), rng.normal(110, 10, 200)
        first = bootstrap_diff(a, b, quantile(0.95), seed=3)
        assert first == bootstrap_diff(a, b, quantile(0.95), seed=3)
        assert first.estimate == pytest.approx(np.quantile(b, 0.95) - np.quantile(a, 0.95))
        assert first.low < first.estimate < first.high

    def test_mann_whitney(self):
        """Shifted samples: tiny p; the same values: p = 1; 'greater' asks if b is larger."""
        rng = np.random.default_rng(6)
        a, b = rng.normal(100, 10, 50), rng.normal(120, 10, 50)
        p = mann_whitney_p(a, b)
        assert p is not None and p < 1e-6
        assert mann_whitney_p(a, b, alternative="greater") == pytest.approx(p / 2, rel=1e-6)
        greater_the_other_way = mann_whitney_p(b, a, alternative="greater")
        assert greater_the_other_way is not None and greater_the_other_way > 0.99
        assert mann_whitney_p([5, 5, 5], [5, 5]) == 1.0
        assert mann_whitney_p([], [1, 2]) is None


def test_real_runs_of_the_research_assistant(tmp_path: Path):
    """Simulated runs: parallel is faster (CI excludes 0) and dearer (it re-sends context)."""
    scenario = load_scenario("research_assistant")
    batch = run_batch(
        scenario,
        variants=["sequential", "parallel"],
        runs=20,
        out_dir=tmp_path,
        time_scale=0.02,
        concurrency=40,
    )
    spans, _ = read_spans(batch.spans_path)
    row = _one(compare_variants(runs_table(spans)))
    assert (row.baseline, row.variant, row.n_baseline, row.n_variant) == (
        "sequential",
        "parallel",
        20,
        20,
    )
    assert row.delta_e2e_p50_ms < 0
    assert row.delta_e2e_p50_ms_ci_high < 0
    assert row.delta_cost_usd_per_run > 0
    assert row.delta_cost_usd_per_run_ci_low > 0
    assert row.saved_s_per_run > 0
    assert row.usd_per_s_saved > 0
    # Both reach the first card (plan) at about the same time.
    assert abs(row.delta_ttfc_p50_ms) < 0.1 * abs(row.delta_e2e_p50_ms)
