"""The demo page in real headless Chromium, driven over the DevTools Protocol (``cdp.py``).

The page autostarts its three panes (``/?autostart=1``); the test samples the
DOM while they run, so it can show that the "all at once" pane never displays
a card before its run completes.
"""

from __future__ import annotations

import base64
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cdp import DevTools, open_browser

from harness.service import ServiceConfig, ServiceServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# One evaluation returns everything the assertions need about the page.
SNAPSHOT_JS = """(() => {
  // Navigation may still be on about:blank, or the new document not parsed yet.
  if (!document.body || !document.getElementById('summary')) return {state: 'loading', panes: []};
  const panes = Array.from(document.querySelectorAll('.pane'), (p) => ({
    ...p.dataset,
    visible: Array.from(p.querySelectorAll('.cards li:not(.slot)')).filter((li) => !li.hidden)
      .length,
    revealed: Array.from(p.querySelectorAll('.cards li[data-revealed-ms]'),
      (li) => Number(li.dataset.revealedMs)),
    results: Object.fromEntries(Array.from(p.querySelectorAll('.results dd'),
      (dd) => [dd.dataset.metric, dd.textContent])),
  }));
  return {
    state: document.body.dataset.state || '',
    panes,
    errors: document.getElementById('errors').textContent,
    summary: document.getElementById('summary').hidden ? '' :
      document.getElementById('summary').textContent,
  };
})()"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile, and a DevTools session on its first page."""
    with open_browser(tmp_path, "the demo page") as devtools:
        yield devtools


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceServer]:
    # research_assistant at 0.05: sequential ≈ 1.2 s, parallel ≈ 0.6 s.
    config = ServiceConfig(port=0, time_scale=0.05, spans_path=tmp_path / "spans.jsonl")
    with ServiceServer(config) as server:
        yield server


def _ms(value: str) -> float:
    return float(value)


class TestDemoPage:
    def test_three_panes_run_and_report_ttfc_and_e2e(
        self, browser: DevTools, service: ServiceServer, tmp_path: Path
    ) -> None:
        """Autostarted, the three panes finish with TTFC and E2E; the batch pane hides cards."""
        browser.navigate(f"{service.url}/?autostart=1&scenario=research_assistant")
        snapshots: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while True:
            snap = browser.evaluate(SNAPSHOT_JS)
            snapshots.append(snap)
            if snap["state"] == "done":
                break
            assert time.monotonic() < deadline, snap
            time.sleep(0.02)
        final = snapshots[-1]
        assert final["errors"] == ""
        assert browser.errors() == []
        batch, progressive, parallel = final["panes"]
        assert [p["pane"] for p in final["panes"]] == ["batch", "progressive", "parallel"]
        for pane in final["panes"]:
            assert pane["state"] == "done" and pane["outcome"] == "completed", pane
            assert pane["cards"] == pane["cardsExpected"] == "5"
            assert pane["visible"] == 5
            assert 0 < _ms(pane["ttfcMs"]) <= _ms(pane["e2eMs"])
            for metric in ("TTFC", "E2E", "Speed index"):
                assert pane["results"][metric].split(" s")[0].replace(".", "").isdigit(), pane
            assert pane["results"]["Cards"] == "5 of 5"
            assert len(pane["traceId"]) == 32

        # All at once: cards arrived while it ran, yet none was visible before completion.
        running = [
            s["panes"][0] for s in snapshots if s["panes"] and s["panes"][0]["state"] == "running"
        ]
        assert running and all(p["visible"] == 0 for p in running)
        assert any(int(p.get("cardsArrived", "0")) >= 1 for p in running)
        assert _ms(batch["ttfcMs"]) == _ms(batch["e2eMs"])
        assert set(batch["revealed"]) == {_ms(batch["e2eMs"])}
        # Progressive: the first card shows long before the end; parallel ends sooner.
        assert _ms(progressive["ttfcMs"]) < 0.5 * _ms(progressive["e2eMs"])
        assert _ms(parallel["e2eMs"]) < _ms(progressive["e2eMs"])
        assert _ms(progressive["speedIndexMs"]) < _ms(batch["speedIndexMs"])
        assert "per run" in final["summary"]

        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
        path = tmp_path / "demo-page.png"
        path.write_bytes(shot)
        assert shot.startswith(PNG_SIGNATURE) and path.stat().st_size > 10_000

    def test_page_is_self_contained(self, browser: DevTools, service: ServiceServer) -> None:
        """The page loads nothing from other origins and ships a strict CSP."""
        with urllib.request.urlopen(f"{service.url}/", timeout=10) as answer:
            html = answer.read().decode()
            policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert "http://" not in html and "https://" not in html
        browser.navigate(f"{service.url}/")
        deadline = time.monotonic() + 10
        while browser.evaluate("document.getElementById('start').disabled"):
            assert time.monotonic() < deadline, "the page never became ready"
            time.sleep(0.02)
        options = browser.evaluate(
            "Array.from(document.querySelectorAll('#scenario option'), (o) => o.value)"
        )
        assert options == sorted(service.state.scenarios)
        assert browser.evaluate("document.getElementById('scenario').value") == (
            "research_assistant"
        )
        assert browser.errors() == []
