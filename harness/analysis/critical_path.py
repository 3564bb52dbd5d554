"""Critical path of one trace: the Jaeger-style backward walk, and exclusive time.

The critical path answers "which span was the trace waiting on at each instant".
It is computed over the span tree alone (no declared dependencies), as Jaeger UI
and CRISP (USENIX ATC '22) do; ``tests/data/critical_path`` holds their expected
results, which this module reproduces.

The walk
--------
1. Root: the span whose parent is absent from the set. With several candidates
   (a partial trace), the one ending last wins (ties: the earlier start, then the
   first in input order); the other candidates' subtrees are ignored. Of two
   spans sharing an id, the first is kept.
2. Clipping, top-down: a child that starts at/after its parent's end or ends
   at/before its parent's start is dropped with its subtree; any overflow is cut
   to the (already clipped) parent's bounds. A CONSUMER child of a PRODUCER
   parent is not blocking and is dropped with its subtree too. A span whose end
   precedes its start is clamped to zero length. Time 0 is an ordinary time.
3. From the root's end, walk backwards. Entering a span at time ``cur``,
   descend into its last-finishing child (ties: the earlier start); the span's
   own section is ``[min(child.end, cur), cur]``. Coming back from a child ``c``,
   continue with the latest-finishing sibling that happens before ``c``; the
   parent owns the gap between them. With no such sibling left, the parent owns
   ``[parent.start, cur]``.

"Happens before" is strict: ``sibling.end < c.start`` (Jaeger and CRISP alike;
a sibling ending exactly when ``c`` starts does not count). With
``overlap_tolerance = f > 0`` (CRISP uses 0.01) a sibling ``s`` also happens
before ``c`` when all of these hold (CRISP's clock-skew rule):
``s.start < c.start``, ``s.end < c.end``,
``s.end - c.start < f * parent duration`` (clipped), and the window
``[c.start, s.end]`` holds exactly two start/end events of the parent's children
(``c``'s start and ``s``'s end: no third sibling is involved in the overlap).
``s`` is then entered at ``c.start``, so its overlapping tail is cut and the
sections stay disjoint.

Sections are returned latest first; zero-length sections are omitted and
consecutive sections of one span are not merged (Jaeger emits them separately).
By construction the sections are disjoint and tile the root exactly, so their
lengths sum to the root's duration.

Exclusive critical time
-----------------------
The critical spans are those with a section, their ancestors and the root. A
critical span's exclusive time is its clipped duration minus the clipped
durations of its critical children, floored at 0 (CRISP's definition). With
tolerance 0 this equals the sum of the span's section lengths; with a tolerance
the overlaps that were cut from sections are charged to the children, as CRISP
does, so the two can differ by the overlap.

Everything is iterative (traces 10,000+ levels deep are fine) and runs in
O(n log n): one sort of each span's children, and bisection for the tolerance
rule's event count.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CpSpan",
    "Section",
    "critical_path",
    "exclusive_by_name",
    "exclusive_critical_time",
]


@dataclass(frozen=True)
class CpSpan:
    """One span as the critical-path walk sees it (times in any one unit)."""

    span_id: str
    parent_id: str | None
    start: float
    end: float
    kind: str = "INTERNAL"
    name: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            object.__setattr__(self, "end", self.start)


@dataclass(frozen=True)
class Section:
    """A stretch of time ``[start, end]`` during which ``span_id`` is on the path."""

    span_id: str
    start: float
    end: float


def _kind(kind: str) -> str:
    """Normalise a span kind: ``SPAN_KIND_PRODUCER`` and ``producer`` → ``PRODUCER``."""
    return kind.upper().removeprefix("SPAN_KIND_")


class _Tree:
    """The clipped span tree, in breadth-first order (index 0 is the root)."""

    __slots__ = ("children", "ends", "ids", "index", "parent", "starts")

    def __init__(self, spans: Sequence[CpSpan]) -> None:
        first: dict[str, CpSpan] = {}
        for span in spans:
            first.setdefault(span.span_id, span)
        kids: dict[str, list[CpSpan]] = {}
        roots: list[CpSpan] = []
        for span in first.values():
            pid = span.parent_id
            if pid is not None and pid != span.span_id and pid in first:
                kids.setdefault(pid, []).append(span)
            else:
                roots.append(span)
        self.ids: list[str] = []
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.parent: list[int] = []
        self.children: list[list[int]] = []
        kinds: list[str] = []
        if not roots:
            self.index: dict[str, int] = {}
            return
        root = max(roots, key=lambda s: (s.end, -s.start))

        def add(span: CpSpan, start: float, end: float, parent: int) -> None:
            self.ids.append(span.span_id)
            self.starts.append(start)
            self.ends.append(end)
            self.parent.append(parent)
            self.children.append([])
            kinds.append(_kind(span.kind))

        add(root, root.start, root.end, -1)
        i = 0
        while i < len(self.ids):  # breadth-first: parents are clipped before children
            ps, pe, producer = self.starts[i], self.ends[i], kinds[i] == "PRODUCER"
            kept: list[int] = []
            for child in kids.get(self.ids[i], ()):
                if child.start >= pe or child.end <= ps:
                    continue
                if producer and _kind(child.kind) == "CONSUMER":
                    continue
                kept.append(len(self.ids))
                add(child, max(child.start, ps), min(child.end, pe), i)
            kept.sort(key=lambda j: (-self.ends[j], self.starts[j], j))
            self.children[i] = kept
            i += 1
        self.index = {sid: j for j, sid in enumerate(self.ids)}


class _Events:
    """Sorted start and end times of one span's children (for the tolerance rule)."""

    __slots__ = ("ends", "starts")

    def __init__(self, tree: _Tree, node: int) -> None:
        self.starts = sorted(tree.starts[c] for c in tree.children[node])
        self.ends = sorted(tree.ends[c] for c in tree.children[node])

    def count(self, lo: float, hi: float) -> int:
        """Number of child starts and ends in ``[lo, hi]``."""
        return (
            bisect_right(self.starts, hi)
            - bisect_left(self.starts, lo)
            + bisect_right(self.ends, hi)
            - bisect_left(self.ends, lo)
        )


def critical_path(spans: Sequence[CpSpan], *, overlap_tolerance: float = 0.0) -> list[Section]:
    """The critical path of one trace, latest section first (see the module docstring)."""
    if not overlap_tolerance >= 0.0:
        raise ValueError(f"overlap_tolerance must be >= 0, got {overlap_tolerance!r}")
    tree = _Tree(spans)
    if not tree.ids:
        return []
    ids, starts, ends, children = tree.ids, tree.starts, tree.ends, tree.children
    events: dict[int, _Events] = {}

    def happens_before(node: int, sib: int, later: int) -> bool:
        if ends[sib] < starts[later]:
            return True
        if overlap_tolerance <= 0.0:
            return False
        if not (starts[sib] < starts[later] and ends[sib] < ends[later]):
            return False
        if ends[sib] - starts[later] >= overlap_tolerance * (ends[node] - starts[node]):
            return False
        if node not in events:
            events[node] = _Events(tree, node)
        return events[node].count(starts[later], ends[sib]) == 2

    out: list[Section] = []
    # A frame is [node, cur, pos, last]: the walk is at time ``cur`` inside ``node``,
    # ``pos`` indexes the next child to consider, ``last`` is the child just left.
    stack: list[list[int | float]] = [[0, ends[0], 0, -1]]
    while stack:
        frame = stack[-1]
        node, pos, last = int(frame[0]), int(frame[2]), int(frame[3])
        cur = frame[1]
        kids = children[node]
        nxt = -1
        if last < 0:
            if kids:
                nxt, pos = kids[0], 1
        else:
            cur = min(cur, starts[last])
            while pos < len(kids):
                cand = kids[pos]
                pos += 1
                if happens_before(node, cand, last):
                    nxt = cand
                    break
        if nxt < 0:
            if cur > starts[node]:
                out.append(Section(ids[node], starts[node], cur))
            stack.pop()
            continue
        lo = min(ends[nxt], cur)
        if cur > lo:
            out.append(Section(ids[node], lo, cur))
        frame[1], frame[2], frame[3] = lo, pos, nxt
        stack.append([nxt, lo, 0, -1])
    return out


def exclusive_critical_time(
    spans: Sequence[CpSpan], sections: Sequence[Section]
) -> dict[str, float]:
    """Exclusive critical time per critical span id (CRISP's definition, never negative)."""
    tree = _Tree(spans)
    if not tree.ids:
        if sections:
            raise ValueError("sections given for an empty trace")
        return {}
    critical = {0}
    for section in sections:
        node = tree.index.get(section.span_id)
        if node is None:
            raise ValueError(f"section for span {section.span_id!r}, not in the clipped tree")
        while node >= 0 and node not in critical:
            critical.add(node)
            node = tree.parent[node]
    starts, ends = tree.starts, tree.ends
    result: dict[str, float] = {}
    for node in sorted(critical):
        own = ends[node] - starts[node]
        own -= sum(ends[c] - starts[c] for c in tree.children[node] if c in critical)
        result[tree.ids[node]] = max(own, 0.0)
    return result


def exclusive_by_name(spans: Sequence[CpSpan], sections: Sequence[Section]) -> dict[str, float]:
    """Exclusive critical time summed per span name (a span without a name counts by its id)."""
    names: dict[str, str] = {}
    for span in spans:
        names.setdefault(span.span_id, span.name or span.span_id)
    result: dict[str, float] = {}
    for span_id, amount in exclusive_critical_time(spans, sections).items():
        name = names[span_id]
        result[name] = result.get(name, 0.0) + amount
    return result
