"""Critical path and exclusive critical time, against external oracles and properties.

The fixture files in tests/data/critical_path are Apache-2.0 test data from
jaegertracing/jaeger-ui (commit c321fb32bbca0bdce9e8c2d40afb35abbf54c12b) and
uber-research/CRISP (commit 2710c0b9d52e47be91240a400ca7f85ae3a43fcf); their
expected values were written by those projects, not by us.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis.critical_path import (
    CpSpan,
    Section,
    critical_path,
    exclusive_by_name,
    exclusive_critical_time,
)

DATA = Path(__file__).parent / "data" / "critical_path"
JAEGER: dict[str, Any] = json.loads((DATA / "jaeger_cp_fixtures.json").read_text())["cases"]
CRISP: dict[str, Any] = json.loads((DATA / "crisp_cp_fixtures.json").read_text())["cases"]
CRISP_STRICT = [name for name, case in CRISP.items() if case["strict_ok"]]
CRISP_SKEWED = [name for name, case in CRISP.items() if not case["strict_ok"]]
CRISP_ALL = sorted(CRISP, key=lambda name: int(name))


def to_spans(case: dict[str, Any]) -> list[CpSpan]:
    """Fixture spans (startTime + duration) as CpSpans."""
    return [
        CpSpan(
            span_id=s["spanID"],
            parent_id=s["parentSpanID"],
            start=s["startTime"],
            end=s["startTime"] + s["duration"],
            kind=s.get("kind", "INTERNAL"),
            name=s.get("name", ""),
        )
        for s in case["spans"]
    ]


def triples(sections: list[Section]) -> list[list[Any]]:
    """Sections in the fixtures' [spanID, start, end] form."""
    return [[s.span_id, s.start, s.end] for s in sections]


def section_sums(sections: list[Section]) -> dict[str, float]:
    """Total section length per span id."""
    sums: dict[str, float] = defaultdict(float)
    for s in sections:
        sums[s.span_id] += s.end - s.start
    return dict(sums)


class TestJaegerFixtures:
    """The 9 jaeger-ui cases give exactly the expected section lists."""

    def test_case_count(self) -> None:
        """All 9 cases are present."""
        assert len(JAEGER) == 9

    @pytest.mark.parametrize("name", sorted(JAEGER))
    def test_sections(self, name: str) -> None:
        """The walk reproduces jaeger-ui's expected sections."""
        case = JAEGER[name]
        assert triples(critical_path(to_spans(case))) == case["expected_sections"]


class TestCrispFixtures:
    """The CRISP cases give the expected exclusive time per operation."""

    def test_case_counts(self) -> None:
        """25 cases, 21 of them strict."""
        assert len(CRISP) == 25
        assert len(CRISP_STRICT) == 21

    @pytest.mark.parametrize("name", CRISP_STRICT)
    def test_strict_walk(self, name: str) -> None:
        """Without tolerance the 21 strict cases match exactly."""
        spans = to_spans(CRISP[name])
        got = exclusive_by_name(spans, critical_path(spans))
        assert got == pytest.approx(CRISP[name]["expected_opTimeExclusive"])

    @pytest.mark.parametrize("name", CRISP_ALL)
    def test_with_crisp_tolerance(self, name: str) -> None:
        """With CRISP's 1 % overlap tolerance all 25 cases match."""
        spans = to_spans(CRISP[name])
        got = exclusive_by_name(spans, critical_path(spans, overlap_tolerance=0.01))
        assert got == pytest.approx(CRISP[name]["expected_opTimeExclusive"])

    @pytest.mark.parametrize("name", CRISP_SKEWED)
    def test_skewed_cases_need_tolerance(self, name: str) -> None:
        """The 4 non-strict cases really differ under the strict walk."""
        spans = to_spans(CRISP[name])
        got = exclusive_by_name(spans, critical_path(spans))
        assert got != pytest.approx(CRISP[name]["expected_opTimeExclusive"])

    @pytest.mark.parametrize("name", CRISP_ALL)
    def test_tolerant_sections_tile_the_root(self, name: str) -> None:
        """Even with tolerance, sections are disjoint and cover the root exactly."""
        spans = to_spans(CRISP[name])
        root = next(s for s in spans if s.parent_id is None)
        assert_tiles(critical_path(spans, overlap_tolerance=0.01), root.start, root.end)


class TestCriticalPath:
    """Hand-made cases for the walk's edge cases."""

    def test_spans_starting_at_zero(self) -> None:
        """A time of 0 is an ordinary time, not an absent one."""
        spans = [
            CpSpan("a", None, 0, 100),
            CpSpan("b", "a", 0, 40),
            CpSpan("c", "a", 50, 100),
        ]
        assert triples(critical_path(spans)) == [["c", 50, 100], ["a", 40, 50], ["b", 0, 40]]

    def test_sibling_ending_at_zero_before_a_start(self) -> None:
        """Returning to a start of 0 still looks for earlier siblings correctly."""
        spans = [CpSpan("a", None, 0, 10), CpSpan("b", "a", 0, 10), CpSpan("c", "a", 0, 0)]
        assert triples(critical_path(spans)) == [["b", 0, 10]]

    def test_child_outside_parent_is_dropped_with_subtree(self) -> None:
        """A child after its parent's end disappears together with its descendants."""
        spans = [
            CpSpan("a", None, 0, 10),
            CpSpan("late", "a", 10, 30),
            CpSpan("late-child", "late", 12, 20),
            CpSpan("early", "a", -5, 0),
        ]
        assert triples(critical_path(spans)) == [["a", 0, 10]]
        assert exclusive_critical_time(spans, critical_path(spans)) == {"a": 10}

    def test_overflowing_child_is_clipped(self) -> None:
        """A child overflowing both ends is cut to its parent, and so are its children."""
        spans = [
            CpSpan("a", None, 10, 20),
            CpSpan("b", "a", 5, 25),
            CpSpan("c", "b", 15, 30),
        ]
        assert triples(critical_path(spans)) == [["c", 15, 20], ["b", 10, 15]]

    def test_consumer_of_producer_is_not_blocking(self) -> None:
        """A CONSUMER child of a PRODUCER is ignored, whatever the kind's spelling."""
        spans = [
            CpSpan("p", None, 0, 10, kind="SPAN_KIND_PRODUCER"),
            CpSpan("c", "p", 2, 10, kind="consumer"),
            CpSpan("d", "c", 3, 9),
        ]
        assert triples(critical_path(spans)) == [["p", 0, 10]]

    def test_consumer_of_internal_is_blocking(self) -> None:
        """A CONSUMER under a non-PRODUCER parent stays on the path."""
        spans = [CpSpan("p", None, 0, 10), CpSpan("c", "p", 2, 10, kind="CONSUMER")]
        assert triples(critical_path(spans)) == [["c", 2, 10], ["p", 0, 2]]

    def test_touching_siblings_are_not_sequential(self) -> None:
        """Strictly-before (both oracles' rule): a sibling ending as the next starts is skipped."""
        spans = [CpSpan("a", None, 0, 20), CpSpan("b", "a", 0, 10), CpSpan("c", "a", 10, 20)]
        assert triples(critical_path(spans)) == [["c", 10, 20], ["a", 0, 10]]
        tolerant = critical_path(spans, overlap_tolerance=0.01)
        assert triples(tolerant) == [["c", 10, 20], ["b", 0, 10]]

    def test_zero_length_child_does_not_merge_parent_sections(self) -> None:
        """Jaeger emits a parent's sections separately around an empty child."""
        spans = [CpSpan("a", None, 0, 10), CpSpan("b", "a", 5, 5)]
        assert triples(critical_path(spans)) == [["a", 5, 10], ["a", 0, 5]]

    def test_root_is_the_orphan_ending_last(self) -> None:
        """With several parentless spans, the one ending last is the root."""
        spans = [
            CpSpan("x", None, 0, 50),
            CpSpan("y", "missing", 10, 60),
            CpSpan("z", "y", 20, 30),
        ]
        assert triples(critical_path(spans)) == [["y", 30, 60], ["z", 20, 30], ["y", 10, 20]]

    def test_end_before_start_is_clamped(self) -> None:
        """A span ending before it starts has zero length."""
        assert CpSpan("a", None, 5, 3).end == 5
        assert critical_path([CpSpan("a", None, 5, 3)]) == []

    def test_empty_input(self) -> None:
        """No spans, no path and no exclusive time."""
        assert critical_path([]) == []
        assert exclusive_critical_time([], []) == {}

    def test_negative_tolerance_rejected(self) -> None:
        """A negative (or NaN) tolerance is an error."""
        with pytest.raises(ValueError, match="overlap_tolerance"):
            critical_path([CpSpan("a", None, 0, 1)], overlap_tolerance=-0.1)
        with pytest.raises(ValueError, match="overlap_tolerance"):
            critical_path([CpSpan("a", None, 0, 1)], overlap_tolerance=float("nan"))

    def test_deep_chain_has_no_recursion_limit(self) -> None:
        """A 20,000-level chain is walked without RecursionError."""
        depth = 20_000
        spans = [
            CpSpan(f"s{i}", f"s{i - 1}" if i else None, i, 2 * depth - i) for i in range(depth)
        ]
        sections = critical_path(spans)
        assert len(sections) == 2 * depth - 1
        assert_tiles(sections, 0, 2 * depth)
        exclusive = exclusive_critical_time(spans, sections)
        assert len(exclusive) == depth
        assert exclusive["s0"] == 2
        assert exclusive[f"s{depth - 1}"] == 2


class TestExclusiveTime:
    """Exclusive critical time per span and per name."""

    def test_unknown_section_span_rejected(self) -> None:
        """A section naming a span outside the clipped tree is an error."""
        with pytest.raises(ValueError, match="nope"):
            exclusive_critical_time([CpSpan("a", None, 0, 1)], [Section("nope", 0, 1)])

    def test_root_fully_covered_reports_zero(self) -> None:
        """A critical span hidden by its child is reported with 0."""
        spans = [CpSpan("a", None, 0, 10, name="op"), CpSpan("b", "a", 0, 10, name="op2")]
        assert exclusive_by_name(spans, critical_path(spans)) == {"op": 0, "op2": 10}

    def test_unnamed_spans_count_by_id(self) -> None:
        """Spans without a name are summed under their own id."""
        spans = [CpSpan("a", None, 0, 10), CpSpan("b", "a", 2, 4, name="x")]
        assert exclusive_by_name(spans, critical_path(spans)) == {"a": 8, "x": 2}


def assert_tiles(sections: list[Section], start: float, end: float) -> None:
    """Sections are non-empty, latest first, contiguous, and span exactly [start, end]."""
    if end <= start:
        assert sections == []
        return
    assert sections[0].end == end
    assert sections[-1].start == start
    for earlier, later in zip(sections[1:], sections, strict=False):
        assert earlier.start < earlier.end
        assert earlier.end == later.start
    assert sum(s.end - s.start for s in sections) == end - start


KINDS = ["INTERNAL", "CLIENT", "SERVER", "PRODUCER", "CONSUMER"]


@st.composite
def trees(draw: st.DrawFn) -> list[CpSpan]:
    """Random span trees with arbitrary (often overflowing) child times."""
    n = draw(st.integers(1, 25))
    spans = []
    for i in range(n):
        start = draw(st.integers(0, 100))
        end = start + draw(st.integers(0, 60))
        parent = f"s{draw(st.integers(0, i - 1))}" if i else None
        spans.append(CpSpan(f"s{i}", parent, start, end, kind=draw(st.sampled_from(KINDS))))
    return draw(st.permutations(spans))


class TestProperties:
    """Invariants of the walk on random trees."""

    @settings(max_examples=300, deadline=None)
    @given(spans=trees(), tolerance=st.sampled_from([0.0, 0.01, 0.3]))
    def test_sections_tile_the_root(self, spans: list[CpSpan], tolerance: float) -> None:
        """Sections are disjoint, inside the root, and sum to its duration."""
        root = next(s for s in spans if s.parent_id is None)
        assert_tiles(critical_path(spans, overlap_tolerance=tolerance), root.start, root.end)

    @settings(max_examples=300, deadline=None)
    @given(spans=trees())
    def test_strict_exclusive_equals_section_sums(self, spans: list[CpSpan]) -> None:
        """Without tolerance, exclusive time is exactly each span's section total."""
        sections = critical_path(spans)
        exclusive = exclusive_critical_time(spans, sections)
        sums = section_sums(sections)
        assert {k: v for k, v in exclusive.items() if v} == sums
        assert all(v >= 0 for v in exclusive.values())

    @settings(max_examples=200, deadline=None)
    @given(spans=trees(), tolerance=st.sampled_from([0.01, 0.3]))
    def test_tolerant_exclusive_never_negative(self, spans: list[CpSpan], tolerance: float) -> None:
        """With tolerance, exclusive times stay within [0, span duration] for every path span.

        (Their sum may exceed the root's duration by the tolerated overlaps: CRISP
        charges an overlap to both siblings and floors the parent at 0.)
        """
        sections = critical_path(spans, overlap_tolerance=tolerance)
        exclusive = exclusive_critical_time(spans, sections)
        by_id = {s.span_id: s for s in spans}
        assert {s.span_id for s in sections} <= exclusive.keys()
        for span_id, value in exclusive.items():
            assert 0 <= value <= by_id[span_id].end - by_id[span_id].start
