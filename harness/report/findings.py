"""The report's numbers in the units a reader wants, and which variant it recommends.

Every latency here is **at real speed**: measured ÷ the run's time scale
(``parabench run --time-scale 0.1`` runs ten times faster than real; the
value of time is per real second). Each variant's latency comes from the
client (load samples: what a user waited for) when there are samples for it,
else from the server (run spans); ``source`` says which.

The recommendation compares every variant with its scenario's baseline on
the p50 e2e and the mean cost per run: a variant is *worth it* when it is
cheaper, or when its extra cost per second saved is below the scenario's
``value_of_time_usd_per_s``. The fastest variant worth it is the one to ship;
when none is, the baseline stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from harness.report.build import ReportData

__all__ = [
    "FOREIGN",
    "FOREIGN_NAME",
    "Choice",
    "VariantFigures",
    "choices",
    "fmt_s",
    "fmt_usd",
    "foreign_figures",
    "variant_figures",
    "versus",
]

FOREIGN = "foreign"  # the ``mode`` of the pseudo-variant that stands for foreign traces
FOREIGN_NAME = "(foreign traces)"


@dataclass(frozen=True)
class VariantFigures:
    """One variant's headline numbers (ms at real speed, USD per run)."""

    scenario: str
    variant: str
    mode: str | None
    source: str  # "client" (load samples) or "server" (run spans)
    time_scale: float | None  # None: no spans, so unknown (figures as measured)
    runs: int
    error_rate: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    e2e_p99_ms: float | None
    ttfc_p50_ms: float | None
    ttfc_p95_ms: float | None
    si_p50_ms: float | None
    si_p95_ms: float | None
    cost_usd: float | None
    efficiency: float | None
    value_of_time_usd_per_s: float | None
    baseline_variant: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.scenario, self.variant)

    @property
    def scale(self) -> float:
        return self.time_scale if self.time_scale and self.time_scale > 0 else 1.0


def _div(value: Any, scale: float) -> float | None:
    return None if value is None else float(value) / scale


def variant_figures(summary: dict[str, Any]) -> list[VariantFigures]:
    """Headline figures of every entry of a summary.json document."""
    out = []
    for entry in summary["variants"]:
        client = entry.get("client")
        side = client if entry["latency_source"] == "client" and client else entry
        scale = entry["time_scale"] if entry["time_scale"] else 1.0
        cost = entry["cost_usd_per_run"]["mean"]
        if cost is None and client:
            cost = client["cost_usd_per_run"]["mean"]
        out.append(
            VariantFigures(
                scenario=entry["scenario"],
                variant=entry["variant"],
                mode=entry["mode"],
                source="client" if side is client else "server",
                time_scale=entry["time_scale"],
                runs=side["runs"],
                error_rate=side["error_rate"],
                e2e_p50_ms=_div(side["e2e_ms"]["p50"], scale),
                e2e_p95_ms=_div(side["e2e_ms"]["p95"], scale),
                e2e_p99_ms=_div(side["e2e_ms"].get("p99"), scale),
                ttfc_p50_ms=_div(side["ttfc_ms"]["p50"], scale),
                ttfc_p95_ms=_div(side["ttfc_ms"]["p95"], scale),
                si_p50_ms=_div(side["speed_index_ms"]["p50"], scale),
                si_p95_ms=_div(side["speed_index_ms"]["p95"], scale),
                cost_usd=cost,
                efficiency=entry["executor_efficiency"]["p50"],
                value_of_time_usd_per_s=entry["value_of_time_usd_per_s"],
                baseline_variant=entry["baseline_variant"],
            )
        )
    return out


def foreign_figures(data: ReportData) -> VariantFigures | None:
    """The traces of other systems as one pseudo-variant: e2e of their root spans."""
    if data.analysis is None or data.analysis.traces.empty:
        return None
    traces = data.analysis.traces[data.analysis.traces.method == "span_tree"]
    if traces.empty:
        return None
    e2e = traces.e2e_ms.to_numpy(dtype=float)
    p50, p95, p99 = (float(v) for v in np.quantile(e2e, [0.5, 0.95, 0.99]))
    return VariantFigures(
        scenario="",
        variant=FOREIGN_NAME,
        mode=FOREIGN,
        source="server",
        time_scale=1.0,
        runs=len(traces),
        error_rate=None,
        e2e_p50_ms=p50,
        e2e_p95_ms=p95,
        e2e_p99_ms=p99,
        ttfc_p50_ms=None,
        ttfc_p95_ms=None,
        si_p50_ms=None,
        si_p95_ms=None,
        cost_usd=None,
        efficiency=None,
        value_of_time_usd_per_s=None,
        baseline_variant=None,
    )


def fmt_s(ms: float | None, digits: int = 1) -> str:
    """Milliseconds for reading: "12.9 s", or "130 ms" under a second; "–" when unknown."""
    if ms is None:
        return "–"
    return f"{ms:.0f} ms" if abs(ms) < 1000 else f"{ms / 1000:.{digits}f} s"


def fmt_usd(usd: float | None) -> str:
    """Dollars with enough digits for cents and fractions of a cent."""
    if usd is None or math.isnan(usd):
        return "–"
    if usd == 0 or abs(usd) >= 0.01:
        return f"${usd:,.4f}".rstrip("0").rstrip(".") if abs(usd) < 1 else f"${usd:,.2f}"
    return f"${usd:.3g}"


@dataclass(frozen=True)
class Choice:
    """One scenario's recommendation: which variant to ship, against which baseline."""

    scenario: str
    baseline: VariantFigures | None
    ship: VariantFigures | None
    fastest: VariantFigures | None
    saved_s: float | None  # fastest vs baseline, p50 at real speed
    extra_usd: float | None  # fastest vs baseline, mean cost per run
    usd_per_s_saved: float | None
    value_of_time_usd_per_s: float | None
    worth_it: bool | None


def versus(base: VariantFigures, other: VariantFigures) -> tuple[float, float, float | None]:
    """(s saved at p50, extra USD per run, USD per s saved or ``None``) of ``other`` vs ``base``."""
    assert base.e2e_p50_ms is not None and other.e2e_p50_ms is not None
    saved_s = (base.e2e_p50_ms - other.e2e_p50_ms) / 1000
    extra = (other.cost_usd or 0.0) - (base.cost_usd or 0.0)
    per_s = extra / saved_s if saved_s > 0 else None
    return saved_s, extra, per_s


def _worth(saved_s: float, extra: float, per_s: float | None, vot: float | None) -> bool | None:
    if extra <= 0:
        return saved_s >= 0
    if per_s is None:
        return False
    return None if vot is None else per_s < vot


def _baseline_name(mine: list[VariantFigures], given: str | None) -> str | None:
    names = [f.variant for f in mine]
    for candidate in (given, *(f.baseline_variant for f in mine), "sequential"):
        if candidate and candidate in names:
            return candidate
    return None


def choices(figures: list[VariantFigures], baseline_variant: str | None = None) -> list[Choice]:
    """Per scenario: the baseline, the fastest variant and the fastest one worth its cost."""
    out = []
    for scenario in dict.fromkeys(f.scenario for f in figures if f.mode != FOREIGN):
        mine = [f for f in figures if f.scenario == scenario and f.mode != FOREIGN]
        name = _baseline_name(mine, baseline_variant)
        base = next((f for f in mine if f.variant == name), None)
        timed = [f for f in mine if f.e2e_p50_ms is not None and f is not base]
        vot = next((f.value_of_time_usd_per_s for f in mine if f.value_of_time_usd_per_s), None)
        if base is None or base.e2e_p50_ms is None or not timed:
            # Without a baseline nothing is recommended; the fastest measured is still named.
            fastest = None
            if base is None and timed:
                fastest = min(timed, key=lambda f: f.e2e_p50_ms or 0.0)
            out.append(Choice(scenario, base, base, fastest, None, None, None, vot, None))
            continue
        fastest = min(timed, key=lambda f: f.e2e_p50_ms or 0.0)
        worth = [f for f in timed if _worth(*versus(base, f), vot)]
        ship = min(worth, key=lambda f: f.e2e_p50_ms or 0.0) if worth else base
        saved, extra, per_s = versus(base, fastest)
        out.append(
            Choice(
                scenario,
                base,
                ship,
                fastest,
                saved,
                extra,
                per_s,
                vot,
                _worth(saved, extra, per_s, vot),
            )
        )
    return out
