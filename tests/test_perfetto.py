"""The Perfetto export: valid trace-event JSON, every span kept, no overlapping slices on a track.

Perfetto's own importer (trace_processor) downloads a binary at run time, so it
cannot run here. ``perfetto_import`` below replays the rules its slice tracker
applies to complete events instead: events sorted by timestamp (file order on
ties), times read as integer nanoseconds, and a slice that starts inside an open
one and ends after it dropped.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import assert_clean_failure, parabench
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis.ingest import SPAN_COLUMNS, read_spans
from harness.report.perfetto import TRACE_FILE_NAME, to_trace_events, write_trace_events

DATA = Path(__file__).parent / "data"
BASE_NS = 1_795_633_314_635_386_087  # a realistic unix time: big enough to lose precision
REQUIRED = {
    "X": {"name", "ph", "ts", "dur", "pid", "tid"},
    "i": {"name", "ph", "ts", "pid", "tid", "s"},
    "M": {"name", "ph", "pid", "args"},
}


@pytest.fixture(scope="module")
def research(research_dir: Path) -> Path:
    """A run directory of every research_assistant variant (see conftest.py)."""
    return research_dir


@pytest.fixture(scope="module")
def research_spans(research: Path) -> pd.DataFrame:
    spans, quality = read_spans(research / "spans.jsonl")
    assert quality.clean, quality.to_dict()
    return spans


@pytest.fixture(scope="module")
def research_doc(research: Path, research_spans: pd.DataFrame) -> dict[str, Any]:
    """The export written to disk and parsed back with the standard library."""
    path = research / "export.json"
    write_trace_events(research_spans, path)
    return json.loads(path.read_text(encoding="utf-8"))


# --- checks on a trace-event document -------------------------------------------


def ns(us: float) -> int:
    """Microseconds as the nanoseconds Perfetto reads; truncating and rounding importers agree."""
    truncated, rounded = int(us * 1000), round(us * 1000)
    assert truncated == rounded, us
    return truncated


@dataclass
class Slice:
    """One X event in integer nanoseconds."""

    span_id: str
    start: int
    end: int
    track: tuple[int, int]


def slices(doc: dict[str, Any]) -> list[Slice]:
    out = []
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            start = ns(e["ts"])
            out.append(
                Slice(e["args"]["span_id"], start, start + ns(e["dur"]), (e["pid"], e["tid"]))
            )
    return out


def partial_overlaps(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Pairs of slices on one track that are neither disjoint nor nested (touching is disjoint)."""
    by_track: dict[tuple[int, int], list[Slice]] = defaultdict(list)
    for s in slices(doc):
        by_track[s.track].append(s)
    bad = []
    for track in by_track.values():
        for i, a in enumerate(track):
            for b in track[i + 1 :]:
                disjoint = a.end <= b.start or b.end <= a.start
                nested = (a.start <= b.start and b.end <= a.end) or (
                    b.start <= a.start and a.end <= b.end
                )
                if not (disjoint or nested):
                    bad.append((a.span_id, b.span_id))
    return bad


@dataclass
class Imported:
    """What Perfetto's slice tracker makes of the file."""

    dropped: list[str]
    drawn_under: dict[str, str | None]  # span id -> span id of the X slice drawn above it


def perfetto_import(doc: dict[str, Any]) -> Imported:
    """Replay SliceTracker::MaybeCloseStack on the thread-track events, in Perfetto's order."""
    events = [e for e in doc["traceEvents"] if e["ph"] == "X" or (e["ph"] == "i" and e["s"] == "t")]
    events.sort(key=lambda e: ns(e["ts"]))  # stable: equal timestamps keep file order
    stacks: dict[tuple[int, int], list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    result = Imported([], {})
    for e in events:
        ts, dur = ns(e["ts"]), ns(e.get("dur", 0))
        stack = stacks[(e["pid"], e["tid"])]
        dropped = False
        for i in range(len(stack) - 1, -1, -1):
            start, length, _ = stack[i]
            end = start + length
            if end < ts or (end == ts and not (length == 0 and dur == 0)):
                stack.pop()  # Perfetto pops the top, whichever entry matched
                continue
            if ts < end < ts + dur:
                dropped = True
                break
        if dropped:
            result.dropped.append(e["args"].get("span_id", e["name"]))
            continue
        if e["ph"] == "X":
            above = [x for _, _, x in stack if x["ph"] == "X"]
            result.drawn_under[e["args"]["span_id"]] = (
                above[-1]["args"]["span_id"] if above else None
            )
        stack.append((ts, dur, e))
    return result


def assert_sound(doc: dict[str, Any], spans: pd.DataFrame) -> None:
    """Every span once, no partial overlap on a track, nothing dropped, drawn under its parent."""
    x = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(x) == len(spans)
    assert sorted(e["args"]["span_id"] for e in x) == sorted(spans["span_id"])
    assert partial_overlaps(doc) == []
    imported = perfetto_import(doc)
    assert imported.dropped == []
    parent_of = {e["args"]["span_id"]: e["args"]["parent_span_id"] for e in x}
    for span_id, above in imported.drawn_under.items():
        assert above in (None, parent_of[span_id]), (span_id, above)


def frame(rows: list[tuple[Any, ...]], trace_id: str = "t1") -> pd.DataFrame:
    """A span table from ``(span_id, parent_id, start_ns, end_ns[, name[, attributes]])`` rows."""
    records = []
    for row in rows:
        span_id, parent, start, end, *rest = row
        records.append(
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent or "",
                "name": rest[0] if rest else span_id,
                "kind": "INTERNAL",
                "start_ns": BASE_NS + start,
                "end_ns": BASE_NS + end,
                "status": 0,
                "attributes": rest[1] if len(rest) > 1 else {},
                "events": [],
            }
        )
    return pd.DataFrame(records, columns=SPAN_COLUMNS)


def track_of(doc: dict[str, Any]) -> dict[str, int]:
    return {e["args"]["span_id"]: e["tid"] for e in doc["traceEvents"] if e["ph"] == "X"}


# --- tests ------------------------------------------------------------------------


class TestHarnessTraces:
    """Export of real harness runs of every research_assistant variant."""

    def test_loads_as_trace_event_json(self, research_doc: dict[str, Any]) -> None:
        """The file is one JSON object with traceEvents, displayTimeUnit and otherData."""
        assert list(research_doc) == ["displayTimeUnit", "otherData", "traceEvents"]
        assert research_doc["displayTimeUnit"] == "ms"
        assert research_doc["traceEvents"]

    def test_every_event_has_its_phase_keys(self, research_doc: dict[str, Any]) -> None:
        """X, i and M events carry the keys their phase requires, with the right types."""
        for event in research_doc["traceEvents"]:
            assert REQUIRED[event["ph"]] <= event.keys(), event
            assert isinstance(event["pid"], int) and isinstance(event.get("tid", 0), int)
            if event["ph"] == "M":
                assert event["name"] in {"process_name", "thread_name", "thread_sort_index"}
                assert ("name" in event["args"]) != ("sort_index" in event["args"])
            else:
                assert event["ts"] >= 0 and event.get("dur", 0) >= 0

    def test_sound_on_every_track(
        self, research_doc: dict[str, Any], research_spans: pd.DataFrame
    ) -> None:
        """One slice per span, no partial overlap on a track, nothing Perfetto would drop."""
        assert_sound(research_doc, research_spans)

    def test_times_are_exact(
        self, research_doc: dict[str, Any], research_spans: pd.DataFrame
    ) -> None:
        """ts and dur give back each span's start and duration to the nanosecond."""
        origin = int(research_doc["otherData"]["time_origin_unix_ns"])
        by_id = research_spans.set_index("span_id")
        for s in slices(research_doc):
            assert s.start == by_id.start_ns[s.span_id] - origin
            assert s.end == by_id.end_ns[s.span_id] - origin

    def test_parallel_research_steps_on_three_tracks(
        self, research_doc: dict[str, Any], research_spans: pd.DataFrame
    ) -> None:
        """In every parallel run the three research steps sit on three different tracks."""
        tracks = track_of(research_doc)
        runs = research_spans[research_spans.name == "invoke_agent research_assistant"]
        parallel = runs[[a["parabench.variant"] == "parallel" for a in runs.attributes]]
        assert len(parallel) == 6
        for trace_id in parallel.trace_id:
            steps = research_spans[
                (research_spans.trace_id == trace_id)
                & research_spans.name.isin(
                    ["step search_web", "step search_docs", "step analyze_data"]
                )
            ]
            assert len({tracks[s] for s in steps.span_id}) == 3

    def test_sequential_run_on_one_track(
        self, research_doc: dict[str, Any], research_spans: pd.DataFrame
    ) -> None:
        """A sequential run, steps and operations included, is drawn on a single track."""
        tracks = track_of(research_doc)
        runs = research_spans[research_spans.name == "invoke_agent research_assistant"]
        sequential = runs[[a["parabench.variant"] == "sequential" for a in runs.attributes]]
        assert len(sequential) == 6
        for trace_id in sequential.trace_id:
            in_trace = research_spans[research_spans.trace_id == trace_id]
            assert len({tracks[s] for s in in_trace.span_id}) == 1

    def test_cards_are_instants_on_the_run_track(
        self, research_doc: dict[str, Any], research_spans: pd.DataFrame
    ) -> None:
        """Each run's five cards are instant events on its run span's track, named by step."""
        tracks = track_of(research_doc)
        cards = [e for e in research_doc["traceEvents"] if e["ph"] == "i" and e["cat"] == "card"]
        runs = research_spans[research_spans.name == "invoke_agent research_assistant"]
        assert len(cards) == 5 * len(runs)
        for card in cards:
            assert card["tid"] == tracks[card["args"]["span_id"]]
            assert card["name"].startswith("card ")
            assert card["name"].endswith(card["args"]["attributes"]["parabench.step.id"])

    def test_processes_and_tracks_are_named(self, research_doc: dict[str, Any]) -> None:
        """Each run is a process named by scenario, variant and run id; tracks are run/branch N."""
        meta = [e for e in research_doc["traceEvents"] if e["ph"] == "M"]
        processes = [e["args"]["name"] for e in meta if e["name"] == "process_name"]
        assert len(processes) == 18
        for name in processes:
            head, variant, run = name.split(" · ")
            assert head == "invoke_agent research_assistant"
            assert variant in {"sequential", "parallel", "parallel_capped"}
            assert run.startswith("run ") and len(run) == 12
        threads = {e["args"]["name"] for e in meta if e["name"] == "thread_name"}
        assert {"run", "branch 1", "branch 2"} <= threads
        tids = [e["tid"] for e in meta if e["name"] == "thread_name"]
        assert len(tids) == len(set(tids)), "thread ids must be unique across processes"
        assert not set(tids) & {e["pid"] for e in meta}


class TestTrackAssignment:
    """Hand-built spans: the track rule and bad data."""

    def test_partial_overlap_forces_separate_tracks(self) -> None:
        """Two siblings that overlap in part go on two tracks."""
        spans = frame([("r", None, 0, 100), ("a", "r", 10, 50), ("b", "r", 40, 80)])
        doc = to_trace_events(spans)
        tracks = track_of(doc)
        assert tracks["a"] != tracks["b"]
        assert_sound(doc, spans)

    def test_nesting_stays_on_one_track(self) -> None:
        """A chain of nested spans is one call stack on one track."""
        spans = frame(
            [("r", None, 0, 100), ("a", "r", 10, 90), ("b", "a", 20, 80), ("c", "b", 30, 30)]
        )
        doc = to_trace_events(spans)
        assert len(set(track_of(doc).values())) == 1
        assert perfetto_import(doc).drawn_under == {"r": None, "a": "r", "b": "a", "c": "b"}

    def test_touching_spans_share_a_track(self) -> None:
        """A span that starts exactly when its sibling ends can reuse the sibling's track."""
        spans = frame([("r", None, 0, 100), ("a", "r", 0, 40), ("b", "r", 40, 100)])
        doc = to_trace_events(spans)
        assert len(set(track_of(doc).values())) == 1
        assert_sound(doc, spans)

    def test_touching_stays_touching_after_rounding(self) -> None:
        """Boundaries whose µs value is inexact in binary still touch, not overlap by 1 ns."""
        # 4.35 * 1000 == 4349.999999999999 in doubles: a truncating reader would lose 1 ns.
        spans = frame([("r", None, 0, 8700), ("a", "r", 0, 4350), ("b", "r", 4350, 8700)])
        doc = to_trace_events(spans)
        by_id = {s.span_id: s for s in slices(doc)}
        assert by_id["a"].end == by_id["b"].start == 4350
        assert_sound(doc, spans)

    def test_end_before_start_has_zero_duration(self) -> None:
        """A span ending before it starts is kept with duration 0 and a note saying why."""
        spans = frame([("r", None, 0, 100), ("bad", "r", 50, 20)])
        doc = to_trace_events(spans)
        bad = next(e for e in doc["traceEvents"] if e["ph"] == "X" and e["name"] == "bad")
        assert bad["dur"] == 0
        assert "before it starts" in bad["args"]["note"]
        assert_sound(doc, spans)

    def test_orphans_are_roots(self) -> None:
        """A span whose parent is missing is exported as a root of its own, with a note."""
        spans = frame([("r", None, 0, 100), ("o", "missing", 10, 200), ("c", "o", 20, 30)])
        doc = to_trace_events(spans)
        orphan = next(e for e in doc["traceEvents"] if e["ph"] == "X" and e["name"] == "o")
        assert "not in the trace" in orphan["args"]["note"]
        assert perfetto_import(doc).drawn_under["o"] is None
        assert_sound(doc, spans)

    def test_skewed_child_is_not_drawn_under_its_parent(self) -> None:
        """Children outside their parent's time (clock skew) go where they fit, not under it."""
        spans = frame([("r", None, 0, 100), ("late", "r", 50, 150), ("early", "r", -10, 20)])
        doc = to_trace_events(spans)
        tracks = track_of(doc)
        assert tracks["r"] not in (tracks["late"], tracks["early"])
        drawn_under = perfetto_import(doc).drawn_under
        assert drawn_under["late"] is None and drawn_under["early"] is None
        notes = {e["name"]: e["args"].get("note", "") for e in doc["traceEvents"] if e["ph"] == "X"}
        assert "clock skew" in notes["late"] and "clock skew" in notes["early"]
        assert_sound(doc, spans)

    def test_zero_length_spans_at_one_instant(self) -> None:
        """Zero-length siblings at the same instant are never drawn under one another."""
        spans = frame([("r", None, 0, 10), *((f"z{i}", "r", 5, 5) for i in range(4))])
        doc = to_trace_events(spans)
        assert_sound(doc, spans)
        assert track_of(doc)["z0"] == track_of(doc)["r"]

    def test_equal_intervals_parent_first(self) -> None:
        """A child with exactly its parent's interval follows it in the file, so it nests."""
        spans = frame([("c", "p", 0, 50), ("p", None, 0, 50)])
        doc = to_trace_events(spans)
        assert [e["name"] for e in doc["traceEvents"] if e["ph"] == "X"] == ["p", "c"]
        assert perfetto_import(doc).drawn_under == {"p": None, "c": "p"}

    def test_markup_is_plain_string_data(self, tmp_path: Path) -> None:
        """Names and attributes that look like HTML are kept verbatim as JSON strings."""
        markup = "<img src=x onerror=alert(1)>"
        spans = frame([("r", None, 0, 10, markup, {"note": markup, "</script>": "x"})])
        path = tmp_path / "t.json"
        write_trace_events(spans, path)
        event = next(e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X")
        assert event["name"] == markup
        assert event["args"]["attributes"] == {"note": markup, "</script>": "x"}

    def test_non_finite_numbers_become_strings(self) -> None:
        """NaN and infinity in attributes are spelled as strings, so the JSON stays standard."""
        spans = frame([("r", None, 0, 10, "r", {"a": math.nan, "b": [1.0, math.inf]})])
        doc = to_trace_events(spans)
        text = json.dumps(doc, allow_nan=False)
        assert json.loads(text)["traceEvents"][-1]["args"]["attributes"] == {
            "a": "nan",
            "b": [1.0, "inf"],
        }

    def test_traces_are_separate_processes(self) -> None:
        """Spans of two traces never share a process or a track."""
        spans = pd.concat([frame([("a", None, 0, 10)], "t1"), frame([("b", None, 0, 10)], "t2")])
        doc = to_trace_events(spans)
        x = [e for e in doc["traceEvents"] if e["ph"] == "X"]
        assert len({e["pid"] for e in x}) == 2 and len({e["tid"] for e in x}) == 2

    def test_empty_table(self) -> None:
        """No spans give a valid document with no events."""
        doc = to_trace_events(frame([]))
        assert doc["traceEvents"] == [] and doc["otherData"]["spans"] == 0


UNITS_NS = [1, 7, 1000, 123_457]


@st.composite
def span_tables(draw: st.DrawFn) -> pd.DataFrame:
    """Random span trees: nested, skewed, zero-length, reversed and orphaned spans."""
    n = draw(st.integers(1, 30))
    unit = draw(st.sampled_from(UNITS_NS))
    rows: list[tuple[Any, ...]] = []
    bounds: list[tuple[int, int]] = []
    for i in range(n):
        parent = draw(st.integers(-2, i - 1))  # -1 root, -2 orphan
        if parent >= 0 and draw(st.booleans()):
            lo, hi = bounds[parent]  # nested inside the parent
            start = draw(st.integers(lo, max(lo, hi)))
            end = draw(st.integers(start, max(start, hi)))
        else:  # anywhere: skew, overlap, reversed
            start = draw(st.integers(0, 60))
            end = start + draw(st.integers(-5, 40))
        bounds.append((start, max(start, end)))
        parent_id = {-1: None, -2: "gone"}.get(parent, f"s{parent}")
        rows.append((f"s{i}", parent_id, start * unit, end * unit))
    return frame(draw(st.permutations(rows)))


class TestProperties:
    """Invariants on random span trees."""

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(spans=span_tables())
    def test_no_partial_overlap_and_nothing_dropped(self, spans: pd.DataFrame) -> None:
        """Every span appears once; tracks hold only disjoint or nested slices."""
        assert_sound(to_trace_events(spans), spans)


class TestExportCommand:
    """``parabench export`` as a user runs it."""

    def test_exports_a_run_directory(self, research: Path, tmp_path: Path) -> None:
        """A run directory gives trace.perfetto.json beside its spans and exit code 0."""
        result = parabench("export", research, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        out = research / TRACE_FILE_NAME
        assert str(out) in result.stdout
        assert "https://ui.perfetto.dev" in result.stdout
        doc = json.loads(out.read_text(encoding="utf-8"))
        assert doc["otherData"]["spans"] == len(read_spans(research / "spans.jsonl")[0])

    def test_exports_a_jaeger_file_to_out(self, tmp_path: Path) -> None:
        """A Jaeger JSON download exports too, to the path given with -o."""
        out = tmp_path / "jaeger.json"
        result = parabench(
            "export", DATA / "ingest" / "jaeger_ui_download.json", "-o", out, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        spans, _ = read_spans(DATA / "ingest" / "jaeger_ui_download.json")
        assert_sound(json.loads(out.read_text(encoding="utf-8")), spans)

    def test_missing_path_fails_cleanly(self, tmp_path: Path) -> None:
        """A path that does not exist exits 2 with a message and no traceback."""
        result = parabench("export", tmp_path / "nope", cwd=tmp_path)
        assert_clean_failure(result)
        assert "no such file or directory" in result.stderr

    def test_file_without_spans_fails_cleanly(self, tmp_path: Path) -> None:
        """A file with nothing readable exits 2 and says no spans could be read."""
        empty = tmp_path / "spans.jsonl"
        empty.write_text("not json\n")
        result = parabench("export", tmp_path, cwd=tmp_path)
        assert_clean_failure(result)
        assert "no spans could be read" in result.stderr
        assert not (tmp_path / TRACE_FILE_NAME).exists()

    def test_unwritable_output_fails_cleanly(self, research: Path, tmp_path: Path) -> None:
        """An output path that cannot be created exits 2 with a message and no traceback."""
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        result = parabench("export", research, "-o", blocker / "trace.json", cwd=tmp_path)
        assert_clean_failure(result)
        assert "cannot write the export" in result.stderr

    def test_reports_data_quality_findings(self, research: Path, tmp_path: Path) -> None:
        """Bad lines do not stop the export; the findings are named on stderr."""
        spans = tmp_path / "spans.jsonl"
        first = (research / "spans.jsonl").read_text(encoding="utf-8").splitlines()[0]
        spans.write_text(first + "\n" + first[:40] + "\n", encoding="utf-8")
        result = parabench("export", spans, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "truncated_or_invalid_json: 1" in result.stderr
        assert (tmp_path / TRACE_FILE_NAME).is_file()

    def test_unknown_format_fails_cleanly(self, research: Path, tmp_path: Path) -> None:
        """An unknown --format exits 2 naming the formats there are."""
        result = parabench("export", research, "--format", "xml", cwd=tmp_path)
        assert_clean_failure(result)
        assert "perfetto" in result.stderr
