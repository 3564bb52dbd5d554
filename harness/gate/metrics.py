"""The metrics a budget can limit or guard against regression, and how each is measured.

Every metric is a statistic of one per-run value over one variant's runs:

=========================  ===============  =========  ==================================
metric                     per-run value    statistic  runs counted
=========================  ===============  =========  ==================================
``e2e_p50/p95/p99``        ``e2e_ms``       quantile   completed
``ttfc_p50/p95``           ``ttfc_ms``      quantile   completed, with a card
``speed_index_p50/p95``    speed index      quantile   completed, with a card
``cost_usd_per_run``       ``cost_usd``     mean       all (a failed run still paid)
``error_rate``             not completed    mean       all (rejected and errored too)
``executor_efficiency``    efficiency       median     completed (server spans only)
=========================  ===============  =========  ==================================

Latencies are compared at real speed: measured ÷ the run's time scale.
Quantiles are numpy's default (linear interpolation) over the raw values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LIMIT_METRICS", "METRICS", "REGRESSION_METRICS", "Metric", "Unit"]

Unit = Literal["ms", "usd", "fraction", "ratio"]


@dataclass(frozen=True)
class Metric:
    """One statistic of one per-run value (see the module docstring)."""

    name: str
    column: str
    quantile: float | None
    unit: Unit
    label: str

    @property
    def scaled(self) -> bool:
        """Whether it is a duration, divided by the time scale to compare at real speed."""
        return self.unit == "ms"

    @property
    def bound(self) -> Literal["max", "min"]:
        """``max``: higher is worse (a ceiling); ``min``: lower is worse (a floor)."""
        return "min" if self.column == "efficiency" else "max"

    @property
    def limit_key(self) -> str:
        """Its key under a variant's ``limits:``."""
        if self.bound == "min":
            return f"{self.name}_min"
        return f"{self.name}_ms" if self.unit == "ms" else self.name

    @property
    def relative(self) -> bool:
        """Regression tolerance as a relative change (else in absolute points: error rate)."""
        return self.column != "error"

    @property
    def completed_only(self) -> bool:
        return self.column not in ("cost_usd", "error")


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("e2e_p50", "e2e_ms", 0.5, "ms", "e2e p50"),
        Metric("e2e_p95", "e2e_ms", 0.95, "ms", "e2e p95"),
        Metric("e2e_p99", "e2e_ms", 0.99, "ms", "e2e p99"),
        Metric("ttfc_p50", "ttfc_ms", 0.5, "ms", "TTFC p50"),
        Metric("ttfc_p95", "ttfc_ms", 0.95, "ms", "TTFC p95"),
        Metric("speed_index_p50", "speed_index_ms", 0.5, "ms", "speed index p50"),
        Metric("speed_index_p95", "speed_index_ms", 0.95, "ms", "speed index p95"),
        Metric("cost_usd_per_run", "cost_usd", None, "usd", "cost per run"),
        Metric("error_rate", "error", None, "fraction", "error rate"),
        Metric("executor_efficiency_p50", "efficiency", 0.5, "ratio", "executor efficiency p50"),
    )
}
#: Metrics by their key under ``limits:``.
LIMIT_METRICS: dict[str, Metric] = {m.limit_key: m for m in METRICS.values()}
#: Metrics by their key under ``regression:`` (efficiency has a floor, not a regression check).
REGRESSION_METRICS: dict[str, Metric] = {
    m.name: m for m in METRICS.values() if m.column != "efficiency"
}
