"""``parabench run``: the command a user types, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import parabench


class TestRunCommand:
    """``parabench run SCENARIO`` writes spans and a summary that agree with each other."""

    def test_run_writes_spans_and_matching_summary(self, tmp_path: Path, raw_runs):
        """Two parallel runs: exit 0, spans.jsonl and summary.json whose numbers match the spans."""
        out = tmp_path / "out"
        proc = parabench(
            "run", "research_assistant", "-n", "2", "--time-scale", "0.01", "-v", "parallel",
            "--out", str(out),
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        spans_path, summary_path = out / "spans.jsonl", out / "summary.json"
        assert spans_path.is_file() and summary_path.is_file()
        assert str(summary_path) in proc.stdout
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        raw = raw_runs(spans_path)
        assert len(raw) == 2
        assert {r["variant"] for r in raw} == {"parallel"}
        assert summary["runs"] == 2
        assert summary["interrupted"] is False
        assert summary["scenario_file"].endswith("research_assistant.yaml")
        (entry,) = summary["variants"]
        assert entry["variant"] == "parallel"
        assert entry["time_scale"] == 0.01
        assert entry["outcomes"] == {"completed": 2}
        e2e = [r["e2e_ms"] for r in raw]
        assert entry["e2e_ms"]["p50"] == pytest.approx(np.median(e2e))
        assert entry["e2e_ms"]["p95"] == pytest.approx(np.percentile(e2e, 95))
        assert entry["ttfc_ms"]["p50"] == pytest.approx(np.median([r["ttfc_ms"] for r in raw]))
        assert entry["cost_usd_per_run"]["mean"] == pytest.approx(
            np.mean([r["cost_usd"] for r in raw])
        )
        # 12 s of theory at 1/100 speed: about 0.12 s of wall time per run.
        assert 100 < entry["e2e_ms"]["p50"] < 400

    def test_unknown_variant_is_a_clear_error(self, tmp_path: Path):
        """An unknown variant exits 2 and names the valid ones, without a traceback."""
        proc = parabench(
            "run", "research_assistant", "-v", "fastest", "--out", str(tmp_path / "out"),
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2
        assert "no variant 'fastest'" in proc.stderr
        assert "sequential, parallel, parallel_capped" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "out").exists()
