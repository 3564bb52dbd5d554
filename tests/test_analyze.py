"""``parabench analyze``: the command a user types on trace files, run as a real subprocess."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_clean_failure, parabench

DATA = Path(__file__).parent / "data"
JAEGER_CASES: dict[str, Any] = json.loads(
    (DATA / "critical_path" / "jaeger_cp_fixtures.json").read_text()
)["cases"]


@pytest.fixture(scope="module")
def research(research_dir: Path) -> Path:
    """Spans of every research_assistant variant, 6 runs each (see conftest.py)."""
    return research_dir / "spans.jsonl"


@pytest.fixture(scope="module")
def research_json(research: Path) -> dict[str, Any]:
    """The ``--format json`` document of those spans."""
    result = parabench("analyze", research, "--format", "json", cwd=research.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def jaeger_document(cases: dict[str, Any]) -> dict[str, Any]:
    """The critical-path fixture cases as one Jaeger UI download (one trace per case)."""
    traces = []
    for i, case in enumerate(cases.values(), 1):
        trace_id = f"{i:032x}"
        spans = []
        for s in case["spans"]:
            refs = []
            if s["parentSpanID"]:
                refs = [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": s["parentSpanID"]}]
            spans.append(
                {
                    "traceID": trace_id,
                    "spanID": s["spanID"],
                    "operationName": s.get("name") or s["spanID"],
                    "references": refs,
                    "startTime": s["startTime"],
                    "duration": s["duration"],
                    "tags": [{"key": "span.kind", "type": "string", "value": s["kind"].lower()}],
                    "logs": [],
                    "processID": "p1",
                }
            )
        traces.append(
            {"traceID": trace_id, "spans": spans, "processes": {"p1": {"serviceName": "svc"}}}
        )
    return {"data": traces, "total": 0, "limit": 0, "offset": 0, "errors": None}


class TestJsonOutput:
    """``--format json`` on harness traces: every section the issue asks for."""

    def test_top_level_sections(self, research_json: dict[str, Any]) -> None:
        """traces, bottlenecks, branches, variants and data_quality are all there."""
        for key in (
            "traces",
            "bottlenecks",
            "branches",
            "forks",
            "variants",
            "comparisons",
            "what_if",
            "data_quality",
        ):
            assert key in research_json, key
        assert research_json["harness_runs"] == 18
        assert research_json["data_quality"] == {}

    def test_traces_have_critical_paths_latest_first(self, research_json: dict[str, Any]) -> None:
        """Each trace's sections run backwards in time, touch, and add up to its e2e."""
        assert len(research_json["traces"]) == 18
        for trace in research_json["traces"]:
            path = trace["critical_path"]
            assert {"span_id", "name", "start_ms", "end_ms"} <= set(path[0])
            assert path[0]["end_ms"] == pytest.approx(trace["e2e_ms"])
            assert path[-1]["start_ms"] == pytest.approx(0.0)
            for later, earlier in itertools.pairwise(path):
                assert later["start_ms"] == pytest.approx(earlier["end_ms"])
            assert any(s["name"] == "step draft" for s in path)

    def test_branches_are_priced_per_step(self, research_json: dict[str, Any]) -> None:
        """Both parallel variants list the three research branches with a verdict."""
        rows = research_json["branches"]
        assert {(r["variant"], r["step"]) for r in rows} == {
            (v, s)
            for v in ("parallel", "parallel_capped")
            for s in ("search_web", "search_docs", "analyze_data")
        }
        for row in rows:
            assert {"ms_saved", "extra_cost_usd", "usd_per_ms_saved", "verdict"} <= set(row)
            assert row["verdict"] in {"worth_it", "not_worth_it", "free"}
            assert row["ms_saved"] > 0
        web = [r for r in rows if r["step"] == "search_web"]
        assert all(r["verdict"] == "free" for r in web)  # a tool: same cost in every variant

    def test_bottlenecks_cover_every_step(self, research_json: dict[str, Any]) -> None:
        """Every step of every variant has a bottleneck row; shares add up to about 1."""
        rows = research_json["bottlenecks"]
        for variant in ("sequential", "parallel", "parallel_capped"):
            mine = [r for r in rows if r["variant"] == variant]
            assert {"plan", "search_web", "search_docs", "analyze_data", "draft"} <= {
                r["step"] for r in mine
            }
            assert sum(r["share_of_e2e"] for r in mine) == pytest.approx(1.0, abs=0.01)

    def test_variants_and_comparisons(self, research_json: dict[str, Any]) -> None:
        """Parallel is faster than the sequential baseline and costs more."""
        names = {v["variant"] for v in research_json["variants"]}
        assert names == {"sequential", "parallel", "parallel_capped"}
        parallel = next(c for c in research_json["comparisons"] if c["variant"] == "parallel")
        assert parallel["delta_e2e_p50_ms"] < 0
        assert parallel["delta_cost_usd_per_run"] > 0


class TestBaselineVariant:
    def test_override(self, research: Path) -> None:
        """--baseline-variant prices branches and deltas against the variant named."""
        result = parabench(
            "analyze", research, "--format", "json", "--baseline-variant", "parallel_capped",
            cwd=research.parent,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert {r["baseline_variant"] for r in out["branches"]} == {"parallel_capped"}
        assert {r["variant"] for r in out["branches"]} == {"parallel"}
        # The same prompts in both parallel variants: every branch costs nothing extra.
        assert {r["verdict"] for r in out["branches"]} == {"free"}
        assert {c["baseline"] for c in out["comparisons"]} == {"parallel_capped"}


class TestTableOutput:
    def test_readable_summary(self, research: Path) -> None:
        """The default output names each section and the verdicts in words."""
        result = parabench("analyze", research, cwd=research.parent)
        assert result.returncode == 0, result.stderr
        for text in (
            "Variants",
            "Bottlenecks",
            "Parallel branches",
            "Forks as a whole",
            "critical path",
        ):
            assert text in result.stdout, text
        assert "worth it" in result.stdout or "free" in result.stdout


class TestForeignTraces:
    def test_jaeger_download_gets_jaeger_critical_paths(self, tmp_path: Path) -> None:
        """The 9 Jaeger UI fixture traces, as one Jaeger JSON file, give the expected sections."""
        path = tmp_path / "jaeger.json"
        path.write_text(json.dumps(jaeger_document(JAEGER_CASES), indent=2))
        result = parabench("analyze", path, "--format", "json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        by_trace = {t["trace_id"]: t for t in out["traces"]}
        assert len(by_trace) == len(JAEGER_CASES)
        for i, case in enumerate(JAEGER_CASES.values(), 1):
            trace = by_trace[f"{i:032x}"]
            assert trace["method"] == "span_tree"
            root = case["expected_sections"][-1][1]  # the earliest section starts with the root
            got = [[s["span_id"], s["start_ms"], s["end_ms"]] for s in trace["critical_path"]]
            want = [
                [sid, (a - root) / 1000, (b - root) / 1000]
                for sid, a, b in case["expected_sections"]
            ]
            assert [g[0] for g in got] == [w[0] for w in want]
            flat = [t for g in got for t in g[1:]]
            assert flat == pytest.approx([t for w in want for t in w[1:]])
        assert out["bottlenecks"], "operations ranked for foreign traces"

    def test_mixed_good_and_bad_lines_report_findings(self, research: Path, tmp_path: Path) -> None:
        """A truncated line and garbage bytes are findings; the good spans are still analysed."""
        lines = research.read_bytes().splitlines(keepends=True)
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(
            b"".join(lines) + b"\xff\xfe not utf-8\n" + lines[0][: len(lines[0]) // 2] + b"\n"
        )
        result = parabench("analyze", bad, "--format", "json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["harness_runs"] == 18
        assert out["data_quality"]["undecodable_bytes"]["count"] == 1
        assert out["data_quality"]["truncated_or_invalid_json"]["count"] == 1


class TestBadInput:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A path that does not exist: exit 2, one clear message."""
        result = parabench("analyze", tmp_path / "nope.jsonl", cwd=tmp_path)
        assert_clean_failure(result)
        assert "nope.jsonl" in result.stderr

    def test_not_a_trace_file(self, tmp_path: Path) -> None:
        """Binary garbage yields no spans: exit 2 with the findings and the formats accepted."""
        path = tmp_path / "image.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        result = parabench("analyze", path, cwd=tmp_path)
        assert_clean_failure(result)
        assert "no spans could be read" in result.stderr
        assert "Jaeger" in result.stderr

    def test_unknown_format(self, research: Path) -> None:
        """--format must be table or json."""
        result = parabench("analyze", research, "--format", "yaml", cwd=research.parent)
        assert_clean_failure(result)
        assert "--format" in result.stderr

    def test_negative_tolerance(self, research: Path) -> None:
        """A negative overlap tolerance is refused."""
        result = parabench("analyze", research, "--overlap-tolerance", "-1", cwd=research.parent)
        assert_clean_failure(result)
