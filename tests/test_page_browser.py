"""The demo page in real headless Chromium, driven over the DevTools Protocol.

No browser-automation dependency: a minimal WebSocket client (RFC 6455, text
frames only) speaks CDP to the page. The page autostarts its three panes
(``/?autostart=1``); the test samples the DOM while they run, so it can show
that the "all at once" pane never displays a card before its run completes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from harness.service import ServiceConfig, ServiceServer

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
]
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


def _chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if found is None:
        if os.environ.get("PARABENCH_REQUIRE_SYSTEM_DEPS") == "1":
            pytest.fail("chromium is required (PARABENCH_REQUIRE_SYSTEM_DEPS=1) but missing")
        pytest.skip(
            "CHROMIUM NOT INSTALLED: the demo page was not tested in a browser; run "
            "scripts/setup-system.sh (Debian package 'chromium')"
        )
    return found


class WebSocket:
    """Just enough of a WebSocket client for the DevTools Protocol (text messages)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlparse(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the browser closed the DevTools connection")
        return data

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)  # servers never mask
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("the browser closed the DevTools connection")
            if opcode in (0x9, 0xA):
                continue  # pings need no answer for a short test
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """Commands to one page target; events are kept for inspection."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout_s: float = 10.0) -> None:
        """Open ``url`` and wait until its document has loaded (not the previous one)."""
        self.call("Page.navigate", url=url)
        check = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(check):
            assert time.monotonic() < deadline, f"{url} did not load"
            time.sleep(0.01)

    def errors(self) -> list[dict[str, Any]]:
        """Uncaught exceptions, console errors and error log entries seen so far."""
        bad = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if (
                method == "Runtime.exceptionThrown"
                or (method == "Runtime.consoleAPICalled" and params.get("type") == "error")
                or (method == "Log.entryAdded" and params["entry"]["level"] == "error")
            ):
                bad.append(event)
        return bad


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile, and a DevTools session on its first page."""
    binary = _chromium()
    profile = tmp_path / "profile"
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its helper processes share our new group: stop them together
    )
    devtools: DevTools | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert process.poll() is None, (tmp_path / "chromium.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["type"] == "page")
        devtools = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page"):
            devtools.call(f"{domain}.enable")
        yield devtools
    finally:
        if devtools is not None:
            devtools.ws.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


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
