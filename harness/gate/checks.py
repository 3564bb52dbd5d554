"""Gate decisions: absolute limits and baseline regressions, judged on raw per-run values.

Each check ends ``pass``, ``fail``, ``warn`` or ``inconclusive``; only a
``fail`` fails the gate. The rules (docs/gates.md has the reasoning; the
statistics are in ``harness.gate.stats``):

* **Limit** (``limits:``): the metric at real speed (latencies ÷ time scale),
  with a bootstrap confidence interval. A ceiling passes when the estimate and
  the interval's upper end are at or below it; fails when the estimate and the
  interval's lower end are above it *and*, for a percentile or a rate, the
  runs beyond the limit are too many to be chance (exact binomial test); else
  ``warn``: too close to call, so the gate does not flap. A floor
  (``executor_efficiency_p50_min``) mirrors this.
* **Regression** (``regression:``, with a baseline): the change current vs
  baseline with a bootstrap interval — relative for latency and cost, in
  absolute points for the error rate. ``fail`` when the change is significant
  (the interval's lower end is above 0 and, for a percentile or a rate,
  Fisher's exact test on the runs beyond it agrees) *and* its estimate exceeds
  the tolerance; ``pass`` when the interval's upper end is within the
  tolerance; otherwise ``inconclusive``, with the runs that would decide it.
* **Branch** (``branch_usd_per_ms_saved``): the branch's cost per ms saved
  (Σ extra cost / Σ ms saved over the runs) against the limit; a point
  comparison, since the analysis gives no interval for it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from harness.errors import ConfigError
from harness.gate.budget import Budget
from harness.gate.metrics import LIMIT_METRICS, REGRESSION_METRICS, Metric
from harness.gate.rundata import RunData, VariantRuns
from harness.gate.stats import (
    change_interval,
    interval,
    limit_tail_p,
    n_to_decide,
    point,
    runs_for_tail,
    shift_tail_p,
)

__all__ = [
    "Check",
    "GateResult",
    "Status",
    "branch_check",
    "limit_check",
    "point_regression_check",
    "regression_check",
    "run_gate",
]

Status = Literal["pass", "fail", "warn", "inconclusive"]
STATUSES: tuple[Status, ...] = ("fail", "warn", "inconclusive", "pass")


@dataclass
class Check:
    """One check of one variant: what was measured, against what, and the verdict.

    ``measured`` and ``ci`` are in ``unit``: ``ms`` (real speed), ``usd``,
    ``fraction``, ``ratio``, ``relative`` (0.05 = +5%), ``points`` (absolute
    change of a fraction) or ``usd_per_ms``. ``threshold`` is the limit or
    tolerance; ``bound`` says whether it is a ceiling (``max``) or a floor.
    """

    variant: str
    name: str
    kind: Literal["limit", "regression", "branch", "data"]
    status: Status
    measured: float | None = None
    threshold: float | None = None
    unit: str = ""
    bound: Literal["max", "min"] = "max"
    ci: tuple[float, float] | None = None
    n: int | None = None
    n_baseline: int | None = None
    n_needed: int | None = None
    detail: str = ""


@dataclass
class GateResult:
    """Every check of one gate, and what was compared."""

    budget: Budget
    current: RunData
    baseline: RunData | None
    checks: list[Check]
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> Literal["pass", "fail"]:
        return "fail" if any(c.status == "fail" for c in self.checks) else "pass"

    @property
    def exit_code(self) -> int:
        """0 pass (warnings and inconclusive checks allowed), 1 any failure."""
        return 1 if self.status == "fail" else 0

    def counts(self) -> dict[str, int]:
        seen = Counter(c.status for c in self.checks)
        return {s: seen.get(s, 0) for s in STATUSES}


def _too_few(check: Check, count: int, need: int, what: str) -> Check:
    check.status = "inconclusive"
    check.n = count
    check.n_needed = need
    check.detail = f"only {count} {what} (min_samples {need})"
    return check


def _what(metric: Metric) -> str:
    if metric.column == "efficiency":
        return "completed runs with spans"
    if metric.completed_only and metric.column != "e2e_ms":
        return "completed runs with a card"
    return "completed runs" if metric.completed_only else "runs"


def limit_check(
    variant: str, metric: Metric, limit: float, runs: VariantRuns, time_scale: float, budget: Budget
) -> Check:
    """An absolute limit (see the module docstring)."""
    check = Check(variant, metric.limit_key, "limit", "pass", threshold=limit, unit=metric.unit)
    check.bound = metric.bound
    if metric.column == "efficiency" and runs.efficiency is None:
        check.status = "inconclusive"
        check.detail = "not measured: executor efficiency needs the run dir's spans.jsonl"
        return check
    values = runs.values(metric)
    if metric.scaled:
        values = values / time_scale
    if values.size < budget.min_samples:
        return _too_few(check, int(values.size), budget.min_samples, _what(metric))
    est, low, high = interval(metric, values, budget.confidence)
    check.measured, check.ci, check.n = est, (low, high), int(values.size)
    sign = 1.0 if metric.bound == "max" else -1.0  # a floor is a ceiling of the negation
    e, lim = sign * est, sign * limit
    lo, hi = sorted((sign * low, sign * high))
    if e <= lim and hi <= lim:
        check.status = "pass"
        return check
    check.status = "warn"
    check.n_needed = n_to_decide(check.n, low, high, est, limit)
    check.detail = "close to the limit: the interval straddles it"
    if e > lim and lo > lim:
        p = limit_tail_p(metric, values, limit)
        if p is None or p < 1 - budget.confidence:
            check.status, check.n_needed = "fail", None
            check.detail = "beyond the limit, interval included"
        else:
            check.n_needed = max(check.n + 1, runs_for_tail(metric, 1))
            check.detail = f"beyond the limit, but too few runs beyond it to be sure (p = {p:.2f})"
    return check


def regression_check(
    variant: str,
    metric: Metric,
    tolerance: float,
    cur: VariantRuns,
    base: VariantRuns,
    budget: Budget,
) -> Check:
    """A regression against raw baseline values (see the module docstring)."""
    unit = "relative" if metric.relative else "points"
    check = Check(variant, metric.name, "regression", "pass", threshold=tolerance, unit=unit)
    xc, xb = cur.values(metric), base.values(metric)
    check.n, check.n_baseline = int(xc.size), int(xb.size)
    if min(xc.size, xb.size) < budget.min_samples:
        side = "current" if xc.size < xb.size else "baseline"
        what = f"{_what(metric)} in the {side}"
        return _too_few(check, int(min(xc.size, xb.size)), budget.min_samples, what)
    found = change_interval(metric, xb, xc, budget.confidence)
    if isinstance(found, str):
        check.status = "pass" if found == "0 in both" else "inconclusive"
        check.detail = found
        return check
    est, low, high = found
    threshold = math.log1p(tolerance) if metric.relative else tolerance
    show = math.expm1 if metric.relative else float
    check.measured, check.ci = show(est), (show(low), show(high))
    n = min(check.n, check.n_baseline)
    check.status = "inconclusive"
    if high <= threshold:
        check.status = "pass"
    elif est <= threshold:
        check.n_needed = n_to_decide(n, low, high, est, threshold)
        check.detail = "within the tolerance, but the interval reaches beyond it"
    elif low <= 0:
        check.n_needed = n_to_decide(n, low, high, est, 0.0)
        check.detail = "beyond the tolerance but not significant"
    else:
        p = shift_tail_p(metric, xb, xc)
        if p is None or p < 1 - budget.confidence:
            check.status = "fail"
            check.detail = "significant and beyond the tolerance"
        else:
            check.n_needed = max(n + 1, runs_for_tail(metric, 2))
            check.detail = (
                f"beyond the tolerance, but too few runs beyond the {metric.label} "
                f"to be sure (tail test p = {p:.2f})"
            )
    return check


def point_regression_check(
    variant: str, metric: Metric, tolerance: float, cur: VariantRuns, base_point: float | None
) -> Check:
    """A regression against a summary.json's point estimate: ``pass`` or ``warn``, never fail."""
    unit = "relative" if metric.relative else "points"
    check = Check(variant, metric.name, "regression", "pass", threshold=tolerance, unit=unit)
    values = cur.values(metric)
    check.n = int(values.size)
    if base_point is None or values.size == 0:
        check.status = "inconclusive"
        check.detail = "the baseline summary has no figure for it" if values.size else "no values"
        return check
    now = point(metric, values)
    if metric.relative:
        if base_point <= 0:
            check.status = "inconclusive"
            check.detail = f"a relative change from {base_point:g} is undefined"
            return check
        check.measured = now / base_point - 1.0
    else:
        check.measured = now - base_point
    over = check.measured > tolerance
    check.status = "warn" if over else "pass"
    check.detail = "point comparison only (summary.json has no raw samples)"
    return check


def branch_check(variant: str, step: str, limit: float, runs: VariantRuns) -> Check:
    """A branch's cost per ms saved against its limit (point estimate)."""
    check = Check(variant, f"branch {step}", "branch", "pass", threshold=limit, unit="usd_per_ms")
    check.n = runs.runs
    figure = (runs.branches or {}).get(step)
    if runs.branches is None:
        check.status = "inconclusive"
        check.detail = "not measured: branch figures need the run dir's spans.jsonl"
    elif figure is None:
        check.status = "inconclusive"
        check.detail = "no figures for this branch in the data (no completed parallel runs?)"
    elif figure.verdict == "free":
        check.measured = figure.usd_per_ms_saved
        check.detail = "free: no extra cost"
    elif figure.verdict == "unknown":
        check.status = "inconclusive"
        check.detail = figure.reason
    elif figure.usd_per_ms_saved is None:
        check.status = "fail"
        check.detail = figure.reason or "extra cost, no time saved"
    else:
        check.measured = figure.usd_per_ms_saved
        check.status = "pass" if figure.usd_per_ms_saved <= limit else "fail"
    return check


def _enforce_min_samples(budget: Budget, data: RunData, which: str) -> None:
    short = [
        f"'{name}' has {data.variants[name].runs}"
        for name in budget.variants
        if name in data.variants and data.variants[name].runs < budget.min_samples
    ]
    if short:
        raise ConfigError(
            f"too few runs to gate ({which}): variant {'; '.join(short)} runs; the budget asks "
            f"for at least {budget.min_samples} per variant (min_samples in {budget.source})",
            where=data.path,
            fix=f"collect at least {budget.min_samples} runs of each variant (parabench run -n, "
            "or a longer parabench load --duration), or lower min_samples in the budget",
        )


def _check_comparable(current: RunData, baseline: RunData) -> None:
    if current.side != baseline.side:
        raise ConfigError(
            f"the current runs are {current.side}-side, the baseline {baseline.side}-side",
            where=baseline.path,
            fix="compare like with like: a load against a load's baseline, a `parabench run` "
            "against a run's, or pick one with --side",
        )
    if not math.isclose(current.time_scale, baseline.time_scale):
        raise ConfigError(
            f"the current runs ran at time scale {current.time_scale:g}, "
            f"the baseline at {baseline.time_scale:g}",
            where=baseline.path,
            fix="record the baseline at the same time scale as the runs it judges",
        )


def _variant_checks(
    budget: Budget, name: str, cur: VariantRuns, current: RunData, baseline: RunData | None
) -> list[Check]:
    spec = budget.variants[name]
    checks = [
        limit_check(name, LIMIT_METRICS[key], limit, cur, current.time_scale, budget)
        for key, limit in spec.limits.metric_limits().items()
    ]
    checks += [
        branch_check(name, step, limit, cur)
        for step, limit in spec.limits.branch_usd_per_ms_saved.items()
    ]
    tolerances = spec.regression.tolerances()
    if baseline is None or not tolerances:
        return checks
    if name not in baseline.variant_names:
        detail = f"the baseline has no runs of '{name}': regressions unchecked"
        checks.append(Check(name, "baseline", "data", "warn", detail=detail))
        return checks
    for key, tolerance in tolerances.items():
        metric = REGRESSION_METRICS[key]
        if baseline.raw:
            base = baseline.variants[name]
            checks.append(regression_check(name, metric, tolerance, cur, base, budget))
        else:
            point = baseline.points[name].get(key)
            checks.append(point_regression_check(name, metric, tolerance, cur, point))
    return checks


def run_gate(budget: Budget, current: RunData, baseline: RunData | None = None) -> GateResult:
    """Judge ``current`` (and its change from ``baseline``) against ``budget``.

    Raises ``ConfigError`` (exit 2) when a variant has fewer runs than
    ``min_samples``, or when current and baseline differ in side or time scale.
    """
    _enforce_min_samples(budget, current, "current")
    notes: list[str] = []
    if baseline is not None:
        _check_comparable(current, baseline)
        if baseline.raw:
            _enforce_min_samples(budget, baseline, "baseline")
        else:
            notes.append(
                "the baseline is a summary.json without raw samples: regression checks are "
                "point comparisons, which can warn but never fail"
            )
    elif any(spec.regression.tolerances() for spec in budget.variants.values()):
        notes.append("no --baseline: regression tolerances were not checked")
    checks: list[Check] = []
    for name in budget.variants:
        cur = current.variants.get(name)
        if cur is None:
            measured = ", ".join(current.variants) or "none"
            detail = f"no runs of '{name}' in the current data (variants measured: {measured})"
            checks.append(Check(name, "runs", "data", "warn", detail=detail))
            continue
        checks += _variant_checks(budget, name, cur, current, baseline)
    return GateResult(budget, current, baseline, checks, notes)
