"""summary.json: per-variant numbers computed from spans read back from disk."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from harness import dag
from harness.analysis.runs import runs_table, speed_index_s, steps_table
from harness.analysis.summary import SUMMARY_SCHEMA_VERSION, write_summary
from harness.scenario import Scenario, load_scenario


class TestSpeedIndex:
    """Lighthouse's speed index applied to cards (DESIGN.md "Definitions")."""

    def test_all_cards_at_once(self):
        """All five cards at 10 s: nothing was shown for 10 s, so 10."""
        assert speed_index_s([10.0] * 5) == pytest.approx(10.0)

    def test_one_card_every_two_seconds(self):
        """One of five cards every 2 s: 2 × (1 + 4/5 + 3/5 + 2/5 + 1/5) = 6."""
        assert speed_index_s([2.0, 4.0, 6.0, 8.0, 10.0]) == pytest.approx(6.0)

    def test_order_of_card_times_does_not_matter(self):
        """Card times given out of order give the same index."""
        assert speed_index_s([10.0, 2.0, 8.0, 4.0, 6.0]) == pytest.approx(6.0)

    def test_early_card_lowers_the_index(self):
        """Two cards, at 1 s and 9 s: 1 + (9 - 1) / 2 = 5."""
        assert speed_index_s([1.0, 9.0]) == pytest.approx(5.0)

    def test_no_cards(self):
        """A run that showed nothing has no speed index."""
        assert speed_index_s([]) is None


class TestWriteSummary:
    """``write_summary`` reads a spans file and reports per-variant percentiles and costs."""

    @pytest.fixture
    def batch(self, record):
        scenario = load_scenario("research_assistant")
        jobs = [(v, 11, i) for i in range(5) for v in ("sequential", "parallel")]
        return record(scenario, jobs, concurrent=True)

    def test_percentiles_ttfc_and_cost_per_variant(self, batch, raw_runs, tmp_path: Path):
        """p50/p95 e2e, TTFC and cost per run agree with numpy over the raw run spans."""
        out = tmp_path / "summary.json"
        summary = write_summary(batch.spans_path, out)
        assert json.loads(out.read_text()) == summary
        assert summary["schema_version"] == SUMMARY_SCHEMA_VERSION
        assert summary["runs"] == 10
        assert summary["data_quality"] == {}
        raw = raw_runs(batch.spans_path)
        by_variant = {v["variant"]: v for v in summary["variants"]}
        assert set(by_variant) == {"sequential", "parallel"}
        for variant, entry in by_variant.items():
            mine = [r for r in raw if r["variant"] == variant]
            e2e = np.array([r["e2e_ms"] for r in mine])
            ttfc = np.array([r["ttfc_ms"] for r in mine])
            cost = np.array([r["cost_usd"] for r in mine])
            assert entry["runs"] == 5
            assert entry["outcomes"] == {"completed": 5}
            assert entry["mode"] == variant
            assert entry["e2e_ms"]["p50"] == pytest.approx(np.median(e2e), rel=1e-9)
            assert entry["e2e_ms"]["p95"] == pytest.approx(np.percentile(e2e, 95), rel=1e-9)
            assert entry["ttfc_ms"]["p50"] == pytest.approx(np.median(ttfc), rel=1e-9)
            assert entry["cost_usd_per_run"]["mean"] == pytest.approx(cost.mean(), rel=1e-9)
            assert entry["e2e_ms_unscaled"]["p50"] == pytest.approx(np.median(e2e) / 0.02)
            # TTFC is the first card's time: the executor's own clock agrees within 2 ms.
            results = [r for r in batch.results if r.variant == variant]
            first_cards_ms = [r.cards[0].at_s * 1000 for r in results]
            assert entry["ttfc_ms"]["p50"] == pytest.approx(
                statistics.median(first_cards_ms), abs=2.0
            )
            assert entry["cost_usd_per_run"]["mean"] == pytest.approx(
                statistics.mean(r.cost_usd for r in results)
            )
        # The parallel design answers sooner and costs more (it re-sends context).
        seq, par = by_variant["sequential"], by_variant["parallel"]
        assert par["e2e_ms"]["p50"] < 0.6 * seq["e2e_ms"]["p50"]
        assert par["cost_usd_per_run"]["mean"] > seq["cost_usd_per_run"]["mean"]
        # Both reach the first card (plan) at the same time.
        assert par["ttfc_ms"]["p50"] == pytest.approx(seq["ttfc_ms"]["p50"], rel=0.1)

    def test_executor_efficiency(self, batch, tmp_path: Path):
        """Executor efficiency is the DAG's lower bound over the makespan, never above 1."""
        summary = write_summary(batch.spans_path, tmp_path / "summary.json")
        scenario = load_scenario("research_assistant")
        runs = runs_table(batch.spans)
        steps = steps_table(batch.spans, runs)
        for entry in summary["variants"]:
            deps = scenario.plan(entry["variant"]).deps
            mine = []
            for run in runs[runs.variant == entry["variant"]].itertuples(index=False):
                own = steps[steps.trace_id == run.trace_id]
                service = dict(zip(own.step_id, own.service_ms, strict=True))
                # Sequential: one step at a time, so the bound is the total work.
                bound = (
                    sum(service.values())
                    if entry["mode"] == "sequential"
                    else dag.critical_path(deps, service).length
                )
                mine.append(bound / run.e2e_ms)
            assert max(mine) <= 1.0 + 1e-9
            efficiency = entry["executor_efficiency"]
            assert efficiency["p50"] == pytest.approx(float(np.median(mine)), rel=1e-9)
            assert efficiency["min"] == pytest.approx(min(mine), rel=1e-9)
            # Loose here (ten runs share one event loop); test_executor holds it to 0.98.
            assert efficiency["p50"] >= 0.9

    def test_bad_lines_are_counted_not_fatal(self, batch, tmp_path: Path):
        """A garbage line and a truncated last line are data-quality findings; runs survive."""
        damaged = tmp_path / "damaged.jsonl"
        lines = batch.spans_path.read_text(encoding="utf-8").splitlines()
        half = lines[-1][: len(lines[-1]) // 2]
        damaged.write_text(
            "\n".join([lines[0], "this is not json", *lines[1:], half]), encoding="utf-8"
        )
        clean = write_summary(batch.spans_path, tmp_path / "clean.json")
        summary = write_summary(damaged, tmp_path / "damaged.json")
        assert summary["data_quality"]["truncated_or_invalid_json"]["count"] == 2
        assert summary["runs"] == clean["runs"] == 10
        assert summary["variants"] == clean["variants"]

    def test_failed_runs_have_no_ttfc_and_no_efficiency(self, record, tmp_path: Path):
        """Runs that showed no card count as runs, with TTFC and efficiency left empty."""
        scenario = Scenario.from_dict(
            {
                "name": "doomed",
                "steps": [
                    {
                        "id": "ask",
                        "kind": "llm",
                        "input_tokens": 10,
                        "output_tokens": 5,
                        "card": True,
                        "fail_rate": 1.0,
                        "max_attempts": 1,
                    }
                ],
                "baseline_variant": "parallel",
                "variants": {"parallel": {"mode": "parallel"}},
            }
        )
        rec = record(scenario, [("parallel", 0, 0), ("parallel", 0, 1)])
        summary = write_summary(rec.spans_path, tmp_path / "summary.json")
        (entry,) = summary["variants"]
        assert entry["runs"] == 2
        assert entry["outcomes"] == {"failed": 2}
        assert entry["completed_runs"] == 0
        assert entry["ttfc_ms"] == {"p50": None, "p95": None}
        assert entry["executor_efficiency"] == {"p50": None, "min": None}
        assert entry["e2e_ms"]["p50"] > 0
        assert entry["cost_usd_per_run"]["mean"] == 0

    def test_scenarios_sharing_a_variant_name_stay_apart(self, record, tmp_path: Path):
        """Two scenarios with a "parallel" variant in one file each get their own numbers."""
        doomed = Scenario.from_dict(
            {
                "name": "doomed",
                "baseline_variant": "parallel",
                "steps": [
                    {
                        "id": "ask",
                        "kind": "llm",
                        "input_tokens": 10,
                        "output_tokens": 5,
                        "card": True,
                        "fail_rate": 1.0,
                        "max_attempts": 1,
                    }
                ],
                "variants": {"parallel": {"mode": "parallel"}},
            }
        )
        good = record(load_scenario("research_assistant"), [("parallel", 0, 0)], name="a.jsonl")
        bad = record(doomed, [("parallel", 0, 0)], name="b.jsonl")
        both = tmp_path / "both.jsonl"
        both.write_bytes(good.spans_path.read_bytes() + bad.spans_path.read_bytes())
        summary = write_summary(both, tmp_path / "summary.json")
        entries = {(v["scenario"], v["variant"]): v for v in summary["variants"]}
        assert set(entries) == {("research_assistant", "parallel"), ("doomed", "parallel")}
        assert entries["doomed", "parallel"]["executor_efficiency"]["p50"] is None
        assert entries["research_assistant", "parallel"]["executor_efficiency"]["p50"] > 0.9

    def test_empty_spans_file(self, tmp_path: Path):
        """A spans file with no runs summarises to zero runs instead of failing."""
        empty = tmp_path / "spans.jsonl"
        empty.write_text("")
        summary = write_summary(empty, tmp_path / "summary.json")
        assert summary["runs"] == 0
        assert summary["variants"] == []
