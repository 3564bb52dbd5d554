"""``report.html``: one self-contained page that works offline, from ``file://``.

plotly.js is embedded once, in the page; each figure is a JSON block
(``<script type="application/json">``) drawn by a small script
(``templates/report.js``). Nothing is fetched: a Content-Security-Policy
allows no connection, and only the page's own two scripts (by nonce) run.

Every string from the data is escaped for where it lands: ``html.escape`` in
text and tables, ``<`` ``>`` ``&`` as ``\\u003c``-style escapes inside the
JSON blocks (so no ``</script>`` or ``<!--`` can end them), and plotly labels
through ``charts.label``.
"""

from __future__ import annotations

import html
import re
import secrets
from datetime import UTC, datetime
from importlib import resources

import plotly.graph_objects as go

from harness import __version__
from harness.report.build import ReportData
from harness.report.charts import Charts
from harness.report.findings import Choice, VariantFigures, fmt_s, fmt_usd
from harness.report.tables import Table, TableSet

__all__ = ["SECTIONS", "render_html"]

# (id, heading): the page's sections in order; tests look for each heading.
SECTIONS = [
    ("summary", "Summary"),
    ("latency", "Latency and where the time goes"),
    ("parallel", "What can run in parallel"),
    ("branches", "What parallel branches cost"),
    ("progressive", "Progressive results"),
    ("load", "Under load"),
    ("what-if", "What if"),
    ("data-quality", "Data quality"),
    ("inputs", "What this report read"),
]
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _template(name: str) -> str:
    return resources.files("harness.report").joinpath("templates", name).read_text("utf-8")


def table_html(table: Table, empty: str = "") -> str:
    """An HTML table; every cell escaped."""
    if not table:
        return f'<p class="empty">{_esc(empty)}</p>' if empty else ""

    def cell(tag: str, i: int, text: str) -> str:
        cls = ' class="num"' if i in table.numeric else ""
        return f"<{tag}{cls}>{_esc(text)}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(table.columns))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    table_tag = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table-wrap">{table_tag}</div>'


class _Page:
    """Collects chart placeholders and their JSON blocks while the sections are written."""

    def __init__(self) -> None:
        self.blocks: list[str] = []

    def chart(self, chart_id: str, fig: go.Figure | None, title: str, why_not: str) -> str:
        if fig is None:
            return f"<h3>{_esc(title)}</h3>" + _p(why_not, "empty")
        spec = fig.to_json(validate=False).translate(_JSON_ESCAPES)
        self.blocks.append(
            f'<script type="application/json" class="figure" data-target="{chart_id}">'
            f"{spec}</script>"
        )
        return (
            f'<figure><h3>{_esc(title)}</h3><div class="chart" id="{chart_id}" '
            f'data-chart="{chart_id}"></div></figure>'
        )


def _p(text: str, cls: str = "") -> str:
    """A paragraph of text, escaped; `backticks` become code."""
    if not text:
        return ""
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))
    return f"<p{f' class={cls!r}' if cls else ''}>{escaped}</p>"


def _value_of_time(figures: list[VariantFigures]) -> str:
    values = {f.scenario: f.value_of_time_usd_per_s for f in figures if f.value_of_time_usd_per_s}
    if not values:
        return ""
    each = "; ".join(
        f"{scenario}: {fmt_usd(v)} per second, ${v / 1000:.3g} per ms"
        for scenario, v in values.items()
    )
    return (
        "A branch is worth it when its extra cost per ms saved is below what a millisecond of "
        f"waiting is worth to the product (the scenario's value of time — {each}). ms saved "
        "are at real speed; extra cost is against the baseline variant's cost of the same step."
    )


def _side_note(figures: list[VariantFigures]) -> str:
    sides = {f.source for f in figures}
    scales = sorted({f.time_scale for f in figures if f.time_scale not in (None, 1.0)})
    parts = []
    if "client" in sides:
        parts.append(
            "client side: measured by the load client, request sent → final result received"
        )
    if "server" in sides:
        parts.append("server side: run span start → end")
    text = "Latency is " + "; ".join(parts) + "." if parts else ""
    if scales:
        text += (
            " The runs were simulated at time scale "
            + ", ".join(f"{s:g}" for s in scales)
            + ": every latency shown is measured ÷ time scale (real speed)."
        )
    if any(f.time_scale is None for f in figures):
        text += " Variants seen only in load samples have no time scale: shown as measured."
    return text


def render_html(
    data: ReportData,
    figures: list[VariantFigures],
    picks: list[Choice],
    headline: dict,
    tables: TableSet,
    charts: Charts,
) -> str:
    """The whole page as one string."""
    page = _Page()
    body: dict[str, str] = {}
    body["summary"] = _p(headline["summary"], "lead") + _p(_side_note(figures), "note")
    waterfalls = "".join(
        page.chart(f"chart-waterfall-{i}", fig, f"Waterfall: {name} (run nearest the median)", "")
        for i, (name, fig) in enumerate(charts.waterfalls)
    )
    body["latency"] = (
        table_html(tables.variants, "No variant has a measured latency.")
        + "<h3>Against the baseline (95% bootstrap CI)</h3>"
        + table_html(tables.comparisons, "Only one variant per scenario: nothing to compare.")
        + page.chart(
            "chart-e2e-cdf",
            charts.figures["e2e-cdf"],
            "e2e latency distribution",
            "No run has an e2e latency.",
        )
        + page.chart(
            "chart-bottlenecks",
            charts.figures["bottlenecks"],
            "Bottlenecks: share of e2e on the critical path",
            "No spans: bottlenecks need traces.",
        )
        + table_html(tables.bottlenecks)
        + (waterfalls or _p("No spans: waterfalls need traces.", "empty"))
    )
    body["parallel"] = (
        _p(
            "From the declared DAG: steps that wait for nothing the other produces can run "
            "alongside each other; steps waiting for the same set form a fork (each a parallel "
            "branch)."
        )
        + table_html(tables.independence, "No harness runs: no declared DAG to read.")
        + (
            "<h3>Foreign traces: inferred from overlap</h3>"
            + _p(
                "These traces declare no dependencies. Siblings that ran at the same time did "
                "not wait for each other (independent, inferred from overlap); siblings that "
                "never overlapped may depend on each other or may be a missed chance."
            )
            + table_html(tables.overlaps)
            if tables.overlaps
            else ""
        )
    )
    body["branches"] = (
        _p(_value_of_time(figures))
        + page.chart(
            "chart-cost-latency",
            charts.figures["cost-latency"],
            "Cost against latency per variant (trade-off frontier)",
            "No variant has both a latency and a cost.",
        )
        + page.chart(
            "chart-branch-cost",
            charts.figures["branch-cost"],
            "Cost per ms saved per parallel branch against the value of time",
            "No parallel branch was measured (a parallel variant and its baseline "
            "are both needed).",
        )
        + "<h3>Branches</h3>"
        + table_html(tables.branches, "No parallel branches.")
        + "<h3>Forks (all branches of a fork together)</h3>"
        + table_html(tables.forks, "No forks.")
    )
    body["progressive"] = (
        _p(_progressive_sentence(picks))
        + table_html(tables.progressive)
        + page.chart(
            "chart-cards", charts.figures["cards"], "Cards over time", "No run showed a card."
        )
        + page.chart(
            "chart-ttfc-cdf",
            charts.figures["ttfc-cdf"],
            "Time to first card distribution",
            "No run showed a card.",
        )
    )
    body["load"] = (
        (
            _p(
                "No load samples in this run directory: run `parabench load --out DIR` for "
                "client-side figures under load."
            )
            if not data.samples
            else ""
        )
        + page.chart(
            "chart-concurrency",
            charts.figures["concurrency"],
            "Latency against concurrency",
            "Needs load samples at two or more concurrency levels (a sweep: "
            "`parabench load --shape sweep`).",
        )
        + table_html(tables.load)
        + "<h3>How runs ended</h3>"
        + table_html(tables.outcomes, "No runs.")
        + "<h3>Queue time (waiting for a slot or a rate limit)</h3>"
        + table_html(tables.queue, "No step spans.")
        + "<h3>Failed LLM and tool attempts (429s included)</h3>"
        + table_html(tables.errors, "No failed attempt: no 429, no error.")
    )
    body["what-if"] = _p(
        "The baseline's measured step durations replayed under each other variant's schedule."
    ) + table_html(tables.what_if, "Nothing to replay: needs a baseline with completed runs.")
    body["data-quality"] = table_html(
        tables.quality, "No findings: every line, span and sample was read."
    )
    body["inputs"] = (
        _p(f"Run directory: {data.run_dir}")
        + table_html(tables.files)
        + "".join(_p(n, "note") for n in data.notes)
    )
    return _assemble(data, body, page)


def _progressive_sentence(picks: list[Choice]) -> str:
    out = []
    for c in picks:
        base = c.baseline
        best = c.fastest
        if base is None or base.e2e_p50_ms is None:
            continue
        text = (
            f"{c.scenario}: all at once, the user waits {fmt_s(base.e2e_p50_ms)} "
            f"({base.variant}, e2e p50); with cards as they complete it feels like "
            f"{fmt_s(base.si_p50_ms)} (speed index p50)"
        )
        if best is not None and best.si_p50_ms is not None:
            text += f"; in parallel ({best.variant}) like {fmt_s(best.si_p50_ms)}"
        out.append(text + ".")
    return " ".join(out)


def _assemble(data: ReportData, body: dict[str, str], page: _Page) -> str:
    import plotly.offline

    nonce = secrets.token_urlsafe(16)
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src data: blob:; "
        "font-src data:"
    )
    toc = "".join(f'<li><a href="#{sid}">{_esc(title)}</a></li>' for sid, title in SECTIONS)
    sections = "".join(
        f'<section id="{sid}"><h2>{_esc(title)}</h2>{body[sid]}</section>'
        for sid, title in SECTIONS
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    named = [str(e["scenario"]) for e in data.summary["variants"]]
    scenarios = f"{', '.join(dict.fromkeys(named))} · " if named else ""
    plotly_js = plotly.offline.get_plotlyjs().replace("</script", "<\\/script")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>parabench report — {_esc(data.run_dir.name)}</title>"
        f"<style>{_template('report.css')}</style></head>"
        '<body data-charts="pending"><header><h1>parabench report</h1>'
        f'<p class="meta">{_esc(scenarios)}{_esc(data.run_dir)} · generated {when} · '
        f"parabench {__version__}</p>"
        f"<nav><ol>{toc}</ol></nav></header><main>{sections}</main>"
        "<footer>Definitions: docs/concepts.md and docs/report.md in the parabench "
        "repository.</footer>"
        f'<script nonce="{nonce}">{plotly_js}</script>'
        + "".join(page.blocks)
        + f'<script nonce="{nonce}">{_template("report.js")}</script>'
        "</body></html>\n"
    )
