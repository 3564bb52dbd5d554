"""The report of a run directory: ``report.html``, ``report.md`` and ``summary.json``.

``write_report`` is the one call behind ``parabench report RUN_DIR``::

    from harness.report import write_report

    result = write_report("reports/run-20260101-120000")
    print(result.headline["summary"])   # the paragraph a product manager reads
    print(result.html_path)             # self-contained: open it offline

The run directory holds ``spans.jsonl`` (``parabench run`` / ``serve``),
``samples.jsonl`` (``parabench load``) or both. The pieces: ``build`` gathers
and analyses; ``findings`` puts the numbers in the units a reader wants and
picks the variant to recommend, ``headline`` says it in words; ``tables``
(with ``health``), ``overlap``, ``charts`` and ``waterfall`` make what the
page shows; ``html`` and ``markdown`` render it. See docs/report.md.

Importing this package imports pandas and plotly; ``import harness`` does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.analysis.summary import dump_summary
from harness.errors import ConfigError
from harness.report.build import ReportData, gather
from harness.report.findings import choices, foreign_figures, variant_figures
from harness.report.headline import extra_sentences, headline

__all__ = ["ReportData", "ReportResult", "gather", "write_report"]


@dataclass(frozen=True)
class ReportResult:
    """The three files written, and the headline numbers (see ``findings.headline``)."""

    html_path: Path
    markdown_path: Path
    summary_path: Path
    headline: dict[str, Any]


def write_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    baseline_variant: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """Read ``run_dir``, analyse it, and write the report files into ``out_dir`` (default: it).

    Raises ``ParabenchError`` (what, where, fix) when ``run_dir`` is missing or
    holds neither spans nor samples. ``progress`` is told each stage.
    """
    from harness.report.charts import build_charts
    from harness.report.html import render_html
    from harness.report.markdown import render_markdown
    from harness.report.tables import build_tables

    say = progress or (lambda _: None)
    target = Path(out_dir) if out_dir is not None else Path(run_dir)
    data = gather(run_dir, out_dir=target, baseline_variant=baseline_variant, progress=say)
    figures = variant_figures(data.summary)
    if (foreign := foreign_figures(data)) is not None:
        figures.append(foreign)
    picks = choices(figures, baseline_variant)
    head = headline(figures, picks, extra_sentences=extra_sentences(data, picks))
    say("charts")
    tables = build_tables(data, figures)
    charts = build_charts(data, figures, picks)
    say("writing the report")
    paths = (target / "report.html", target / "report.md", target / "summary.json")
    page = render_html(data, figures, picks, head, tables, charts)
    try:
        target.mkdir(parents=True, exist_ok=True)
        paths[0].write_text(page, encoding="utf-8")
        paths[1].write_text(render_markdown(data, figures, head, tables), encoding="utf-8")
        dump_summary(data.summary, paths[2])
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report: {exc.strerror or exc}",
            where=str(exc.filename or target),
            fix="pass --out (out_dir) a directory you can write to",
        ) from None
    return ReportResult(*paths, headline=head)
