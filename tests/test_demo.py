"""``parabench demo``: servers, a short Locust load, the report, and a clean stop whatever happens.

Every test talks to 127.0.0.1 only: the demo starts the simulator and the
service on free loopback ports and Locust in a child process, at a small
time scale, for a few seconds of load.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
from helpers import assert_clean_failure, parabench, start_parabench

from harness.demo import DemoOptions, DemoResult, run_demo
from harness.errors import ConfigError, StageError
from harness.load.samples import read_samples

VARIANTS = ["sequential", "parallel", "parallel_capped"]

#: The ``raw_runs`` fixture (conftest.py): run spans of an OTLP JSON lines file.
RawRuns = Callable[[Path], list[dict[str, Any]]]


def refuses_connections(port: int) -> bool:
    """True when nothing listens on ``127.0.0.1:port`` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def listening_ports() -> set[int]:
    """TCP ports this process listens on."""
    return {c.laddr.port for c in psutil.Process().net_connections("tcp") if c.status == "LISTEN"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, set[int]]:
    """One short demo (4 s of load at 1/50 of real time) and the child processes left after it."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    options = DemoOptions(
        out_dir=tmp_path_factory.mktemp("demo") / "run",
        duration_s=4,
        time_scale=0.02,
        levels=(2, 4),
        seed=7,
    )
    result = run_demo(options)
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    return result, left


class TestRunDemo:
    """run_demo: every variant loaded, the report written, everything it started stopped."""

    def test_every_variant_ran(self, demo: tuple[DemoResult, set[int]], raw_runs: RawRuns) -> None:
        """samples.jsonl and spans.jsonl hold completed runs of all three variants."""
        result, _ = demo
        samples = read_samples(result.out_dir / "samples.jsonl")
        assert {s["variant"] for s in samples if s["outcome"] == "completed"} == set(VARIANTS)
        assert {s["concurrency"] for s in samples} <= {2, 4}
        runs = raw_runs(result.out_dir / "spans.jsonl")
        assert {r["variant"] for r in runs if r["outcome"] == "completed"} == set(VARIANTS)

    def test_report_files(self, demo: tuple[DemoResult, set[int]]) -> None:
        """The report's HTML, Markdown and summary.json are in the run directory."""
        result, _ = demo
        for path in (result.report.html_path, result.report.markdown_path):
            assert path.parent == result.out_dir
            assert path.stat().st_size > 0
        assert json.loads(result.report.summary_path.read_text(encoding="utf-8"))

    def test_headline(self, demo: tuple[DemoResult, set[int]]) -> None:
        """Client-side figures for every variant, parallel faster and dearer; forks get verdicts."""
        result, _ = demo
        rows = {v["variant"]: v for v in result.report.headline["variants"]}
        assert set(rows) == set(VARIANTS)
        assert {v["latency_source"] for v in rows.values()} == {"client"}
        assert rows["parallel"]["e2e_ms"]["p50"] < rows["sequential"]["e2e_ms"]["p50"]
        assert rows["parallel"]["cost_usd_per_run"] > rows["sequential"]["cost_usd_per_run"] > 0
        verdicts = {f["variant"]: f["verdict"] for f in result.forks}
        assert set(verdicts) == {"parallel", "parallel_capped"}
        assert set(verdicts.values()) <= {"worth_it", "not_worth_it"}

    def test_everything_stopped(self, demo: tuple[DemoResult, set[int]]) -> None:
        """The service's and the simulator's ports refuse connections; no child process is left."""
        result, left = demo
        for url in (result.service_url, result.simulator_url):
            port = urlsplit(url).port
            assert port is not None and refuses_connections(port), url
        assert left == set()

    def test_failed_stage(
        self, tmp_path: Path, raw_runs: RawRuns, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing stage raises StageError naming it; the servers stop, the data stays."""
        import harness.report

        def broken(run_dir: Path, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(harness.report, "write_report", broken, raising=False)
        before = listening_ports(), psutil.Process().children(recursive=True)
        options = DemoOptions(out_dir=tmp_path, duration_s=2, time_scale=0.02, levels=(2,))
        with pytest.raises(StageError) as caught:
            run_demo(options)
        assert (caught.value.stage, caught.value.exit_code) == ("report", 1)
        assert "the report stage failed: RuntimeError: disk full" in caught.value.message
        assert f"collected is in {tmp_path}: spans.jsonl, samples.jsonl" in caught.value.message
        assert (listening_ports(), psutil.Process().children(recursive=True)) == before
        assert read_samples(tmp_path / "samples.jsonl")
        assert raw_runs(tmp_path / "spans.jsonl")

    @pytest.mark.parametrize(
        ("change", "option"),
        [
            ({"duration_s": 2.5}, "--duration"),
            ({"time_scale": 0.0}, "--time-scale"),
            ({"levels": ()}, "--levels"),
            ({"levels": (0, 5)}, "--levels"),
            ({"seed": -1}, "--seed"),
        ],
    )
    def test_bad_options(self, tmp_path: Path, change: dict[str, Any], option: str) -> None:
        """A bad option is refused, naming it, before anything is started or written."""
        options = DemoOptions(**{"out_dir": tmp_path / "run", "levels": (2, 5, 10), **change})
        with pytest.raises(ConfigError) as caught:
            run_demo(options)
        assert caught.value.where == option
        assert not (tmp_path / "run").exists()


@contextlib.contextmanager
def interruptible_children() -> Iterator[None]:
    """Children started meanwhile get Ctrl-C's default action, even if this process ignores it.

    A process started in the background by a shell ignores SIGINT, and so would
    its children; a Python handler, unlike SIG_IGN, is reset to the default on exec.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class TestDemoCommand:
    """`parabench demo` as a user runs it: Ctrl-C and bad options."""

    def test_ctrl_c_mid_load(self, tmp_path: Path, raw_runs: RawRuns) -> None:
        """SIGINT mid-load: exit 130 within 15 s, a message, nothing left running, data kept."""
        out = tmp_path / "run"
        args = ("demo", "--duration", "60", "--time-scale", "0.05", "--levels", "3", "--out", out)
        with interruptible_children():
            proc = start_parabench(*args, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while (
                not (out / "samples.jsonl").exists() or len(read_samples(out / "samples.jsonl")) < 3
            ):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no runs within 30 s"
                time.sleep(0.1)
            me = psutil.Process(proc.pid)
            children = me.children(recursive=True)
            ports = [c.laddr.port for c in me.net_connections("tcp") if c.status == "LISTEN"]
            assert children and len(ports) == 2  # Locust; the service and the simulator
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert "error: interrupted during the load stage" in stderr
        assert f"what was collected is in {out}: spans.jsonl, samples.jsonl" in stderr
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert all(refuses_connections(port) for port in ports)
        assert len(read_samples(out / "samples.jsonl")) >= 3
        assert raw_runs(out / "spans.jsonl")

    def test_bad_options(self, tmp_path: Path) -> None:
        """Exit 2, "error:" naming the option on stderr, no traceback, nothing written."""
        cases = {
            "--duration": ["--duration", "0"],
            "--levels": ["--levels", "2,x"],
            "--time-scale": ["--time-scale", "1000"],
            "--seed": ["--seed", "-5"],
        }
        with ThreadPoolExecutor(max_workers=len(cases)) as pool:
            futures = {
                o: pool.submit(parabench, "demo", *a, cwd=tmp_path) for o, a in cases.items()
            }
            results = {option: future.result() for option, future in futures.items()}
        for option, result in results.items():
            assert_clean_failure(result)
            assert result.stderr.startswith(f"error: {option}: "), result.stderr
        assert list(tmp_path.iterdir()) == []
