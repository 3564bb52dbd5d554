"""``report.md``: the report in a few dozen lines, to paste into a pull-request comment.

It carries the summary paragraph, the variants table, how runs ended when
any did not complete (outcomes per variant and side, failed attempts by
``error.type``), the verdict of every parallel branch, the top bottlenecks
and a data-quality line, and points at ``report.html`` for the rest. Text
from the data is escaped so that neither Markdown nor the HTML a Markdown
renderer allows can take effect.
"""

from __future__ import annotations

import html
import re

from harness.report.build import ReportData
from harness.report.findings import VariantFigures, fmt_s, fmt_usd
from harness.report.tables import Table, TableSet

__all__ = ["md_escape", "render_markdown"]

# Parentheses, "#" and "!" only act next to brackets or at a line start, which never happens here.
_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
_MAX_ROWS = 12


def md_escape(text: object) -> str:
    """Text shown as itself in GitHub-flavoured Markdown: no markup, no HTML, one line."""
    escaped = html.escape(str(text), quote=False)
    return _SPECIAL.sub(r"\\\1", escaped).replace("\n", " ")


def _md_table(table: Table, columns: list[str], limit: int = _MAX_ROWS) -> list[str]:
    """The named columns (those the table has) of the first ``limit`` rows."""
    keep = [table.columns.index(c) for c in columns if c in table.columns]
    lines = [
        "| " + " | ".join(md_escape(table.columns[i]) for i in keep) + " |",
        "|" + "|".join("---:" if i in table.numeric else "---" for i in keep) + "|",
    ]
    lines += [
        "| " + " | ".join(md_escape(row[i]) for i in keep) + " |" for row in table.rows[:limit]
    ]
    if len(table.rows) > limit:
        lines.append(f"\n…and {len(table.rows) - limit} more rows in report.html.")
    return lines


def _branch_lines(data: ReportData) -> list[str]:
    if data.analysis is None or data.analysis.forks.empty:
        return ["No parallel branch was measured (a parallel variant and its baseline are needed)."]
    lines = []
    branches = data.analysis.branches
    for fork in data.analysis.forks.to_dict(orient="records"):
        lines.append(
            f"- **{md_escape(fork['variant'])}**, fork {md_escape(fork['fork'])}: "
            f"{md_escape(str(fork['verdict']).replace('_', ' '))} — {md_escape(fork['reason'])}"
        )
        mine = branches[
            (branches.scenario == fork["scenario"])
            & (branches.variant == fork["variant"])
            & (branches.fork == fork["fork"])
        ]
        for b in mine.to_dict(orient="records"):
            lines.append(
                f"  - {md_escape(b['step'])}: {md_escape(str(b['verdict']).replace('_', ' '))}"
                f" (saves {fmt_s(b['ms_saved'])}, {md_escape(fmt_usd(b['extra_cost_usd']))} "
                "extra per run)"
            )
    return lines


def _had_failures(data: ReportData) -> bool:
    """Whether a run (span or sample) did not complete, or an attempt failed."""
    for entry in data.summary["variants"]:
        client = entry.get("client") or {}
        for outcomes in (entry["outcomes"], client.get("outcomes") or {}):
            if any(n for k, n in outcomes.items() if k != "completed"):
                return True
        if entry.get("errors"):
            return True
    return False


def _quality_line(data: ReportData) -> str:
    if data.quality.clean:
        return "Data quality: no findings; every line, span and sample was read."
    parts = ", ".join(f"{md_escape(k)} × {n}" for k, n in sorted(data.quality.counts.items()))
    return f"Data quality: {parts} (examples in report.html)."


def render_markdown(
    data: ReportData, figures: list[VariantFigures], headline: dict, tables: TableSet
) -> str:
    """The Markdown document."""
    lines = ["## parabench report", "", md_escape(headline["summary"]), ""]
    lines += ["### Variants", ""]
    lines += _md_table(
        tables.variants,
        ["scenario", "variant", "side", "runs", "errors", "e2e p50", "e2e p95", "TTFC p50",
         "speed index p50", "cost / run"],
    )  # fmt: skip
    scaled = sorted({f.time_scale for f in figures if f.time_scale not in (None, 1.0)})
    if scaled:
        lines += [
            "",
            f"Seconds at real speed (measured ÷ time scale {', '.join(map(str, scaled))}).",
        ]
    if _had_failures(data):
        lines += ["", "### Failures", ""]
        lines += _md_table(
            tables.outcomes,
            ["scenario", "variant", "side", "runs", "completed", "partial", "failed",
             "cancelled", "rejected", "error", "failed attempts"],
        )  # fmt: skip
    lines += ["", "### Parallel branches", "", *_branch_lines(data)]
    if tables.bottlenecks:
        lines += ["", "### Top bottlenecks", ""]
        columns = ["scenario", "variant", "step", "share of e2e", "on path"]
        lines += _md_table(tables.bottlenecks, columns, limit=9)
    lines += ["", _quality_line(data), ""]
    lines.append(
        "Charts (waterfalls, distributions, cost per ms saved, cards over time, load) and every "
        "table are in `report.html`, next to this file; the numbers gates read are in "
        "`summary.json`."
    )
    return "\n".join(lines) + "\n"
