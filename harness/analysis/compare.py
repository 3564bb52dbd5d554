"""Variant comparison: how much sooner, and at what price, a variant answers than the baseline.

For each scenario the baseline is one variant (usually ``sequential``); every
other variant is compared with it. Each number is a difference *variant −
baseline*, so a negative latency delta means the variant is faster and a
positive cost delta means it costs more:

* ``delta_e2e_p50_ms`` / ``delta_e2e_p95_ms`` — change of the median and the
  95th percentile of end-to-end latency (run span start → end).
* ``delta_ttfc_p50_ms`` / ``delta_ttfc_p95_ms`` — the same for time to first card.
* ``delta_cost_usd_per_run`` — change of the mean cost of a run.
* ``saved_s_per_run`` — real seconds saved per run: (mean e2e of the baseline −
  mean e2e of the variant) / 1000 / time scale (runs recorded at time scale
  0.1 ran 10× faster than real; the value of time is per real second).
* ``usd_per_s_saved`` — dollars per second saved: ``delta_cost_usd_per_run /
  saved_s_per_run``. Negative means "free" (cheaper *and* faster); undefined
  (NaN, with the reason in ``note``) when the variant saves no time on average.
  ``worth_it`` compares it with the scenario's ``value_of_time_usd_per_s``.

Which runs count:

* latency (e2e, TTFC, seconds saved) uses **completed** runs only: a failed or
  cancelled run ends early, and its duration says how fast it failed, not how
  fast it answers;
* cost uses **all** runs: a run that failed half-way still paid for the steps it
  finished, and a variant that fails more often really costs more per run.

Every number carries a bootstrap confidence interval (``_ci_low`` / ``_ci_high``)
from ``scipy.stats.bootstrap`` over the two variants as independent samples
(``paired=False``), seeded so the same data gives the same interval. Quantiles
use the percentile method (the jackknife behind BCa is unreliable for
quantiles); means and the $/s ratio use BCa up to ``BCA_MAX_N`` runs per variant
and the percentile method above. BCa that cannot be computed (degenerate data)
falls back to the percentile interval of the same resamples, and samples whose
values are all identical give a zero-width interval without resampling.

Speed on big inputs: the work of a bootstrap grows with (runs × resamples), so
the number of resamples is lowered to keep about ``MAX_RESAMPLED_VALUES`` values
per statistic, never below ``MIN_RESAMPLES``; only beyond that (more than
150,000 runs in a comparison) are the runs randomly subsampled, which widens the
interval (conservative). ``ci_method`` says what was done.

Runs recorded at different time scales are never compared with each other: a
scenario is compared per ``time_scale``, and a variant whose baseline was not
measured at its time scale gets a row that says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

__all__ = [
    "BCA_MAX_N",
    "COMPARE_COLUMNS",
    "MAX_RESAMPLED_VALUES",
    "MIN_RESAMPLES",
    "DiffCI",
    "bootstrap_diff",
    "compare_variants",
    "mann_whitney_p",
    "quantile",
    "resolve_baseline",
]

BCA_MAX_N = 1000
MAX_RESAMPLED_VALUES = 30_000_000
MIN_RESAMPLES = 200
_BATCH_VALUES = 2_500_000  # values per vectorized batch: fits in cache-friendly chunks

Array = npt.NDArray[np.float64]
Statistic = Callable[..., Any]  # statistic(x, axis=-1) -> value(s) along the last axis
Method = Literal["auto", "BCa", "percentile"]

_METRICS = [
    "delta_e2e_p50_ms",
    "delta_e2e_p95_ms",
    "delta_ttfc_p50_ms",
    "delta_ttfc_p95_ms",
    "delta_cost_usd_per_run",
    "saved_s_per_run",
    "usd_per_s_saved",
]
COMPARE_COLUMNS = [
    "scenario",
    "time_scale",
    "baseline",
    "variant",
    "n_baseline",
    "n_variant",
    "n_baseline_completed",
    "n_variant_completed",
    *(f"{m}{s}" for m in _METRICS for s in ("", "_ci_low", "_ci_high")),
    "value_of_time_usd_per_s",
    "worth_it",
    "confidence",
    "ci_method",
    "note",
]


class DiffCI(NamedTuple):
    """A difference ``statistic(b) − statistic(a)`` and its confidence interval."""

    estimate: float
    low: float
    high: float


def quantile(q: float) -> Statistic:
    """A vectorized statistic: the ``q`` quantile along ``axis`` (for ``bootstrap_diff``)."""

    def statistic(x: Array, axis: int = -1) -> Any:
        return np.quantile(x, q, axis=axis)

    statistic.__name__ = f"quantile_{q:g}"
    return statistic


def _bootstrap(
    samples: Sequence[Array],
    statistic: Statistic,
    *,
    confidence: float,
    n_resamples: int,
    seed: int | Sequence[int],
    method: Method,
) -> tuple[Array, Array, Array, str]:
    """Point estimate(s) and CI of ``statistic(*samples)``; samples resampled independently."""
    samples = [np.asarray(s, dtype=float) for s in samples]
    estimate = np.atleast_1d(np.asarray(statistic(*samples, axis=-1), dtype=float))
    nan = np.full_like(estimate, np.nan)
    if any(s.size < 2 for s in samples):
        return estimate, nan, nan.copy(), "none (fewer than 2 runs)"
    if all(np.ptp(s) == 0 for s in samples):
        return estimate, estimate.copy(), estimate.copy(), "exact (identical values)"
    rng = np.random.default_rng(seed)
    total = sum(s.size for s in samples)
    resamples = min(n_resamples, max(MIN_RESAMPLES, MAX_RESAMPLED_VALUES // total))
    detail = "" if resamples == n_resamples else f" (reduced from {n_resamples} for speed)"
    if total * resamples > MAX_RESAMPLED_VALUES:
        keep = MAX_RESAMPLED_VALUES / (resamples * total)
        samples = [rng.choice(s, max(2, int(s.size * keep)), replace=False) for s in samples]
        total = sum(s.size for s in samples)
        detail += f", runs subsampled to {total}"
    largest = max(s.size for s in samples)
    chosen = (
        "BCa" if method == "BCa" or (method == "auto" and largest <= BCA_MAX_N) else "percentile"
    )
    kwargs: dict[str, Any] = {
        "vectorized": True,
        "paired": False,
        "confidence_level": confidence,
        "batch": max(1, _BATCH_VALUES // total),
    }
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        result = stats.bootstrap(
            tuple(samples), statistic, n_resamples=resamples, method=chosen, rng=rng, **kwargs
        )
        low = np.atleast_1d(np.asarray(result.confidence_interval.low, dtype=float))
        high = np.atleast_1d(np.asarray(result.confidence_interval.high, dtype=float))
        if chosen == "BCa" and (caught or np.isnan(low).any() or np.isnan(high).any()):
            # Degenerate for BCa: the percentile interval of the same resamples.
            redo = stats.bootstrap(
                tuple(samples),
                statistic,
                n_resamples=0,
                method="percentile",
                bootstrap_result=result,
                rng=rng,
                **kwargs,
            )
            low = np.atleast_1d(np.asarray(redo.confidence_interval.low, dtype=float))
            high = np.atleast_1d(np.asarray(redo.confidence_interval.high, dtype=float))
            chosen = "percentile (BCa degenerate)"
    return estimate, low, high, f"{chosen}, {resamples} resamples{detail}"


def bootstrap_diff(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    statistic: Statistic = np.median,
    *,
    confidence: float = 0.95,
    n_resamples: int = 4999,
    seed: int = 0,
    method: Method = "auto",
) -> DiffCI:
    """``statistic(b) − statistic(a)`` with a bootstrap CI; ``a`` and ``b`` independent samples.

    ``statistic(x, axis=-1)`` must be vectorized like ``np.median`` or
    ``quantile(0.95)``. ``method="auto"`` uses BCa up to ``BCA_MAX_N`` values per
    sample and the percentile method above; BCa that fails falls back to the
    percentile interval. NaN values are dropped; fewer than 2 values left in a
    sample: the CI is NaN. Use it as ``bootstrap_diff(baseline, candidate, np.median)``.
    """

    def diff(x: Array, y: Array, axis: int = -1) -> Any:
        return np.asarray(statistic(y, axis=axis)) - np.asarray(statistic(x, axis=axis))

    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    xa, xb = xa[~np.isnan(xa)], xb[~np.isnan(xb)]
    if xa.size == 0 or xb.size == 0:
        return DiffCI(float("nan"), float("nan"), float("nan"))
    est, low, high, _ = _bootstrap(
        [xa, xb],
        diff,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        method=method,
    )
    return DiffCI(float(est[0]), float(low[0]), float(high[0]))


def mann_whitney_p(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
) -> float | None:
    """Mann–Whitney U p-value that ``b`` differs from ``a`` (``"greater"``: ``b`` tends larger).

    ``None`` when either sample is empty; 1.0 when every value is the same.
    """
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    xa, xb = xa[~np.isnan(xa)], xb[~np.isnan(xb)]
    if xa.size == 0 or xb.size == 0:
        return None
    if np.ptp(np.concatenate([xa, xb])) == 0:
        return 1.0
    return float(stats.mannwhitneyu(xb, xa, alternative=alternative).pvalue)


def _quantile_pair(x: Array, y: Array, axis: int = -1) -> Any:
    return np.quantile(y, [0.5, 0.95], axis=axis) - np.quantile(x, [0.5, 0.95], axis=axis)


def _cost_and_time(base: pd.DataFrame, var: pd.DataFrame, time_scale: float) -> Statistic:
    """Δ mean cost (all runs), seconds saved and $/s (completed runs), resampled by run index.

    Seconds saved are real seconds (measured ÷ time scale): the value of time
    is per real second, and costs do not scale.
    """
    real = 1000.0 * (time_scale if time_scale > 0 else 1.0)
    cols = []
    for g in (base, var):
        done = (g.outcome == "completed").to_numpy()
        cols.append(
            (g.cost_usd.to_numpy(float), np.where(done, g.e2e_ms.to_numpy(float), 0.0), done)
        )

    def statistic(ib: Array, iv: Array, axis: int = -1) -> Any:
        means = []
        for idx, (cost, e2e, done) in zip((ib, iv), cols, strict=True):
            i = idx.astype(np.intp)
            count = np.maximum(done[i].sum(axis=axis), 1)
            means.append((cost[i].mean(axis=axis), e2e[i].sum(axis=axis) / count))
        (cost_b, e2e_b), (cost_v, e2e_v) = means
        delta_cost = cost_v - cost_b
        saved_s = (e2e_b - e2e_v) / real
        # A resample that saves no time would divide by 0: clip, so it lands in a far tail.
        per_s = delta_cost / np.where(saved_s > 0, saved_s, 1e-12)
        return np.stack([delta_cost, saved_s, per_s])

    return statistic


def resolve_baseline(scenario_runs: pd.DataFrame, given: str | None = None) -> str | None:
    """One scenario's baseline: ``given``, else the one its runs name, else ``sequential``."""
    if given:
        return given
    named = scenario_runs.baseline_variant.dropna().astype(str)
    named = named[named != ""]
    if not named.empty:
        return str(named.value_counts().index[0])
    return "sequential" if (scenario_runs.variant == "sequential").any() else None


def _empty_row(
    scenario: str, time_scale: float, baseline: str | None, variant: str
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COMPARE_COLUMNS, np.nan)
    row.update(scenario=scenario, time_scale=time_scale, baseline=baseline, variant=variant)
    row.update(worth_it=None, ci_method="", note="")
    return row


def _fill(row: dict[str, Any], names: Sequence[str], est: Array, low: Array, high: Array) -> None:
    for i, name in enumerate(names):
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = est[i], low[i], high[i]


def _compare_pair(
    row: dict[str, Any], base: pd.DataFrame, var: pd.DataFrame, seed: int, **opts: Any
) -> None:
    """Fill ``row`` with the deltas of ``var`` against ``base`` (one scenario, one time scale)."""
    notes: list[str] = []
    methods: set[str] = set()
    done_b, done_v = base[base.outcome == "completed"], var[var.outcome == "completed"]
    row.update(n_baseline_completed=len(done_b), n_variant_completed=len(done_v))
    for k, column in enumerate(("e2e", "ttfc")):
        xb = done_b[f"{column}_ms"].dropna().to_numpy(float)
        xv = done_v[f"{column}_ms"].dropna().to_numpy(float)
        if xb.size == 0 or xv.size == 0:
            which = "the baseline" if xb.size == 0 else "the variant"
            notes.append(f"no completed runs with {column}_ms in {which}")
            continue
        est, low, high, how = _bootstrap(
            [xb, xv], _quantile_pair, seed=[seed, k], method="percentile", **opts
        )
        _fill(row, [f"delta_{column}_p50_ms", f"delta_{column}_p95_ms"], est, low, high)
        methods.add(how)
    if done_b.empty or done_v.empty:
        row["delta_cost_usd_per_run"] = float(var.cost_usd.mean() - base.cost_usd.mean())
        notes.append("no seconds saved or $/s without completed runs in both variants")
    else:
        index_b = np.arange(len(base), dtype=float)
        index_v = np.arange(len(var), dtype=float)
        est, low, high, how = _bootstrap(
            [index_b, index_v],
            _cost_and_time(base, var, float(row["time_scale"])),
            seed=[seed, 2],
            method="auto",
            **opts,
        )
        methods.add(how)
        names = ["delta_cost_usd_per_run", "saved_s_per_run", "usd_per_s_saved"]
        _fill(row, names, est, low, high)
        delta_cost, saved_s, per_s = est
        if saved_s <= 0:
            for suffix in ("", "_ci_low", "_ci_high"):
                row[f"usd_per_s_saved{suffix}"] = np.nan
            notes.append(
                "$/s saved undefined: the variant saves no time on average "
                f"(mean e2e {-saved_s * 1000:+.1f} ms at real speed vs the baseline)"
            )
            # Dearer and no faster: not worth it; cheaper but no faster: a judgement call.
            row["worth_it"] = False if delta_cost > 0 else None
        else:
            if not low[1] > 0:
                row["usd_per_s_saved_ci_low"] = row["usd_per_s_saved_ci_high"] = np.nan
                notes.append("no CI for $/s saved: the CI of seconds saved includes 0")
            if delta_cost <= 0:
                notes.append("free: the variant is cheaper and faster")
            row["worth_it"] = bool(per_s < float(row["value_of_time_usd_per_s"]))
    row["ci_method"] = "; ".join(sorted(methods))
    row["note"] = "; ".join(notes)


def compare_variants(
    runs: pd.DataFrame,
    baseline_variant: str | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 4999,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (scenario, time scale, variant ≠ baseline): deltas vs the baseline with CIs.

    ``runs`` is ``runs_table(spans)``. The baseline of a scenario is
    ``baseline_variant`` if given, else the scenario's own ``baseline_variant``
    (recorded on its runs), else ``sequential`` if it was measured. A baseline
    that was not measured gives rows whose ``note`` says so (no exception).
    Columns: ``COMPARE_COLUMNS``; undefined numbers are NaN with the reason in
    ``note``. See the module docstring for which runs count and how the CIs are
    made.
    """
    rows: list[dict[str, Any]] = []
    for scenario, group in runs.groupby("scenario", sort=False):
        baseline = resolve_baseline(group, baseline_variant)
        variants = [v for v in dict.fromkeys(group.variant) if v != baseline]
        scales = sorted(set(group.time_scale.astype(float)))
        for time_scale in scales:
            at_scale = group[group.time_scale.astype(float) == time_scale]
            base = at_scale[at_scale.variant == baseline]
            for variant in [v for v in variants if (at_scale.variant == v).any()]:
                var = at_scale[at_scale.variant == variant]
                row = _empty_row(str(scenario), time_scale, baseline, variant)
                row["confidence"] = confidence
                row["value_of_time_usd_per_s"] = float(var.value_of_time_usd_per_s.iloc[0])
                row.update(n_variant=len(var), n_baseline=len(base))
                if baseline is None:
                    row["note"] = (
                        "no baseline: the runs name none and 'sequential' was not measured; "
                        "pass baseline_variant="
                    )
                elif not (group.variant == baseline).any():
                    row["note"] = f"baseline '{baseline}' has no runs in scenario '{scenario}'"
                elif base.empty:
                    other = sorted(set(group[group.variant == baseline].time_scale.astype(float)))
                    row["note"] = (
                        f"not compared: the variant was recorded at time_scale {time_scale:g}, "
                        f"the baseline '{baseline}' only at "
                        + ", ".join(f"{s:g}" for s in other)
                        + "; compare runs recorded at the same time scale"
                    )
                else:
                    _compare_pair(
                        row,
                        base.reset_index(drop=True),
                        var.reset_index(drop=True),
                        seed,
                        confidence=confidence,
                        n_resamples=n_resamples,
                    )
                rows.append(row)
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)
