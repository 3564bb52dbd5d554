"""Tests of harness.scenario: loading, validation messages, plans and distributions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from genai_prices import Usage, calc_price
from helpers import expectations

import harness.scenario as scenario_module
from harness.errors import ScenarioError
from harness.latency import DEFAULT_PROFILES
from harness.scenario import (
    Dist,
    Scenario,
    bundled_scenarios,
    load_scenario,
    resolve_scenario_path,
)

DATA = Path(__file__).parent / "data"
BAD_FILES = sorted((DATA / "bad_scenarios").glob("*.yaml"))
BUNDLED = ["map_reduce_summarizer", "research_assistant", "support_agent"]


def published_usd_per_mtok(model: str) -> tuple[float, float]:
    """Input and output price per million tokens, straight from genai-prices."""
    one_m_in = calc_price(Usage(input_tokens=1_000_000, output_tokens=0), model_ref=model)
    one_m_out = calc_price(Usage(input_tokens=0, output_tokens=1_000_000), model_ref=model)
    return float(one_m_in.total_price), float(one_m_out.total_price)


def tiny(**changes: Any) -> dict[str, Any]:
    """A valid two-step scenario as parsed YAML, with top-level keys replaced by ``changes``."""
    data: dict[str, Any] = {
        "name": "tiny",
        "steps": [
            {"id": "fetch", "kind": "tool", "latency_ms": 1000},
            {
                "id": "think",
                "kind": "llm",
                "depends_on": ["fetch"],
                "input_tokens": 2000,
                "output_tokens": 101,
            },
        ],
        "variants": {"sequential": {"mode": "sequential"}},
    }
    data.update(changes)
    return data


class TestBadScenarioFiles:
    """Every invalid file raises one ScenarioError naming the file, the field and the fix."""

    def test_the_fixture_set_covers_every_listed_problem(self) -> None:
        """Each file in bad_scenarios/ states the field, text and fix its error must have."""
        assert len(BAD_FILES) >= 20
        for path in BAD_FILES:
            assert set(expectations(path)) == {"field", "text", "fix"}, path.name

    @pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
    def test_load_raises_a_scenario_error_with_file_field_and_fix(self, path: Path) -> None:
        """load_scenario raises ScenarioError whose message names the file, the field and a fix."""
        expect = expectations(path)
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        err = info.value
        message = str(err)
        assert err.file == str(path)
        assert message.startswith(f"{path}: ")
        if expect["field"] == "-":
            assert err.field is None
        else:
            assert err.field == expect["field"]
            assert f"field '{expect['field']}'" in message
        assert expect["text"] in message
        what, fix = message.split("\n  fix: ")
        assert expect["fix"] in fix
        # One problem, one message: two lines, no pydantic dump, no URL.
        assert "\n" not in what and "\n" not in fix
        assert "errors.pydantic.dev" not in message

    def test_non_utf8_bytes_are_reported_with_the_byte_offset(self, tmp_path: Path) -> None:
        """A file with Latin-1 bytes is refused as not UTF-8, at the offending byte."""
        path = tmp_path / "latin1.yaml"
        path.write_bytes(b"name: caf\xe9\nsteps: []\n")
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        message = str(info.value)
        assert message.startswith(f"{path}: not UTF-8 text (byte 9)")
        assert "fix: save the file as UTF-8" in message

    def test_unknown_model_is_accepted_once_it_has_a_price(self) -> None:
        """The unknown model that fails validation loads when models: gives it a price."""
        with pytest.raises(ScenarioError):
            load_scenario(DATA / "bad_scenarios" / "unknown_model.yaml")
        scenario = load_scenario(DATA / "good" / "priced_custom_model.yaml")
        plan = scenario.plan("sequential")
        # 100 input tokens at $3/Mtok plus 10 output tokens at $15/Mtok.
        assert plan.expected_cost_usd("think") == pytest.approx((100 * 3.0 + 10 * 15.0) / 1e6)

    def test_unknown_default_model_points_at_defaults(self) -> None:
        """An unpriced model that comes from defaults is reported at defaults.model."""
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(tiny(defaults={"model": "acme-brain-9000"}), source="t.yaml")
        assert info.value.field == "defaults.model"

    def test_a_later_problem_is_counted_not_listed(self) -> None:
        """With two problems, the message reports the first and says one more follows."""
        data = tiny()
        data["steps"][0]["latency_ms"] = -1
        data["steps"][1]["output_tokens"] = -1
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(data, source="t.yaml")
        assert info.value.field == "steps[0](id=fetch).latency_ms"
        assert "(and 1 more problem after this one)" in str(info.value)

    def test_an_llm_step_with_latency_is_refused(self) -> None:
        """An llm step's latency belongs to its model's profile, so latency_ms on it is an error."""
        data = tiny()
        data["steps"][1]["latency_ms"] = 500
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(data, source="t.yaml")
        assert info.value.field == "steps[1](id=think).latency_ms"
        assert "models.<name>.latency" in str(info.value)

    def test_added_step_reusing_an_id_is_refused(self) -> None:
        """A variant may not add a step whose id an existing step already has."""
        variants = {
            "sequential": {"mode": "sequential"},
            "parallel": {
                "mode": "parallel",
                "add_steps": [{"id": "fetch", "kind": "tool", "latency_ms": 5}],
            },
        }
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(tiny(variants=variants), source="t.yaml")
        assert info.value.field == "variants.parallel.add_steps[0].id"

    def test_remove_steps_with_an_unknown_id_is_refused(self) -> None:
        """remove_steps naming a step that does not exist is an error, with the valid ids."""
        variants = {
            "sequential": {"mode": "sequential"},
            "lean": {"mode": "parallel", "remove_steps": ["fetsh"]},
        }
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(tiny(variants=variants), source="t.yaml")
        assert info.value.field == "variants.lean.remove_steps"
        assert "fetch, think" in str(info.value)


class TestResolveScenarioPath:
    """A scenario is found by path or by bundled name; otherwise the names are listed."""

    def test_bundled_names_are_listed(self) -> None:
        """bundled_scenarios lists the three shipped scenarios by name."""
        assert bundled_scenarios() == BUNDLED

    def test_budget_files_are_not_scenarios(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A NAME.budget.yaml next to the scenarios is not listed as a scenario."""
        (tmp_path / "alpha.yaml").write_text("name: alpha\n")
        (tmp_path / "alpha.budget.yaml").write_text("{}\n")
        monkeypatch.setattr(scenario_module, "BUNDLED_DIR", tmp_path)
        assert bundled_scenarios() == ["alpha"]

    def test_a_name_resolves_to_the_bundled_file(self) -> None:
        """A bare bundled name resolves to scenarios/NAME.yaml."""
        path = resolve_scenario_path("support_agent")
        assert path == scenario_module.BUNDLED_DIR / "support_agent.yaml"

    def test_an_existing_path_is_used_as_is(self) -> None:
        """A path to an existing file is returned unchanged."""
        path = DATA / "good" / "remove_step.yaml"
        assert resolve_scenario_path(path) == path

    def test_a_missing_scenario_lists_the_bundled_names(self) -> None:
        """A name that is neither a file nor bundled raises ScenarioError listing the names."""
        with pytest.raises(ScenarioError) as info:
            resolve_scenario_path("no/such/scenario.yaml")
        message = str(info.value)
        assert message.startswith("no/such/scenario.yaml: ")
        assert "fix:" in message
        for name in BUNDLED:
            assert name in message


class TestFromDict:
    """Scenario.from_dict validates parsed YAML the same way load_scenario does."""

    @pytest.mark.parametrize("data", [None, [], "steps", 3])
    def test_top_level_must_be_a_mapping(self, data: Any) -> None:
        """Anything but a mapping at the top level is a ScenarioError naming the source."""
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(data, source="here.yaml")
        assert str(info.value).startswith("here.yaml: the top level must be a mapping")

    def test_the_source_is_recorded(self) -> None:
        """A scenario remembers where it came from."""
        assert Scenario.from_dict(tiny(), source="here.yaml").source == "here.yaml"

    def test_plan_of_an_unknown_variant_names_the_valid_ones(self) -> None:
        """Asking for a variant that does not exist raises KeyError listing the variants."""
        variants = {"sequential": {"mode": "sequential"}, "fast": {"mode": "parallel"}}
        scenario = Scenario.from_dict(tiny(variants=variants))
        with pytest.raises(KeyError, match="valid: sequential, fast"):
            scenario.plan("turbo")

    def test_a_scenario_latency_profile_overrides_the_default(self) -> None:
        """models.<name>.latency changes the theory: 1000 ms TTFT + 100 × 10 ms = 2 s."""
        models = {
            "gpt-4o-mini": {
                "latency": {"ttft_ms": 1000, "prefill_ms_per_1k_input": 0, "itl_ms": 10}
            }
        }
        plan = Scenario.from_dict(tiny(models=models)).plan("sequential")
        assert plan.median_duration_s(plan.steps["think"]) == pytest.approx(2.0)
        assert plan.theoretical_makespan_s() == pytest.approx(1.0 + 2.0)

    def test_a_scenario_price_overrides_a_known_model(self) -> None:
        """models.<name>.price wins over genai-prices for a model genai-prices knows."""
        models = {"gpt-4o-mini": {"price": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}}
        plan = Scenario.from_dict(tiny(models=models)).plan("sequential")
        assert plan.expected_cost_usd("think") == pytest.approx((2000 * 1 + 101 * 2) / 1e6)


class TestBundledScenarios:
    """The shipped scenarios load, resolve and match the numbers their comments promise."""

    @pytest.mark.parametrize("name", BUNDLED)
    def test_every_variant_resolves(self, name: str) -> None:
        """Each variant of each bundled scenario has an order covering its steps and a makespan."""
        scenario = load_scenario(name)
        assert scenario.baseline_variant in scenario.variants
        for variant in scenario.variants:
            plan = scenario.plan(variant)
            assert sorted(plan.order) == sorted(plan.steps)
            position = {sid: i for i, sid in enumerate(plan.order)}
            for sid, deps in plan.deps.items():
                assert all(position[d] < position[sid] for d in deps)
            assert plan.theoretical_makespan_s() > 0
            assert plan.card_steps, "every bundled scenario shows the user something"

    def test_research_assistant_makespans(self) -> None:
        """research_assistant takes about 25 s sequential and about 12 s parallel."""
        scenario = load_scenario("research_assistant")
        sequential = scenario.plan("sequential").theoretical_makespan_s()
        parallel = scenario.plan("parallel").theoretical_makespan_s()
        assert sequential == pytest.approx(25, rel=0.10)
        assert parallel == pytest.approx(12, rel=0.10)

    def test_research_assistant_makespans_by_hand(self) -> None:
        """The theory equals TTFT + prefill + decode per step from the default profiles."""
        scenario = load_scenario("research_assistant")
        # gpt-4o-mini: 350 ms + 40 ms per 1k input + 9 ms per output token after the first;
        # gpt-4o: 500 ms + 70 ms per 1k input + 16 ms per token.
        plan = (350 + 40 * 1.2 + 9 * 219) / 1000
        web = 6.7
        docs_seq = (350 + 40 * 6.0 + 9 * 649) / 1000
        docs_par = (350 + 40 * 12.0 + 9 * 649) / 1000
        data_seq = (500 + 70 * 3.0 + 16 * 349) / 1000
        data_par = (500 + 70 * 9.0 + 16 * 349) / 1000
        draft = (350 + 40 * 6.0 + 9 * 259) / 1000
        assert scenario.plan("sequential").theoretical_makespan_s() == pytest.approx(
            plan + web + docs_seq + data_seq + draft
        )
        assert scenario.plan("parallel").theoretical_makespan_s() == pytest.approx(
            plan + max(web, docs_par, data_par) + draft
        )
        # Cap 2, longest remaining work first: data and web start together, docs takes
        # web's slot when it frees, and draft waits for docs.
        assert scenario.plan("parallel_capped").theoretical_makespan_s() == pytest.approx(
            plan + web + docs_par + draft
        )

    def test_research_assistant_sequential_cost_by_hand(self) -> None:
        """The sequential variant's expected cost is its tokens times the published prices."""
        plan = load_scenario("research_assistant").plan("sequential")
        mini_in, mini_out = published_usd_per_mtok("gpt-4o-mini")
        big_in, big_out = published_usd_per_mtok("gpt-4o")
        expected = (
            (1200 + 6000 + 6000) * mini_in
            + (220 + 650 + 260) * mini_out
            + 3000 * big_in
            + 350 * big_out
        ) / 1e6 + 0.005  # the web search's declared cost
        assert sum(plan.expected_cost_usd(s) for s in plan.steps) == pytest.approx(expected)

    def test_research_assistant_parallel_costs_more(self) -> None:
        """Re-sending 6,000 tokens to two branches costs exactly those tokens more per run."""
        scenario = load_scenario("research_assistant")
        seq = scenario.plan("sequential")
        par = scenario.plan("parallel")
        seq_cost = sum(seq.expected_cost_usd(s) for s in seq.steps)
        par_cost = sum(par.expected_cost_usd(s) for s in par.steps)
        assert par_cost > seq_cost
        mini_in, _ = published_usd_per_mtok("gpt-4o-mini")
        big_in, _ = published_usd_per_mtok("gpt-4o")
        assert par_cost - seq_cost == pytest.approx((6000 * mini_in + 6000 * big_in) / 1e6)

    def test_research_assistant_overrides_apply(self) -> None:
        """The parallel variant's overrides change search_docs' input tokens, nothing else."""
        scenario = load_scenario("research_assistant")
        seq = scenario.plan("sequential").steps["search_docs"]
        par = scenario.plan("parallel").steps["search_docs"]
        assert seq.input_tokens is not None and par.input_tokens is not None
        assert seq.input_tokens.median == 6000
        assert par.input_tokens.median == 12000
        assert par.output_tokens == seq.output_tokens
        assert par.depends_on == seq.depends_on == ("plan",)
        # The scenario's own steps are untouched by resolving a variant.
        assert scenario.steps[2].input_tokens == seq.input_tokens

    def test_support_agent_parallel_adds_a_speculative_step(self) -> None:
        """support_agent's parallel variant adds draft_refund and answer waits for it."""
        scenario = load_scenario("support_agent")
        seq = scenario.plan("sequential")
        par = scenario.plan("parallel")
        assert "draft_refund" not in seq.steps
        assert par.steps["draft_refund"].depends_on == ("classify",)
        assert "draft_refund" in par.deps["answer"]
        assert "draft_refund" not in seq.deps["answer"]
        assert par.order.index("draft_refund") < par.order.index("answer")

    def test_sequential_variants_run_one_step_at_a_time(self) -> None:
        """A sequential plan has cap 1; an uncapped parallel plan has no cap."""
        scenario = load_scenario("map_reduce_summarizer")
        assert scenario.plan("sequential").max_concurrency == 1
        assert scenario.plan("parallel").max_concurrency is None
        assert scenario.plan("parallel_cap4").max_concurrency == 4


class TestInstalledScenarios:
    def test_wheel_install_finds_them_under_share(self, tmp_path: Path, monkeypatch) -> None:
        """Without a checkout's scenarios/, the copy pip put in <prefix>/share is used."""
        site = tmp_path / "site-packages" / "harness"
        site.mkdir(parents=True)
        share = tmp_path / "prefix" / "share" / "parabench" / "scenarios"
        share.mkdir(parents=True)
        monkeypatch.setattr(scenario_module, "__file__", str(site / "scenario.py"))
        monkeypatch.setattr(scenario_module.sys, "prefix", str(tmp_path / "prefix"))
        assert scenario_module._bundled_dir() == share

    def test_checkout_wins(self) -> None:
        """In a source checkout the repository's scenarios/ is the bundled directory."""
        assert (
            scenario_module._bundled_dir()
            == Path(scenario_module.__file__).parent.parent / "scenarios"
        )


class TestPlan:
    """A Plan applies a variant's remove_steps, add_steps and overrides."""

    def test_remove_steps_drops_the_step_and_its_edge(self) -> None:
        """Removing check drops it from the plan and from answer's depends_on, keeping fetch."""
        scenario = load_scenario(DATA / "good" / "remove_step.yaml")
        full = scenario.plan("sequential")
        lean = scenario.plan("lean")
        assert list(full.steps) == ["fetch", "check", "answer"]
        assert list(lean.steps) == ["fetch", "answer"]
        assert lean.deps["answer"] == ("fetch",)
        assert lean.theoretical_makespan_s() == pytest.approx(1.0 + 0.5)
        assert full.theoretical_makespan_s() == pytest.approx(1.0 + 2.0 + 0.5)

    def test_card_steps_follow_the_order(self) -> None:
        """card_steps lists the steps marked card: true, in execution order."""
        plan = load_scenario("support_agent").plan("parallel")
        assert plan.card_steps == ["classify", "search_kb", "answer"]

    def test_override_of_depends_on_is_reported_where_it_was_written(self) -> None:
        """A bad dependency introduced by an override names the override, not the step."""
        variants = {
            "sequential": {"mode": "sequential"},
            "parallel": {"mode": "parallel", "overrides": {"think": {"depends_on": ["thunk"]}}},
        }
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(tiny(variants=variants), source="t.yaml")
        assert info.value.field == "variants.parallel.overrides.think.depends_on"


class TestDist:
    """Dist parses the YAML shapes, refuses negatives and samples non-negative values."""

    @pytest.mark.parametrize(
        ("raw", "kind", "median", "mean"),
        [
            (250, "fixed", 250.0, 250.0),
            ({"median": 100, "sigma": 0.5}, "lognormal", 100.0, 100.0 * math.exp(0.125)),
            ({"low": 600, "high": 1400}, "uniform", 1000.0, 1000.0),
            ({"mean": 5, "sd": 2}, "normal", 5.0, 5.0),
        ],
    )
    def test_yaml_shapes(self, raw: Any, kind: str, median: float, mean: float) -> None:
        """Each YAML shape parses to its kind with the right median and mean."""
        dist = Dist.model_validate(raw)
        assert dist.kind == kind
        assert dist.median == pytest.approx(median)
        assert dist.mean == pytest.approx(mean)

    @pytest.mark.parametrize(
        "raw",
        [
            -1,
            math.inf,
            math.nan,
            True,
            None,
            "fast",
            [1, 2],
            {"median": 100},
            {"median": 100, "sigma": -0.1},
            {"median": "x", "sigma": 0.1},
            {"low": 5, "high": 1},
            {"kind": "fixed", "a": -5},
            {"kind": "lognormal", "a": 100, "b": -1},
        ],
        ids=repr,
    )
    def test_invalid_values_are_refused(self, raw: Any) -> None:
        """Negative, non-finite, textual or malformed quantities do not validate."""
        with pytest.raises(ValueError):
            Dist.model_validate(raw)

    @pytest.mark.parametrize(
        "raw",
        [7, {"median": 50, "sigma": 1.5}, {"low": 0, "high": 3}, {"mean": 1, "sd": 5}],
        ids=repr,
    )
    def test_samples_are_never_negative(self, raw: Any) -> None:
        """No draw is below 0, even a normal whose sd dwarfs its mean."""
        dist = Dist.model_validate(raw)
        rng = np.random.default_rng(7)
        draws = np.array([dist.sample(rng) for _ in range(5000)])
        assert (draws >= 0).all()

    def test_fixed_always_returns_its_value(self) -> None:
        """A fixed quantity draws its value every time."""
        dist = Dist.model_validate(42)
        rng = np.random.default_rng(0)
        assert {dist.sample(rng) for _ in range(10)} == {42.0}

    def test_lognormal_median_and_mean_match_the_draws(self) -> None:
        """Over many draws the lognormal's median is within 3% of median, its mean of mean."""
        dist = Dist.model_validate({"median": 800, "sigma": 0.5})
        rng = np.random.default_rng(2024)
        draws = np.array([dist.sample(rng) for _ in range(20000)])
        assert float(np.median(draws)) == pytest.approx(800, rel=0.03)
        assert float(draws.mean()) == pytest.approx(800 * math.exp(0.5**2 / 2), rel=0.03)

    def test_uniform_stays_within_its_bounds(self) -> None:
        """Uniform draws lie in [low, high] and spread over the whole interval."""
        dist = Dist.model_validate({"low": 600, "high": 1400})
        rng = np.random.default_rng(3)
        draws = np.array([dist.sample(rng) for _ in range(5000)])
        assert draws.min() >= 600 and draws.max() <= 1400
        assert draws.min() < 650 and draws.max() > 1350

    def test_normal_is_clamped_at_zero(self) -> None:
        """A normal with mean 1 and sd 5 yields 0 for about Φ(-0.2) ≈ 42% of draws."""
        dist = Dist.model_validate({"mean": 1, "sd": 5})
        rng = np.random.default_rng(11)
        draws = np.array([dist.sample(rng) for _ in range(10000)])
        share_zero = float((draws == 0).mean())
        phi = 0.5 * (1 + math.erf(-0.2 / math.sqrt(2)))
        assert share_zero == pytest.approx(phi, abs=0.02)

    def test_same_seed_same_draws(self) -> None:
        """Two generators with the same seed give the same sequence of draws."""
        dist = Dist.model_validate({"median": 100, "sigma": 0.3})
        first, second = np.random.default_rng(5), np.random.default_rng(5)
        a = [dist.sample(first) for _ in range(3)]
        b = [dist.sample(second) for _ in range(3)]
        assert a == b
        assert len(set(a)) == 3


class TestOverridesAndProfiles:
    """Variant overrides are validated as whole steps; partial latency profiles merge."""

    @staticmethod
    def _scenario(override: dict[str, object]) -> dict[str, object]:
        return {
            "name": "ov",
            "steps": [
                {"id": "a", "kind": "llm", "input_tokens": 10, "output_tokens": 10},
                {"id": "b", "kind": "tool", "latency_ms": 10, "depends_on": ["a"]},
            ],
            "variants": {
                "sequential": {"mode": "sequential"},
                "parallel": {"mode": "parallel", "overrides": override},
            },
        }

    def test_latency_override_on_llm_step_is_refused(self) -> None:
        """An override giving an llm step latency_ms names the override and the field."""
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(self._scenario({"a": {"latency_ms": 99999}}), source="ov.yaml")
        assert info.value.field == "variants.parallel.overrides.a.latency_ms"
        assert "fix:" in info.value.message

    def test_model_override_on_tool_step_is_refused(self) -> None:
        """An override giving a tool step a model is refused rather than ignored."""
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(self._scenario({"b": {"model": "gpt-4o"}}), source="ov.yaml")
        assert info.value.field == "variants.parallel.overrides.b.model"

    def test_valid_override_applies(self) -> None:
        """A valid override changes the step in its variant only."""
        scenario = Scenario.from_dict(self._scenario({"b": {"latency_ms": 20}}), source="ov.yaml")
        assert scenario.plan("parallel").steps["b"].latency_ms.median == 20  # type: ignore[union-attr]
        assert scenario.plan("sequential").steps["b"].latency_ms.median == 10  # type: ignore[union-attr]

    def test_partial_latency_profile_keeps_builtin_fields(self) -> None:
        """Overriding one latency field keeps the model's other built-in values."""
        data = self._scenario({})
        data["models"] = {"gpt-4o": {"latency": {"itl_ms": 5}}}
        scenario = Scenario.from_dict(data, source="ov.yaml")
        builtin = DEFAULT_PROFILES["gpt-4o"]
        merged = scenario.latency_profile("gpt-4o")
        assert merged.itl_ms == 5
        assert merged.ttft_ms == builtin.ttft_ms
        assert merged.prefill_ms_per_1k_input == builtin.prefill_ms_per_1k_input
