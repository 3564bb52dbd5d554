"""What-if replay: predict a variant's latency from another variant's step durations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.analysis.ingest import read_spans
from harness.analysis.runs import RUN_COLUMNS, STEP_COLUMNS, runs_table, steps_table
from harness.analysis.whatif import WHAT_IF_COLUMNS, what_if, what_if_table
from harness.errors import ConfigError
from harness.executor import Executor
from harness.scenario import BUNDLED_DIR, Scenario
from harness.telemetry import Telemetry

Tables = tuple[pd.DataFrame, pd.DataFrame]
DEPS = {"a": [], "b": [], "c": ["a", "b"]}


def _variant(
    variant: str,
    durations: list[dict[str, float]],
    deps: dict[str, list[str]],
    *,
    mode: str = "sequential",
    cap: int | None = None,
    e2e: list[float] | None = None,
    time_scale: float = 1.0,
    input_tokens: dict[str, int] | None = None,
) -> Tables:
    """Steps and runs tables of hand-made runs: ``durations`` per run, steps in that order."""
    runs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for i, run in enumerate(durations):
        trace = f"{variant}-{i}"
        runs.append(
            {
                "trace_id": trace,
                "scenario": "s",
                "variant": variant,
                "mode": mode,
                "max_concurrency": cap,
                "outcome": "completed",
                "e2e_ms": e2e[i] if e2e else sum(run.values()),
                "time_scale": time_scale,
                "baseline_variant": "sequential",
            }
        )
        start = 0.0
        for sid, ms in run.items():
            steps.append(
                {
                    "trace_id": trace,
                    "scenario": "s",
                    "variant": variant,
                    "step_id": sid,
                    "depends_on": tuple(deps[sid]),
                    "status": "ok",
                    "start_ms": start,
                    "end_ms": start + ms,
                    "duration_ms": ms,
                    "queue_ms": 0.0,
                    "service_ms": ms,
                    "input_tokens": (input_tokens or {}).get(sid, 100),
                    "output_tokens": 10,
                }
            )
            start += ms
    return pd.DataFrame(steps, columns=STEP_COLUMNS), pd.DataFrame(runs, columns=RUN_COLUMNS)


def _join(*parts: Tables) -> Tables:
    return (
        pd.concat([p[0] for p in parts], ignore_index=True),
        pd.concat([p[1] for p in parts], ignore_index=True),
    )


SEQ = _variant("sequential", [{"a": 10, "b": 20, "c": 30}] * 3, DEPS)


class TestByHand:
    """Small DAGs whose makespans can be worked out on paper."""

    def test_parallel_and_sequential_makespans(self):
        """a = 10, b = 20, c = 30 after both: parallel 20 + 30 = 50, sequential 60."""
        steps, runs = SEQ
        kwargs: dict[str, Any] = {"scenario": "s", "source_variant": "sequential", "n": 50}
        parallel = what_if(steps, runs, **kwargs)
        assert parallel.schedule.startswith("parallel (each step")
        assert parallel.max_concurrency is None
        assert (parallel.p50_ms, parallel.p95_ms, parallel.mean_ms) == (50, 50, 50)
        assert parallel.samples_ms.shape == (50,)
        assert what_if(steps, runs, sequential=True, **kwargs).p50_ms == 60
        assert what_if(steps, runs, max_concurrency=1, **kwargs).p50_ms == 60
        assert what_if(steps, runs, max_concurrency=2, **kwargs).p50_ms == 50
        # No target measured: no prediction error.
        assert parallel.measured_p50_ms is None and parallel.error_p50 is None

    def test_prediction_error_against_the_measured_target(self):
        """The target ran in parallel and took 55 ms: the 50 ms prediction is 1/11 low."""
        par = _variant(
            "parallel", [{"a": 10, "b": 20, "c": 30}] * 2, DEPS, mode="parallel", e2e=[55, 55]
        )
        steps, runs = _join(SEQ, par)
        got = what_if(
            steps, runs, scenario="s", source_variant="sequential", target_variant="parallel"
        )
        assert got.max_concurrency is None  # the target's own schedule
        assert (got.p50_ms, got.measured_p50_ms, got.measured_p95_ms) == (50, 55, 55)
        assert got.n_target_runs == 2
        assert got.error_p50 == pytest.approx((50 - 55) / 55)
        assert got.error_p95 == pytest.approx((50 - 55) / 55)
        assert got.to_dict()["error_p50"] == got.error_p50 and "samples_ms" not in got.to_dict()

    def test_capped_replay_starts_the_longest_path_first(self):
        """x = 10, y = 10, z = 20 with two slots: z goes first (bottom level), so 20, not 30."""
        deps: dict[str, list[str]] = {"x": [], "y": [], "z": []}
        steps, runs = _variant("sequential", [{"x": 10, "y": 10, "z": 20}], deps)
        got = what_if(steps, runs, scenario="s", source_variant="sequential", max_concurrency=2)
        assert got.schedule == "parallel, at most 2 steps at once"
        assert got.p50_ms == 20

    def test_the_target_dag_comes_from_the_target_spans(self):
        """The target makes c wait for a only: max(b, a + c) = max(20, 40) = 40."""
        deps = {"a": [], "b": [], "c": ["a"]}
        par = _variant("parallel", [{"a": 10, "b": 20, "c": 30}], deps, mode="parallel", e2e=[40])
        steps, runs = _join(SEQ, par)
        got = what_if(
            steps, runs, scenario="s", source_variant="sequential", target_variant="parallel"
        )
        assert got.p50_ms == 40 and got.error_p50 == 0
        # deps= overrides both: a chain a → b → c is 60 whatever the schedule.
        chain = {"a": [], "b": ["a"], "c": ["b"]}
        assert (
            what_if(steps, runs, scenario="s", source_variant="sequential", deps=chain).p50_ms == 60
        )

    def test_whole_run_resampling_keeps_steps_together(self):
        """Runs (a, b) = (10, 30) and (30, 10): together always 30 + 5; drawn apart, 15 too."""
        runs_ms = [{"a": 10, "b": 30, "c": 5}, {"a": 30, "b": 10, "c": 5}]
        steps, runs = _variant("sequential", runs_ms, DEPS)
        kwargs: dict[str, Any] = {"scenario": "s", "source_variant": "sequential", "n": 400}
        together = what_if(steps, runs, **kwargs)
        assert together.resample == "run"
        assert set(together.samples_ms) == {35}
        apart = what_if(steps, runs, resample="step", **kwargs)
        assert set(apart.samples_ms) == {15, 35}

    def test_deterministic_with_a_seed(self):
        """The same seed draws the same samples; another seed others."""
        rng = np.random.default_rng(0)
        runs_ms = [
            {k: float(v) for k, v in zip("abc", rng.uniform(5, 50, 3), strict=True)}
            for _ in range(20)
        ]
        steps, runs = _variant("sequential", runs_ms, DEPS)
        kwargs: dict[str, Any] = {"scenario": "s", "source_variant": "sequential", "n": 500}
        for resample in ("run", "step"):
            first = what_if(steps, runs, seed=3, resample=resample, **kwargs).samples_ms
            again = what_if(steps, runs, seed=3, resample=resample, **kwargs).samples_ms
            other = what_if(steps, runs, seed=4, resample=resample, **kwargs).samples_ms
            np.testing.assert_array_equal(first, again)
            assert not np.array_equal(first, other)

    def test_notes_on_left_out_steps_and_different_work(self):
        """A source step the target lacks is left out; a step with more tokens is named."""
        src_deps = {**DEPS, "extra": ["c"]}
        src = _variant("sequential", [{"a": 10, "b": 20, "c": 30, "extra": 99}], src_deps)
        tgt = _variant(
            "parallel",
            [{"a": 10, "b": 20, "c": 30}],
            DEPS,
            mode="parallel",
            input_tokens={"a": 500},
        )
        steps, runs = _join(src, tgt)
        got = what_if(
            steps, runs, scenario="s", source_variant="sequential", target_variant="parallel"
        )
        assert got.p50_ms == 50
        assert "left out: extra" in got.note
        assert "a input tokens 100 → 500" in got.note


class TestErrors:
    """What cannot be predicted says so, with what to do."""

    def test_a_step_never_measured_in_the_source(self):
        """The target runs a speculative step 'd' the source never ran."""
        deps = {**DEPS, "d": ["a"]}
        spec = _variant("speculative", [{"a": 1, "b": 2, "c": 3, "d": 4}], deps, mode="parallel")
        steps, runs = _join(SEQ, spec)
        with pytest.raises(ConfigError, match="cannot be predicted: d") as info:
            what_if(
                steps, runs, scenario="s", source_variant="sequential", target_variant="speculative"
            )
        assert info.value.fix and "deps=" in info.value.fix
        assert "what-if s: sequential → speculative" in str(info.value)
        with pytest.raises(ConfigError, match="cannot be predicted: d"):
            what_if(*SEQ, scenario="s", source_variant="sequential", deps=deps)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"source_variant": "parallel"}, "no completed runs of variant 'parallel'"),
            (
                {"sequential": True, "max_concurrency": 2},
                "both sequential=True and max_concurrency",
            ),
            ({"max_concurrency": 0}, "at least 1"),
            ({"deps": {"a": ["b"], "b": ["a"]}}, "cycle"),
            ({"resample": "bogus"}, "unknown resample"),
        ],
    )
    def test_bad_requests(self, kwargs: dict[str, Any], message: str):
        args: dict[str, Any] = {"scenario": "s", "source_variant": "sequential", **kwargs}
        with pytest.raises(ConfigError, match=message):
            what_if(*SEQ, **args)

    def test_source_at_several_time_scales(self):
        fast = _variant("sequential", [{"a": 1, "b": 2, "c": 3}], DEPS, time_scale=0.1)
        fast[0]["trace_id"] = fast[1]["trace_id"] = "fast"
        with pytest.raises(ConfigError, match="several time scales"):
            what_if(*_join(SEQ, fast), scenario="s", source_variant="sequential")

    def test_target_measured_at_another_time_scale_gives_no_error(self):
        par = _variant(
            "parallel", [{"a": 1, "b": 2, "c": 3}], DEPS, mode="parallel", time_scale=0.1
        )
        got = what_if(
            *_join(SEQ, par), scenario="s", source_variant="sequential", target_variant="parallel"
        )
        assert got.error_p50 is None
        assert "measured at time_scale 0.1, not 1" in got.note


def test_what_if_table_by_hand():
    """One row per non-baseline variant; an unpredictable one explains why."""
    par = _variant(
        "parallel", [{"a": 10, "b": 20, "c": 30}] * 2, DEPS, mode="parallel", e2e=[50, 50]
    )
    spec = _variant("speculative", [{"a": 1, "b": 2, "c": 3, "d": 4}], {**DEPS, "d": ["a"]})
    table = what_if_table(*_join(SEQ, par, spec), n=100)
    assert list(table.columns) == WHAT_IF_COLUMNS
    assert list(table.target_variant) == ["parallel", "speculative"]
    assert set(table.source_variant) == {"sequential"}
    ok, bad = table.iloc[0], table.iloc[1]
    assert (ok.predicted_p50_ms, ok.measured_p50_ms, ok.error_p50) == (50, 50, 0)
    assert "cannot be predicted: d" in bad.note
    assert pd.isna(bad.predicted_p50_ms)
    # Another baseline: the sequential runs predicted from the parallel ones (60 = 10 + 20 + 30).
    other = what_if_table(*_join(SEQ, par), "parallel", n=100)
    assert list(other.target_variant) == ["sequential"]
    assert (other.predicted_p50_ms.iloc[0], other.error_p50.iloc[0]) == (60, 0)


# --- simulated runs -----------------------------------------------------------------------

RUNS_PER_VARIANT = 30
TIME_SCALE = 0.2


def _research_scenario() -> Scenario:
    """research_assistant with parallel variants that do the sequential variant's work.

    The bundled parallel variants re-send context (search_docs and analyze_data
    read more tokens, so they take longer): work a replay of the sequential
    steps cannot know about. ``parallel_resend`` keeps those overrides to show
    how far that moves a prediction; the others isolate the schedule.
    """
    data = yaml.safe_load((BUNDLED_DIR / "research_assistant.yaml").read_text(encoding="utf-8"))
    resend = data["variants"]["parallel"]
    data["variants"] = {
        "sequential": {"mode": "sequential"},
        "parallel": {"mode": "parallel"},
        "parallel_capped": {"mode": "parallel", "max_concurrency": 2},
        "parallel_resend": resend,
    }
    return Scenario.from_dict(data, source="<research_assistant, same work>")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Tables:
    """30 runs of each variant at time scale 0.2, started 5 ms apart.

    The staggered start is what a load generator's spawn rate does; starting all
    120 runs in one event-loop tick would make the first step of each run queue
    behind the others' start-up (tens of ms): the harness's overhead, not the
    agent's schedule. Time scale 0.2 keeps such overhead small next to the steps
    (0.1 works on an idle machine; 0.2 also when other tests share the CPU).
    """
    scenario = _research_scenario()
    path: Path = tmp_path_factory.mktemp("whatif") / "spans.jsonl"
    telemetry = Telemetry(spans_path=path, otlp_from_env=False)
    executor = Executor(scenario, telemetry=telemetry, time_scale=TIME_SCALE)
    jobs = [(i, v) for i in range(RUNS_PER_VARIANT) for v in scenario.variants]

    async def one(k: int, index: int, variant: str) -> None:
        await asyncio.sleep(k * 0.005)
        await executor.run(variant, seed=0, run_index=index)

    async def main() -> None:
        await asyncio.gather(*(one(k, i, v) for k, (i, v) in enumerate(jobs)))

    try:
        asyncio.run(main())
        telemetry.force_flush()
    finally:
        telemetry.shutdown()
    spans, _ = read_spans(path)
    runs = runs_table(spans)
    assert (runs.outcome == "completed").all()
    return steps_table(spans, runs), runs


def _predict(simulated: Tables, target: str) -> Any:
    steps, runs = simulated
    return what_if(
        steps,
        runs,
        scenario="research_assistant",
        source_variant="sequential",
        target_variant=target,
    )


class TestSimulated:
    """Sequential traces predict the parallel variants that were measured too."""

    def test_sequential_to_parallel_median_within_5_percent(self, simulated: Tables):
        got = _predict(simulated, "parallel")
        assert got.n_source_runs == got.n_target_runs == RUNS_PER_VARIANT
        assert got.time_scale == TIME_SCALE
        assert got.error_p50 is not None and abs(got.error_p50) < 0.05
        assert got.error_p95 is not None and abs(got.error_p95) < 0.10
        assert got.note == ""
        # And parallel really is much faster than the sequential runs it came from.
        seq = simulated[1][simulated[1].variant == "sequential"].e2e_ms.median()
        assert got.p50_ms < 0.6 * seq

    def test_sequential_to_capped_median_within_5_percent(self, simulated: Tables):
        got = _predict(simulated, "parallel_capped")
        assert got.schedule == "parallel, at most 2 steps at once"
        assert got.error_p50 is not None and abs(got.error_p50) < 0.05

    def test_bundled_parallel_that_resends_context(self, simulated: Tables):
        """More tokens per branch are not predicted, but the median still lands within 5 %."""
        got = _predict(simulated, "parallel_resend")
        assert "search_docs input tokens 6000 → 12000" in got.note
        assert "analyze_data input tokens 3000 → 9000" in got.note
        assert got.error_p50 is not None and abs(got.error_p50) < 0.05

    def test_sequential_replayed_as_itself(self, simulated: Tables):
        """Sequential makespan = the sum of its service times, so the replay matches closely."""
        got = _predict(simulated, "sequential")
        assert got.max_concurrency == 1
        assert got.error_p50 is not None and abs(got.error_p50) < 0.01

    def test_the_table_predicts_every_variant(self, simulated: Tables):
        table = what_if_table(*simulated)
        assert sorted(table.target_variant) == ["parallel", "parallel_capped", "parallel_resend"]
        assert (table.error_p50.abs() < 0.05).all()
