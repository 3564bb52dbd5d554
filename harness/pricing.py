"""Prices of LLM calls: genai-prices' data, overridable per scenario.

An unpriced model is never a silent $0: ``price_for`` returns ``None`` and the
caller flags the cost as unknown (``parabench.cost.unpriced`` on spans, a
warning in the summary). Scenario validation refuses a model that has neither
a genai-prices entry nor a price under ``models:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PriceOverride", "cost_usd", "known_price", "price_for"]


class PriceOverride(BaseModel):
    """A scenario's own price for a model, in USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)


@dataclass(frozen=True, slots=True)
class _GenaiPrice:
    model: str

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return _genai_cost(self.model, input_tokens, output_tokens)


@lru_cache(maxsize=65536)
def _genai_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    from genai_prices import Usage, calc_price

    calc = calc_price(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens), model_ref=model
    )
    return float(calc.total_price)


@lru_cache(maxsize=1024)
def known_price(model: str) -> bool:
    """Whether genai-prices has a price for ``model``."""
    try:
        _genai_cost(model, 1000, 1000)
    except LookupError:
        return False
    return True


def price_for(
    model: str, overrides: dict[str, PriceOverride] | None = None
) -> PriceOverride | _GenaiPrice | None:
    """How to price ``model``: the scenario's override, genai-prices, or ``None``."""
    if overrides and model in overrides:
        return overrides[model]
    if known_price(model):
        return _GenaiPrice(model)
    return None


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    overrides: dict[str, PriceOverride] | None = None,
) -> float | None:
    """The cost of one call in USD, or ``None`` when the model has no price."""
    price = price_for(model, overrides)
    if price is None:
        return None
    if isinstance(price, PriceOverride):
        return (
            input_tokens * price.input_usd_per_mtok + output_tokens * price.output_usd_per_mtok
        ) / 1e6
    return price.cost(input_tokens, output_tokens)
