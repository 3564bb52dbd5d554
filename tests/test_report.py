"""``parabench report``: report.html, report.md and summary.json from a run directory."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import report_dirs
from helpers import assert_clean_failure, parabench

from harness.analysis import SUMMARY_SCHEMA_VERSION, read_spans, runs_table
from harness.errors import ParabenchError, TraceDataError
from harness.report import ReportResult, write_report
from harness.report.html import SECTIONS

PLOTLY_SIGNATURE = re.compile(r"\* plotly\.js v\d")
CHARTS = ["chart-e2e-cdf", "chart-bottlenecks", "chart-cost-latency", "chart-branch-cost",
          "chart-cards", "chart-ttfc-cdf"]  # fmt: skip
PLOTLY_BUNDLE = re.compile(r'<script nonce="[^"]+">/\*\*\n\* plotly\.js v.*?</script>', re.S)
REMOTE = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real run of research_assistant, and the run directories derived from it."""
    root = tmp_path_factory.mktemp("report")
    spans = report_dirs.spans_dir(root)
    return {
        "spans": spans,
        "samples": report_dirs.samples_dir(root),
        "both": report_dirs.both_dir(root, spans),
        "markup": report_dirs.markup_dir(root, spans),
    }


@pytest.fixture(scope="module")
def reports(dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report of every run directory, written to a directory of its own."""
    out = tmp_path_factory.mktemp("reports")
    return {name: write_report(path, out / name) for name, path in dirs.items()}


def _summary(result: ReportResult) -> dict[str, Any]:
    return json.loads(result.summary_path.read_text(encoding="utf-8"))


def _entries(result: ReportResult) -> dict[str, dict[str, Any]]:
    return {e["variant"]: e for e in _summary(result)["variants"]}


def _page(result: ReportResult) -> str:
    return result.html_path.read_text(encoding="utf-8")


class TestSpansOnly:
    """A run directory of ``parabench run``: spans, every variant."""

    def test_three_files_every_section_and_plotly_once(self, reports):
        """report.html has every section and chart, and embeds plotly.js exactly once."""
        result = reports["spans"]
        assert result.markdown_path.is_file() and result.summary_path.is_file()
        page = _page(result)
        for section_id, heading in SECTIONS:
            assert f'<section id="{section_id}"><h2>{heading}</h2>' in page
        assert len(PLOTLY_SIGNATURE.findall(page)) == 1
        for chart in [*CHARTS, "chart-waterfall-0", "chart-waterfall-1", "chart-waterfall-2"]:
            assert f'id="{chart}"' in page and f'data-target="{chart}"' in page
        assert 'id="chart-concurrency"' not in page  # no load samples, so no sweep

    def test_nothing_is_fetched(self, reports):
        """No script, style, image or link comes from the network; the CSP forbids it too.

        plotly.js itself holds URLs (map tiles, its logo's link) that a page without
        maps and with ``displaylogo: false`` never uses: the browser test shows no
        request leaves the page.
        """
        page = PLOTLY_BUNDLE.sub("", _page(reports["spans"]), count=1)
        assert REMOTE.findall(page) == []
        assert "<link" not in page
        policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
        assert policy and "default-src 'none'" in policy.group(1)

    def test_summary_json_has_what_gates_read(self, reports, dirs):
        """Per variant: e2e p50/p95/p99, TTFC, speed index, errors, cost, efficiency, branches."""
        summary = _summary(reports["spans"])
        assert summary["schema_version"] == SUMMARY_SCHEMA_VERSION == "2.0"
        assert summary["source"] == "spans" and summary["samples"] == 0
        spans, _ = read_spans(dirs["spans"] / "spans.jsonl")
        runs = runs_table(spans)
        entries = _entries(reports["spans"])
        assert set(entries) == set(report_dirs.VARIANTS)
        for variant, entry in entries.items():
            e2e = runs[runs.variant == variant].e2e_ms.to_numpy()
            assert entry["e2e_ms"]["p50"] == pytest.approx(np.median(e2e))
            assert entry["e2e_ms"]["p99"] == pytest.approx(np.percentile(e2e, 99))
            assert entry["e2e_ms_unscaled"]["p95"] == pytest.approx(
                np.percentile(e2e, 95) / report_dirs.TIME_SCALE
            )
            assert entry["ttfc_ms"]["p95"] > 0 and entry["speed_index_ms"]["p50"] > 0
            assert entry["error_rate"] == 0.0
            assert entry["cost_usd_per_run"]["mean"] > 0
            assert entry["executor_efficiency"]["p50"] > 0.5
            assert entry["latency_source"] == "server" and entry["client"] is None
        assert entries["sequential"]["branches"] == []
        branches = {b["step"]: b for b in entries["parallel"]["branches"]}
        assert set(branches) == {"search_web", "search_docs", "analyze_data"}
        assert branches["search_web"]["verdict"] == "free"  # a tool re-sends no context
        assert branches["analyze_data"]["usd_per_ms_saved"] > 0
        (fork,) = entries["parallel"]["forks"]
        assert sorted(fork["steps"]) == sorted(branches)

    def test_headline_is_at_real_speed_and_names_the_choice(self, reports):
        """The headline's numbers are summary.json's divided by the time scale."""
        result = reports["spans"]
        entries = _entries(result)
        for v in result.headline["variants"]:
            entry = entries[v["variant"]]
            assert v["latency_source"] == "server"
            assert v["e2e_ms"]["p50"] == pytest.approx(entry["e2e_ms_unscaled"]["p50"])
            assert v["ttfc_ms"]["p50"] == pytest.approx(
                entry["ttfc_ms"]["p50"] / report_dirs.TIME_SCALE
            )
            assert v["cost_usd_per_run"] == pytest.approx(entry["cost_usd_per_run"]["mean"])
        (pick,) = result.headline["recommendations"]
        assert pick["baseline"] == "sequential" and pick["fastest"] == "parallel"
        text = result.headline["summary"]
        p50 = {v["variant"]: v["e2e_ms"]["p50"] for v in result.headline["variants"]}
        assert f"{p50['parallel'] / 1000:.1f} s instead of {p50['sequential'] / 1000:.1f} s" in text
        assert "$0.002/s" in text  # the scenario's value of time

    def test_markdown_fits_a_pull_request_comment(self, reports):
        """report.md: the headline, every variant, every branch verdict, under 60 lines."""
        text = reports["spans"].markdown_path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 60
        for variant in report_dirs.VARIANTS:
            assert variant.replace("_", r"\_") in text
        for verdict in ("worth it", "free"):
            assert verdict in text
        assert "report.html" in text and "Data quality: no findings" in text


class TestSamplesOnly:
    """A run directory of ``parabench load``: client samples, no spans."""

    def test_client_side_figures(self, reports):
        """Every variant's figures are client side; a torn and a foreign line are findings."""
        result = reports["samples"]
        summary = _summary(result)
        assert summary["source"] == "samples" and summary["runs"] == 0 and summary["samples"] == 16
        assert set(summary["data_quality"]) == {"invalid_sample_line", "unknown_sample_schema"}
        entries = _entries(result)
        assert set(entries) == {"sequential", "parallel"}
        parallel = entries["parallel"]
        assert parallel["runs"] == 0 and parallel["latency_source"] == "client"
        client = parallel["client"]
        assert client["runs"] == 8 and client["outcomes"]["rejected"] == 1
        assert client["rejected_rate"] == pytest.approx(1 / 8)
        assert client["e2e_ms"]["p50"] == pytest.approx(
            np.median([130, 131, 132, 133, 160, 161, 162])
        )
        assert [level["concurrency"] for level in client["concurrency_levels"]] == [1, 4]
        headline = {v["variant"]: v for v in result.headline["variants"]}
        assert headline["parallel"]["latency_source"] == "client"
        assert headline["parallel"]["time_scale"] is None  # no spans: as measured

    def test_page_has_the_load_sweep_and_says_what_is_missing(self, reports):
        """The concurrency chart is drawn; sections without spans say why they are empty."""
        page = _page(reports["samples"])
        for section_id, heading in SECTIONS:
            assert f"<h2>{heading}</h2>" in page, section_id
        assert 'id="chart-concurrency"' in page and 'id="chart-e2e-cdf"' in page
        assert "No harness runs: no declared DAG to read." in page
        assert "invalid_sample_line" in page
        assert "client" in reports["samples"].markdown_path.read_text(encoding="utf-8")


class TestSpansAndSamples:
    """A run directory of ``parabench demo``: server spans and client samples."""

    def test_client_leads_where_there_are_samples(self, reports, dirs):
        """Variants with samples report client latency; the one without stays server side."""
        result = reports["both"]
        summary = _summary(result)
        assert summary["source"] == "spans+samples"
        entries = _entries(result)
        assert entries["parallel"]["latency_source"] == "client"
        assert entries["parallel_capped"]["latency_source"] == "server"
        assert entries["parallel_capped"]["client"] is None
        headline = {v["variant"]: v for v in result.headline["variants"]}
        client_p50 = entries["parallel"]["client"]["e2e_ms"]["p50"]
        assert headline["parallel"]["e2e_ms"]["p50"] == pytest.approx(
            client_p50 / report_dirs.TIME_SCALE, rel=1e-4
        )
        page = _page(result)
        assert 'id="chart-concurrency"' in page
        assert len(PLOTLY_SIGNATURE.findall(page)) == 1

    def test_keeps_what_parabench_run_recorded(self, dirs, tmp_path: Path):
        """Written over a run's own summary.json, the report keeps its scenario file."""
        run_dir = tmp_path / "run"
        shutil.copytree(dirs["spans"], run_dir)
        before = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        assert before["scenario_file"].endswith("research_assistant.yaml")
        result = write_report(run_dir)
        after = _summary(result)
        assert result.summary_path == run_dir / "summary.json"
        assert after["scenario_file"] == before["scenario_file"]
        assert after["interrupted"] is False
        assert after["variants"][0]["e2e_ms"] == before["variants"][0]["e2e_ms"]

    def test_baseline_variant_is_respected(self, dirs, tmp_path: Path):
        """``baseline_variant`` changes what branches are priced and variants compared against."""
        result = write_report(dirs["spans"], tmp_path, baseline_variant="parallel_capped")
        (pick,) = result.headline["recommendations"]
        assert pick["baseline"] == "parallel_capped"
        entries = _entries(result)
        assert {b["baseline_variant"] for b in entries["parallel"]["branches"]} == {
            "parallel_capped"
        }


class TestMarkup:
    """Names and attribute values from the data are text, never markup."""

    def test_html_holds_markup_only_escaped(self, reports):
        """Outside the JSON blocks markup is entity-escaped; inside, ``<`` is ``\\u003c``."""
        page = _page(reports["markup"])
        for hostile in report_dirs.MARKUP:
            assert hostile not in page
        ours = PLOTLY_BUNDLE.sub("", page, count=1)
        assert "<img" not in ours and "<svg" not in ours and "<b>" not in ours
        assert ours.count("<script") == ours.count("</script>") == 1 + ours.count('class="figure"')
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        blocks = re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S)
        assert blocks and all("<" not in block for block in blocks)
        text = " ".join(json.dumps(json.loads(block)) for block in blocks)
        assert "web&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in text  # a plotly label

    def test_markdown_holds_markup_only_escaped(self, reports):
        """report.md shows names as text: no tag, and no name breaks a table row."""
        text = reports["markup"].markdown_path.read_text(encoding="utf-8")
        assert "<" not in text
        assert 'capped"&gt;&lt;svg onload=alert(4)&gt;' in text
        tables: list[list[str]] = [[]]
        for line in text.splitlines():
            if line.startswith("|"):
                tables[-1].append(line)
            elif tables[-1]:
                tables.append([])
        tables = [rows for rows in tables if rows]
        # Within each table (variants, failures, bottlenecks) every row has as many cells.
        assert len(tables) >= 2
        for rows in tables:
            assert len({len(re.split(r"(?<!\\)\|", line)) for line in rows}) == 1, rows

    def test_foreign_traces_are_inferred_from_overlap(self, reports):
        """A foreign trace's overlapping siblings are reported, labelled as inferred."""
        page = _page(reports["markup"])
        assert "independent (inferred from overlap)" in page
        assert "&lt;b&gt;fetch&lt;/b&gt;" in page
        assert "Inferred from overlap: 1 pair(s)" in reports["markup"].headline["summary"]


class TestBadInput:
    """A run directory that cannot be reported is a clear error, never a traceback."""

    def test_missing_and_empty_directories(self, tmp_path: Path):
        """No directory, or one without spans or samples: ParabenchError with a fix."""
        with pytest.raises(ParabenchError, match="no such run directory") as missing:
            write_report(tmp_path / "nowhere")
        assert missing.value.fix
        with pytest.raises(ParabenchError, match=r"neither spans\.jsonl nor samples\.jsonl"):
            write_report(tmp_path)
        (tmp_path / "spans.jsonl").write_text("not json\n", encoding="utf-8")
        with pytest.raises(TraceDataError, match="nothing to report"):
            write_report(tmp_path)
        assert not (tmp_path / "report.html").exists()

    def test_unwritable_output(self, dirs, tmp_path: Path):
        """An output directory that cannot be made is a ParabenchError naming it."""
        blocker = tmp_path / "a-file"
        blocker.write_text("", encoding="utf-8")
        with pytest.raises(ParabenchError, match="cannot write the report") as failed:
            write_report(dirs["samples"], blocker / "out")
        assert str(blocker) in failed.value.message


class TestReportCommand:
    """``parabench report RUN_DIR`` as a user runs it."""

    def test_prints_the_headline_and_the_paths(self, dirs, tmp_path: Path):
        """Exit 0; the summary paragraph, each variant and the three paths are printed."""
        out = tmp_path / "out"
        proc = parabench("report", dirs["both"], "--out", out, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Ship parallel" in proc.stdout or "Keep sequential" in proc.stdout
        for variant in report_dirs.VARIANTS:
            assert variant in proc.stdout
        for name in ("report.html", "report.md", "summary.json"):
            assert str(out / name) in proc.stdout
            assert (out / name).is_file()

    @pytest.mark.parametrize("make", ["missing", "empty"])
    def test_bad_run_dir_exits_2(self, make: str, tmp_path: Path):
        """A missing or empty run directory: exit 2, a message with a fix, no traceback."""
        target = tmp_path / "run"
        if make == "empty":
            target.mkdir()
        proc = parabench("report", target, cwd=tmp_path)
        assert_clean_failure(proc)
        assert "fix:" in proc.stderr
