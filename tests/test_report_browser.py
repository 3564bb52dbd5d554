"""report.html in real headless Chromium, opened from ``file://`` (driven by ``cdp.py``).

The page must draw every chart with no console error and no request leaving
the page, and markup in the data must show as text and never run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import report_dirs
from cdp import DevTools, open_browser

from harness.report import write_report

# Runs before any script of the page: a dialog opened by injected markup is recorded.
DIALOG_TRAP = """
window.__dialogs = [];
for (const name of ['alert', 'confirm', 'prompt']) {
  window[name] = (message) => { window.__dialogs.push(name + ':' + String(message)); };
}
"""
CHARTS_JS = """Array.from(document.querySelectorAll('.chart'), (d) => [
  d.id, d.querySelector('.plot-container .main-svg') !== null])"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """report.html of a run with spans and a load sweep, and of a run full of markup."""
    root = tmp_path_factory.mktemp("report-browser")
    spans = report_dirs.spans_dir(root)
    return {
        "both": write_report(report_dirs.both_dir(root, spans)).html_path,
        "markup": write_report(report_dirs.markup_dir(root, spans)).html_path,
    }


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    with open_browser(tmp_path_factory.mktemp("chromium"), "the report page") as devtools:
        devtools.call("Network.enable")
        devtools.call("Page.addScriptToEvaluateOnNewDocument", source=DIALOG_TRAP)
        yield devtools


def _open(browser: DevTools, page: Path) -> None:
    """Load ``page`` from disk and wait until every chart is drawn."""
    browser.events.clear()
    browser.navigate(page.as_uri(), timeout_s=30)
    deadline = time.monotonic() + 30
    while browser.evaluate("document.body.dataset.charts") != "drawn":
        assert time.monotonic() < deadline, "the charts were never drawn"
        time.sleep(0.05)


def _requests(browser: DevTools) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
    ]


class TestReportPage:
    def test_every_chart_draws_offline_without_errors(
        self, browser: DevTools, pages: dict[str, Path]
    ) -> None:
        """Every chart div holds a drawn plot; no console error; nothing but the file loads."""
        _open(browser, pages["both"])
        charts: list[list[Any]] = browser.evaluate(CHARTS_JS)
        expected = {
            "chart-e2e-cdf", "chart-ttfc-cdf", "chart-bottlenecks", "chart-cost-latency",
            "chart-branch-cost", "chart-cards", "chart-concurrency",
            *(f"chart-waterfall-{i}" for i in range(len(report_dirs.VARIANTS))),
        }  # fmt: skip
        assert {chart_id for chart_id, _ in charts} == expected
        assert all(drawn for _, drawn in charts), charts
        assert browser.errors() == []
        assert [url for url in _requests(browser) if not url.startswith("file:")] == []
        assert browser.evaluate("document.querySelectorAll('.chart .xtitle').length") >= len(
            expected
        )

    def test_markup_in_the_data_shows_as_text_and_never_runs(
        self, browser: DevTools, pages: dict[str, Path]
    ) -> None:
        """No dialog, no injected element or script; every hostile name is visible as text."""
        _open(browser, pages["markup"])
        assert browser.evaluate("window.__dialogs") == []
        assert not [e for e in browser.events if e["method"] == "Page.javascriptDialogOpening"]
        assert browser.evaluate("document.querySelectorAll('img, [onerror], [onload]').length") == 0
        assert browser.evaluate(
            "document.scripts.length === 2 + document.querySelectorAll('script.figure').length"
        )
        body = browser.evaluate("document.body.innerText")
        for hostile in report_dirs.MARKUP:
            assert hostile in body, hostile
        chart_text = browser.evaluate(
            "Array.from(document.querySelectorAll('.chart text'), (t) => t.textContent).join('\\n')"
        )
        for hostile in (
            report_dirs.STEP_MARKUP,
            report_dirs.SPAN_MARKUP,
            "<b>fetch</b>",
            "$x$ & y",
        ):
            assert hostile in chart_text, hostile
        assert browser.evaluate(f"document.title.includes({json.dumps('markup')})")
        assert browser.errors() == []
