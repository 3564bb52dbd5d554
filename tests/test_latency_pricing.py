"""Tests of harness.latency (the simulated timing model) and harness.pricing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from genai_prices import Usage, calc_price

from harness.latency import (
    DEFAULT_PROFILES,
    GENERIC_PROFILE,
    LatencyProfile,
    profile_for,
    rng_for,
)
from harness.pricing import PriceOverride, cost_usd, known_price, price_for

UNKNOWN_MODEL = "acme-brain-9000"


def published_usd_per_mtok(model: str) -> tuple[float, float]:
    """Input and output price per million tokens, straight from genai-prices."""
    one_m_in = calc_price(Usage(input_tokens=1_000_000, output_tokens=0), model_ref=model)
    one_m_out = calc_price(Usage(input_tokens=0, output_tokens=1_000_000), model_ref=model)
    return float(one_m_in.total_price), float(one_m_out.total_price)


class TestRngFor:
    """rng_for seeds a draw by what it is for, never by call order."""

    def test_same_key_same_draws(self) -> None:
        """The same (seed, run, step, attempt) gives the same draws."""
        a = rng_for(7, 3, "search_web", 1).random(4)
        b = rng_for(7, 3, "search_web", 1).random(4)
        assert a.tolist() == b.tolist()

    @pytest.mark.parametrize(
        "other",
        [
            (7, 3, "search_web", 2),
            (7, 4, "search_web", 1),
            (8, 3, "search_web", 1),
            (7, 3, "search_docs", 1),
        ],
        ids=["attempt", "run", "seed", "step"],
    )
    def test_any_part_of_the_key_changes_the_draws(self, other: tuple[int, int, str, int]) -> None:
        """Changing the attempt, run, seed or step gives a different draw."""
        assert rng_for(7, 3, "search_web", 1).random() != rng_for(*other).random()

    def test_order_of_calls_does_not_matter(self) -> None:
        """Drawing for one step first does not change another step's draw."""
        before = rng_for(0, 0, "b").random()
        rng_for(0, 0, "a").random(100)
        assert rng_for(0, 0, "b").random() == before

    def test_large_and_negative_seeds_are_accepted(self) -> None:
        """Seeds beyond 32 bits and negative ones still give a generator."""
        assert 0 <= rng_for(2**40 + 5, -1, "x").random() < 1


class TestLatencyProfile:
    """LatencyProfile: the median duration formula, sampling and slowdown under load."""

    def test_median_duration_by_hand(self) -> None:
        """500 ms TTFT + 80 ms × 2 (2k input) + 12 ms × 100 (101 output tokens) = 1.86 s."""
        profile = LatencyProfile(ttft_ms=500, prefill_ms_per_1k_input=80, itl_ms=12)
        assert profile.median_duration_s(2000, 101) == pytest.approx(1.86)

    @pytest.mark.parametrize("output_tokens", [0, 1])
    def test_no_decode_time_without_a_second_token(self, output_tokens: int) -> None:
        """With 0 or 1 output tokens the call lasts exactly its time to first token."""
        profile = LatencyProfile(ttft_ms=400, prefill_ms_per_1k_input=0, itl_ms=50)
        assert profile.median_duration_s(1000, output_tokens) == pytest.approx(0.4)

    def test_sample_without_jitter_is_the_median(self) -> None:
        """With no jitter, tail or load a sample equals the formula, split into TTFT and decode."""
        profile = LatencyProfile(
            ttft_ms=300, prefill_ms_per_1k_input=100, itl_ms=10, jitter_sigma=0
        )
        timing = profile.sample(np.random.default_rng(0), 1500, 21)
        assert timing.ttft_s == pytest.approx(0.45)
        assert timing.itl_s == pytest.approx(0.01)
        assert timing.total_s == pytest.approx(0.45 + 20 * 0.01)
        assert timing.total_s == pytest.approx(profile.median_duration_s(1500, 21))

    def test_tail_multiplies_the_whole_call(self) -> None:
        """A request in the slow tail takes tail_factor times as long."""
        base = LatencyProfile(ttft_ms=300, itl_ms=10, jitter_sigma=0)
        tail = base.model_copy(update={"tail_prob": 1.0, "tail_factor": 4.0})
        rng = np.random.default_rng(0)
        assert tail.sample(rng, 1000, 11).total_s == pytest.approx(
            4 * base.sample(rng, 1000, 11).total_s
        )

    def test_jitter_has_median_one(self) -> None:
        """Jittered samples scatter around the no-jitter duration with a median close to it."""
        profile = LatencyProfile(ttft_ms=300, itl_ms=10, jitter_sigma=0.3)
        rng = np.random.default_rng(1)
        totals = [profile.sample(rng, 1000, 51).total_s for _ in range(4000)]
        assert float(np.median(totals)) == pytest.approx(
            profile.median_duration_s(1000, 51), rel=0.03
        )
        assert min(totals) < profile.median_duration_s(1000, 51) < max(totals)

    @pytest.mark.parametrize("in_flight", [0, 1, 3, 5])
    def test_no_slowdown_up_to_half_capacity(self, in_flight: int) -> None:
        """At or below half of the capacity latency is unchanged."""
        assert LatencyProfile(capacity=10).slowdown(in_flight) == 1.0

    def test_slowdown_doubles_at_capacity_and_keeps_growing(self) -> None:
        """Above half capacity the factor grows, reaches 2 at capacity, and grows beyond."""
        profile = LatencyProfile(capacity=10)
        factors = [profile.slowdown(n) for n in range(5, 21)]
        assert all(b > a for a, b in itertools.pairwise(factors))
        assert profile.slowdown(10) == pytest.approx(2.0)
        # 1 + 4 × (0.75 − 0.5)² at 7.5 of 10, as the docstring's quadratic says.
        assert LatencyProfile(capacity=4).slowdown(3) == pytest.approx(1.25)

    def test_unbounded_capacity_never_slows(self) -> None:
        """Without a capacity any load leaves latency unchanged."""
        assert LatencyProfile().slowdown(10_000) == 1.0

    def test_load_slows_a_sample(self) -> None:
        """A sample at capacity takes twice as long as the same draw unloaded."""
        profile = LatencyProfile(ttft_ms=300, itl_ms=10, jitter_sigma=0.2, capacity=4)
        idle = profile.sample(rng_for(1, 0, "x"), 1000, 11).total_s
        loaded = profile.sample(rng_for(1, 0, "x"), 1000, 11, in_flight=4).total_s
        assert loaded == pytest.approx(2 * idle)

    def test_negative_settings_are_refused(self) -> None:
        """A profile with a negative time does not validate."""
        with pytest.raises(ValueError):
            LatencyProfile(ttft_ms=-1)


class TestProfileFor:
    """profile_for: scenario override, exact name, longest prefix, then the generic profile."""

    def test_exact_name(self) -> None:
        """A model listed by name gets its own profile."""
        assert profile_for("gpt-4o") is DEFAULT_PROFILES["gpt-4o"]
        assert profile_for("gpt-4o-mini") is DEFAULT_PROFILES["gpt-4o-mini"]

    def test_longest_prefix(self) -> None:
        """A dated snapshot gets the profile of the longest listed name it starts with."""
        assert profile_for("gpt-4o-mini-2024-07-18") is DEFAULT_PROFILES["gpt-4o-mini"]
        assert profile_for("gpt-4o-2024-08-06") is DEFAULT_PROFILES["gpt-4o"]

    def test_generic_fallback(self) -> None:
        """An unlisted model gets the generic profile."""
        assert profile_for(UNKNOWN_MODEL) is GENERIC_PROFILE
        assert profile_for(UNKNOWN_MODEL) == LatencyProfile()

    def test_scenario_override_wins(self) -> None:
        """A scenario's profile for a model beats the built-in one."""
        mine = LatencyProfile(ttft_ms=1, itl_ms=1)
        assert profile_for("gpt-4o", {"gpt-4o": mine}) is mine
        assert profile_for("gpt-4o-mini", {"gpt-4o": mine}) is DEFAULT_PROFILES["gpt-4o-mini"]


class TestPricing:
    """cost_usd prices calls from genai-prices unless the scenario overrides the price."""

    def test_gpt_4o_mini_at_the_published_price(self) -> None:
        """gpt-4o-mini costs its tokens times genai-prices' per-token prices."""
        usd_in, usd_out = published_usd_per_mtok("gpt-4o-mini")
        assert usd_in > 0 and usd_out > 0
        expected = (1234 * usd_in + 567 * usd_out) / 1e6
        assert cost_usd("gpt-4o-mini", 1234, 567) == pytest.approx(expected)

    def test_cost_is_linear_in_tokens(self) -> None:
        """Ten times the tokens cost ten times as much."""
        one = cost_usd("gpt-4o", 300, 40)
        ten = cost_usd("gpt-4o", 3000, 400)
        assert one is not None and ten is not None
        assert ten == pytest.approx(10 * one)

    def test_override_wins(self) -> None:
        """A scenario price beats genai-prices for the same model."""
        override = {"gpt-4o-mini": PriceOverride(input_usd_per_mtok=2.0, output_usd_per_mtok=8.0)}
        assert cost_usd("gpt-4o-mini", 500_000, 250_000, override) == pytest.approx(1.0 + 2.0)
        assert isinstance(price_for("gpt-4o-mini", override), PriceOverride)

    def test_override_prices_an_unknown_model(self) -> None:
        """A model genai-prices does not know is priced by the scenario's override."""
        override = {UNKNOWN_MODEL: PriceOverride(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)}
        assert cost_usd(UNKNOWN_MODEL, 1_000_000, 100_000, override) == pytest.approx(4.5)

    def test_unknown_model_has_no_price(self) -> None:
        """An unknown model is not silently free: cost is None and known_price is False."""
        assert known_price(UNKNOWN_MODEL) is False
        assert price_for(UNKNOWN_MODEL) is None
        assert cost_usd(UNKNOWN_MODEL, 1000, 1000) is None

    def test_known_models(self) -> None:
        """The bundled scenarios' models are known to genai-prices."""
        assert known_price("gpt-4o-mini") and known_price("gpt-4o")

    def test_negative_override_is_refused(self) -> None:
        """A negative price does not validate."""
        with pytest.raises(ValueError):
            PriceOverride(input_usd_per_mtok=-1, output_usd_per_mtok=1)
