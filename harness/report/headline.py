"""The words of the report: the summary paragraph a product manager reads, and the headline.

``headline`` returns what ``ReportResult.headline`` holds: the paragraph and,
per variant, e2e p50/p95 and TTFC p50 (ms at real speed), cost per run and
the side the latency was measured on. The paragraph says, per scenario,
which variant to ship and why (``findings.choices``), how much sooner cards
make the wait feel, where the time goes, how the service held up under load
and whether the data had problems that change a number.
"""

from __future__ import annotations

from typing import Any

from harness.report.build import ReportData
from harness.report.findings import (
    Choice,
    VariantFigures,
    fmt_s,
    fmt_usd,
    foreign_figures,
    versus,
)

__all__ = ["extra_sentences", "headline"]

# A span whose parent was never exported (under load, the client's) changes no number.
_STRUCTURAL_FINDINGS = {"orphan_span", "trace_without_root"}


def _side(f: VariantFigures) -> str:
    if f.time_scale is None:
        return f"p50, {f.source} side, as measured"
    speed = "" if f.time_scale == 1.0 else ", at real speed"
    return f"p50, {f.source} side{speed}"


def _price(base: VariantFigures, other: VariantFigures, value: str) -> str:
    """What ``other`` costs over ``base``, and per second saved against the value of time."""
    _, extra, per_s = versus(base, other)
    if abs(extra) < 1e-9:
        return "at the same cost per run"
    if extra <= 0:
        return f"and costs {fmt_usd(-extra)} less per run"
    if per_s is None:
        return f"for {fmt_usd(extra)} more per run without saving time"
    against = f", against {value}" if value else ""
    return f"for {fmt_usd(extra)} more per run — {fmt_usd(per_s)} per second saved{against}"


def _choice_text(c: Choice, single: bool) -> str:
    lead = f"{c.scenario}: " if not single else ""
    base, fastest, ship = c.baseline, c.fastest, c.ship
    if base is None and fastest is not None:
        return (
            f"{lead}the baseline variant was not measured, so nothing is recommended; "
            f"the fastest measured, {fastest.variant}, answers in {fmt_s(fastest.e2e_p50_ms)} "
            f"(p95 {fmt_s(fastest.e2e_p95_ms)}; {_side(fastest)}), shows its first card at "
            f"{fmt_s(fastest.ttfc_p50_ms)} and costs {fmt_usd(fastest.cost_usd)} per run."
        )
    if base is None or fastest is None:
        only = base or ship
        if only is None:
            return f"{lead}no variant has a measured latency."
        return (
            f"{lead}only {only.variant} was measured: it answers in {fmt_s(only.e2e_p50_ms)} "
            f"(p95 {fmt_s(only.e2e_p95_ms)}; {_side(only)}), shows its first card at "
            f"{fmt_s(only.ttfc_p50_ms)} and costs {fmt_usd(only.cost_usd)} per run. "
            "Measure a parallel variant next to it to see what parallelism would buy."
        )
    vot = c.value_of_time_usd_per_s
    value = f"the {fmt_usd(vot)}/s a second of waiting is worth here" if vot else ""

    def answers(v: VariantFigures, subject: str | None = None) -> str:
        return (
            f"{subject or v.variant} answers in {fmt_s(v.e2e_p50_ms)} instead of "
            f"{fmt_s(base.e2e_p50_ms)} with {base.variant} ({_side(v)})"
        )

    if ship is not None and ship is not base:
        worth = ": worth it." if versus(base, ship)[1] > 1e-9 else "."
        text = (
            f"{lead}ship {ship.variant}: {answers(ship, 'it')} {_price(base, ship, value)}{worth}"
        )
        if ship is not fastest:
            text += (
                f" {fastest.variant} is faster still ({fmt_s(fastest.e2e_p50_ms)}) "
                f"{_price(base, fastest, value)}: not worth it."
            )
        return text
    if c.worth_it is None:
        return (
            f"{lead}{answers(fastest)} {_price(base, fastest, value)}; the scenario's value of "
            "time is not in the data (it comes with spans), so whether that is worth it is "
            "not judged."
        )
    price = _price(base, fastest, value)
    return f"{lead}keep {base.variant}: {answers(fastest)} {price}: not worth it."


def _progressive_text(c: Choice) -> str:
    base, best = c.baseline, c.ship if c.ship is not c.baseline else c.fastest
    if base is None or base.si_p50_ms is None or base.e2e_p50_ms is None:
        return ""
    text = (
        f"Showing each card as it completes makes the {base.variant} wait feel like "
        f"{fmt_s(base.si_p50_ms)} instead of {fmt_s(base.e2e_p50_ms)} all at once (speed index)"
    )
    if best is not None and best is not base and best.si_p50_ms is not None:
        text += f"; {best.variant} brings it to {fmt_s(best.si_p50_ms)}"
    return text + "."


def headline(
    figures: list[VariantFigures],
    picks: list[Choice],
    *,
    extra_sentences: list[str] | None = None,
) -> dict[str, Any]:
    """The one-paragraph summary and the per-variant headline numbers (``ReportResult``)."""
    single = len(picks) == 1
    sentences = []
    for c in picks:
        text = _choice_text(c, single)
        sentences.append(text[:1].upper() + text[1:])
        if progressive := _progressive_text(c):
            sentences.append(progressive)
    sentences += extra_sentences or []
    return {
        "summary": " ".join(sentences),
        "variants": [
            {
                "scenario": f.scenario,
                "variant": f.variant,
                "latency_source": f.source,
                "time_scale": f.time_scale,
                "runs": f.runs,
                "e2e_ms": {"p50": f.e2e_p50_ms, "p95": f.e2e_p95_ms},
                "ttfc_ms": {"p50": f.ttfc_p50_ms},
                "cost_usd_per_run": f.cost_usd,
                "error_rate": f.error_rate,
            }
            for f in figures
        ],
        "recommendations": [
            {
                "scenario": c.scenario,
                "ship": c.ship.variant if c.ship else None,
                "baseline": c.baseline.variant if c.baseline else None,
                "fastest": c.fastest.variant if c.fastest else None,
                "usd_per_s_saved": c.usd_per_s_saved,
                "value_of_time_usd_per_s": c.value_of_time_usd_per_s,
                "worth_it": c.worth_it,
            }
            for c in picks
        ],
        "latency_note": "ms at real speed (measured ÷ time scale); latency_source says "
        "client (load samples) or server (run spans)",
    }


def extra_sentences(data: ReportData, picks: list[Choice]) -> list[str]:
    """The summary's closing sentences: the main bottleneck, load, rate limits, data quality."""
    out = _foreign_sentences(data)
    bottlenecks = data.analysis.bottlenecks if data.analysis is not None else None
    for c in picks:
        shown = c.ship or c.baseline
        if bottlenecks is None or bottlenecks.empty or shown is None:
            continue
        mine = bottlenecks[
            (bottlenecks.scenario == c.scenario) & (bottlenecks.variant == shown.variant)
        ]
        if len(mine) and mine.share_of_e2e.iloc[0] > 0:
            top = mine.iloc[0]
            out.append(
                f"Most of {shown.variant}'s time goes to {top.step} "
                f"({top.share_of_e2e * 100:.0f}% of e2e on the critical path)."
            )
    out += _load_sentences(data, picks)
    out += _failure_sentences(data)
    # A span whose parent was never exported (under load, the client's) changes no number:
    # the Data quality section lists it, the summary does not.
    changed = {k: n for k, n in data.quality.counts.items() if k not in _STRUCTURAL_FINDINGS}
    if changed:
        kinds = ", ".join(f"{name} × {n}" for name, n in sorted(changed.items()))
        out.append(f"Data-quality findings: {kinds} (see Data quality).")
    return out


def _failure_sentences(data: ReportData) -> list[str]:
    """How many runs did not complete (run spans), and the failed attempts by type."""
    out = []
    counts: dict[str, int] = {}
    total = 0
    for entry in data.summary["variants"]:
        total += entry["runs"]
        for outcome, n in entry["outcomes"].items():
            counts[outcome] = counts.get(outcome, 0) + int(n)
    bad = {k: n for k, n in counts.items() if k != "completed" and n}
    if bad:
        parts = ", ".join(f"{n} {k}" for k, n in sorted(bad.items(), key=lambda kv: -kv[1]))
        out.append(f"{sum(bad.values())} of {total} runs did not complete ({parts}).")
    errors = data.provider_errors
    if len(errors):
        limited = set(errors[errors.rate_limited.astype(bool)].error_type)
        by_type = errors.groupby("error_type", sort=False).attempts.sum()
        by_type = by_type.sort_values(ascending=False, kind="stable")
        kinds = ", ".join(
            f"{k} × {int(n)}" + (" (429)" if k in limited else "") for k, n in by_type.items()
        )
        out.append(f"{int(by_type.sum())} LLM and tool attempts failed: {kinds}.")
    return out


def _foreign_sentences(data: ReportData) -> list[str]:
    f = foreign_figures(data)
    if f is None or data.analysis is None:
        return []
    text = (
        f"{f.runs} trace(s) from another system (no declared DAG) take {fmt_s(f.e2e_p50_ms, 2)} "
        f"at p50 and {fmt_s(f.e2e_p95_ms, 2)} at p95 (root span)"
    )
    ops = data.analysis.bottlenecks
    ops = ops[(ops.variant == "") & (ops.share_of_e2e.fillna(0) > 0)] if len(ops) else ops
    if len(ops):
        top = ops.sort_values("share_of_e2e", ascending=False).iloc[0]
        text += f"; most of it is {top.step} ({top.share_of_e2e:.0%} of e2e on the critical path)"
    pairs = data.overlaps
    if len(pairs):
        together = int((pairs.overlapped > 0).sum())
        apart = int((pairs.overlapped == 0).sum())
        text += (
            f". Inferred from overlap: {together} pair(s) of sibling operations ran at the same "
            f"time, {apart} never did"
        )
    return [text + "."]


def _users(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"


def _load_sentences(data: ReportData, picks: list[Choice]) -> list[str]:
    if not data.samples:
        return []
    refused = sum(s.get("outcome") == "rejected" for s in data.samples)
    failed = sum(s.get("outcome") in ("failed", "error") for s in data.samples)
    text = (
        f"Under load ({len(data.samples)} client runs), {refused / len(data.samples):.1%} "
        f"were refused (503) and {failed / len(data.samples):.1%} failed"
    )
    # The variant to ship first: its behaviour under load is the one that matters.
    shipped = {(c.scenario, c.ship.variant) for c in picks if c.ship is not None}
    entries = sorted(
        data.summary["variants"], key=lambda e: (e["scenario"], e["variant"]) not in shipped
    )
    for entry in entries:
        levels = [
            level
            for level in (entry.get("client") or {}).get("concurrency_levels", [])
            if level["e2e_ms"]["p95"] is not None
        ]
        if len(levels) >= 2:
            scale = entry["time_scale"] or 1.0
            low, high = levels[0], levels[-1]
            text += (
                f"; {entry['variant']}'s p95 e2e went from "
                f"{fmt_s(low['e2e_ms']['p95'] / scale)} at {_users(low['concurrency'])} to "
                f"{fmt_s(high['e2e_ms']['p95'] / scale)} at {_users(high['concurrency'])}"
            )
            break
    return [text + "."]
