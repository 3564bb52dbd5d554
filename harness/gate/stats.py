"""The statistics behind a gate's decisions: intervals, tail tests, runs needed to decide.

* **Intervals** come from ``harness.analysis.compare.bootstrap_diff``
  (percentile method, fixed seed): of a metric over one sample, or of its
  change between two — the log of the ratio current / baseline for latency and
  cost, the plain difference for the error rate.
* **Tail tests** guard every failure of a percentile or a rate with an exact,
  distribution-free test, because a bootstrap interval of a p95 or p99 that
  rests on a handful of runs beyond it is too narrow (it cannot resample what
  it never saw):

  - against a limit, ``limit_tail_p``: the number of runs beyond the limit
    against the binomial share a metric exactly at the limit would put there
    (1 − q for a ceiling on the q-quantile, q for a floor, the limit itself
    for a rate);
  - against a baseline, ``shift_tail_p``: Fisher's exact test on how many
    runs of each side lie beyond the pooled q-quantile (for the median this is
    Mood's median test), or have an error.

  Under "no change" the two samples are exchangeable, so the test is exact
  whatever the distribution; with too few runs beyond the quantile it cannot
  reach significance, and the check stays open instead of failing.
* **Runs to decide**: an interval's half-width shrinks as 1/√n, so about
  ``n × (h / d)²`` runs would clear a threshold at distance ``d`` from the
  estimate (``n_to_decide``); a percentile also needs ``TAIL_RUNS`` runs
  beyond it before its tail test can decide (``runs_for_tail``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from harness.analysis.compare import bootstrap_diff, quantile
from harness.gate.metrics import Metric

__all__ = [
    "TAIL_RUNS",
    "change_interval",
    "interval",
    "limit_tail_p",
    "n_to_decide",
    "point",
    "runs_for_tail",
    "shift_tail_p",
]

Array = npt.NDArray[np.float64]
#: Runs beyond a percentile, over both samples, for its tail test to have a chance.
TAIL_RUNS = 10


def _statistic(metric: Metric) -> Any:
    return np.mean if metric.quantile is None else quantile(metric.quantile)


def _log_statistic(metric: Metric) -> Any:
    base = _statistic(metric)

    def statistic(x: Array, axis: int = -1) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(base(x, axis=axis))

    return statistic


def point(metric: Metric, values: Array) -> float:
    """The metric's point estimate over ``values``."""
    return float(_statistic(metric)(values, axis=-1))


def interval(metric: Metric, values: Array, confidence: float) -> tuple[float, float, float]:
    """Estimate and bootstrap CI of the metric over one sample.

    ``bootstrap_diff`` gives statistic(b) − statistic(a); with ``a`` a constant
    sample of zeros every resample of it is 0, so the difference is the
    one-sample bootstrap distribution of statistic(b).
    """
    ci = bootstrap_diff(
        np.zeros(2), values, _statistic(metric), confidence=confidence, method="percentile"
    )
    return ci.estimate, ci.low, ci.high


def change_interval(
    metric: Metric, base: Array, cur: Array, confidence: float
) -> tuple[float, float, float] | str:
    """Change and CI — log ratio, or points for the error rate — or why there is none."""
    if not metric.relative:
        ci = bootstrap_diff(base, cur, np.mean, confidence=confidence, method="percentile")
        return ci.estimate, ci.low, ci.high
    b, c = point(metric, base), point(metric, cur)
    if b <= 0 or c <= 0:
        return "0 in both" if b == c == 0 else f"a relative change from {b:g} to {c:g} is undefined"
    ci = bootstrap_diff(
        base, cur, _log_statistic(metric), confidence=confidence, method="percentile"
    )
    return ci.estimate, ci.low, ci.high


def limit_tail_p(metric: Metric, values: Array, limit: float) -> float | None:
    """Exact p-value that the metric is beyond ``limit`` (None for means: no tail test)."""
    if metric.column == "error":
        beyond, share = int(values.sum()), limit
    elif metric.quantile is None:
        return None
    elif metric.bound == "max":
        beyond, share = int((values > limit).sum()), 1.0 - metric.quantile
    else:
        beyond, share = int((values < limit).sum()), metric.quantile
    if share <= 0:
        return 0.0 if beyond else 1.0
    return float(stats.binomtest(beyond, values.size, share, alternative="greater").pvalue)


def shift_tail_p(metric: Metric, base: Array, cur: Array) -> float | None:
    """Exact p-value that ``cur`` has more runs beyond the pooled quantile (or more errors)."""
    if metric.column == "error":
        above_c, above_b = int(cur.sum()), int(base.sum())
    elif metric.quantile is None:
        return None
    else:
        threshold = np.quantile(np.concatenate([base, cur]), metric.quantile)
        above_c, above_b = int((cur > threshold).sum()), int((base > threshold).sum())
    table = [[above_c, cur.size - above_c], [above_b, base.size - above_b]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def runs_for_tail(metric: Metric, sides: int) -> int:
    """Runs per side that put ``TAIL_RUNS`` runs beyond the metric's percentile in all."""
    if metric.quantile is None:
        return 0
    share = min(metric.quantile, 1.0 - metric.quantile)
    return math.ceil(TAIL_RUNS / (sides * share))


def n_to_decide(n: int, low: float, high: float, estimate: float, threshold: float) -> int | None:
    """Runs per side that would narrow the interval enough to decide (half-width ∝ 1/√n)."""
    half = (high - low) / 2
    distance = abs(estimate - threshold)
    if not (math.isfinite(half) and half > 0 and distance > 0):
        return None
    return max(n + 1, math.ceil(n * (half / distance) ** 2))
