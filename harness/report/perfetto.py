"""Export spans to Chrome Trace Event JSON, the format https://ui.perfetto.dev opens.

    from harness.analysis.ingest import read_spans
    from harness.report.perfetto import write_trace_events

    spans, _quality = read_spans("reports/run-1/spans.jsonl")
    write_trace_events(spans, "reports/run-1/trace.perfetto.json")

The format
----------
One JSON object (the Trace Event Format's "JSON object" form)::

    {"displayTimeUnit": "ms", "otherData": {...}, "traceEvents": [...]}

- Each trace is a *process* (``pid``), named by a ``process_name`` metadata
  event (``ph: "M"``): ``invoke_agent research_assistant · parallel · run
  1a2b3c4d`` for a harness run, the root span's name and ``trace 1a2b3c4d``
  for any other trace.
- Each span is one *complete event* (``ph: "X"``) with ``ts`` and ``dur`` in
  microseconds since the earliest span (or span event) of the export, ``cat``
  (``run``, ``step``, ``chat``, ``tool``, else the span kind), and ``args``
  holding the trace, span and parent ids, kind, status and the span's
  attributes. A span ending before it starts is drawn with ``dur`` 0.
- Each span event is an *instant event* (``ph: "i"``, scope ``t``) on its span's
  track; a ``parabench.card`` event of a run is named ``card N · step``.
- Tracks are *threads* (``tid``), named by ``thread_name`` metadata events:
  ``run`` (``main`` in other traces) and ``branch 1``, ``branch 2`` ... Thread
  ids are unique across the whole file, because Perfetto treats a tid as a
  system-wide thread id.

Times are differences of integer nanoseconds, then divided by 1000. Where the
nearest double times 1000 falls below the integer, it is nudged up by one unit
in the last place, so importers that truncate (older Perfetto) and those that
round (newer) both read back the exact nanosecond: two slices that touch stay
touching instead of overlapping by 1 ns.

The track rule
--------------
Perfetto draws the complete events of one track as a call stack: two slices on
a track must be disjoint or one must contain the other. A slice that starts
inside another and ends after it is dropped by the importer (``slice_drop_
overlapping_complete_event``). So spans are placed, in order of start (longer
first on ties, then parents before children), on tracks such that:

1. a span goes on its parent's track when the parent is the innermost slice
   still open there and the span ends within it: it is drawn under its parent;
2. otherwise on the lowest-numbered track with nothing open at its start;
3. otherwise on a new track.

Three steps running in parallel under one run therefore take three tracks, and a
sequential run stays on one. A slice is "still open" with Perfetto's own rule: a
slice ending exactly when the next starts is closed (touching slices share a
track), except that zero-length slices at one instant stack on each other. The
slice drawn above a span is always its parent or nothing, never an unrelated
span that happens to enclose it. A span whose parent is missing (an orphan) is a
root; a child outside its parent's interval (clock skew) does not fit under it
and gets a track of its own; either is marked with a ``note`` in its ``args``.
Every span of the input is exactly one ``X`` event.

The file is written in the order Perfetto needs where timestamps tie: by start,
longer first, parents before children (Perfetto keeps file order for events
with equal timestamps, so a child first would push out its parent).
"""

from __future__ import annotations

import heapq
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from harness.analysis._gc import paused_gc
from harness.analysis.ingest import DataQuality, read_spans
from harness.errors import ConfigError, TraceDataError

__all__ = [
    "EXPORT_FORMATS",
    "TRACE_FILE_NAME",
    "ExportResult",
    "export_trace_file",
    "to_trace_events",
    "write_trace_events",
]

TRACE_FILE_NAME = "trace.perfetto.json"
EXPORT_FORMATS = ("perfetto",)
_STATUS = ("UNSET", "OK", "ERROR")
_CARD = "parabench.card"
_CATEGORY_OF_OPERATION = {"invoke_agent": "run", "execute_tool": "tool"}


def _us(ns: np.ndarray) -> list[float]:
    """Integer nanoseconds as microseconds that read back to the same nanosecond.

    ``int(x * 1000)`` and ``round(x * 1000)`` both give the integer back.
    """
    us = ns / 1000.0
    low = np.floor(us * 1000.0) < ns
    us[low] = np.nextafter(us[low], np.inf)
    return us.tolist()


def _finite(value: Any) -> bool:
    """Whether ``value`` holds no NaN or infinity (JSON has neither)."""
    kind = type(value)
    if kind is float:
        return bool(value - value == 0.0)
    if kind is list or kind is tuple:
        return all(map(_finite, value))
    if kind is dict:
        return all(map(_finite, value.values()))
    return True


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float spelled as a string."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value


def _safe_attributes(attrs: Any) -> dict[str, Any]:
    if not isinstance(attrs, dict):
        return {}
    if all(map(_finite, attrs.values())):
        return attrs  # the usual case: shared, not copied
    return {str(k): _json_safe(v) for k, v in attrs.items()}


def _category(kind: str, attrs: dict[str, Any]) -> str:
    if "parabench.step.id" in attrs:
        return "step"
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:
        return _CATEGORY_OF_OPERATION.get(operation, operation)
    return kind.lower() if kind else "span"


def _is_run(attrs: dict[str, Any]) -> bool:
    return attrs.get("gen_ai.operation.name") == "invoke_agent" and "parabench.run.id" in attrs


class _Tracks:
    """Track assignment for the spans of one trace (see "The track rule" above).

    Spans must be placed in order of start. Each track keeps the stack of its
    open slices (innermost last); a heap of (end of the outermost open slice,
    track) finds the tracks that become free as time moves on, and a heap of
    free track numbers gives the lowest one.
    """

    def __init__(self, end_ns: list[int], zero: list[bool]) -> None:
        self.end_ns = end_ns
        self.zero = zero
        self.stacks: list[list[int]] = []
        self.bottom: list[int] = []  # the outermost open slice of each track
        self.version: list[int] = []
        self.busy: list[tuple[int, int, int]] = []  # (end_ns, track, version)
        self.free: list[tuple[int, int]] = []  # (track, version)
        self.parked: list[tuple[int, int]] = []
        self.parked_at_ns = -1

    def _closed(self, row: int, start_ns: int, zero: bool) -> bool:
        """Whether ``row``'s slice is over when a slice starts at ``start_ns`` (Perfetto's rule)."""
        end = self.end_ns[row]
        return end < start_ns or (end == start_ns and not (zero and self.zero[row]))

    def place(self, row: int, start_ns: int, parent: int, parent_track: int) -> int:
        """The track of ``row``; ``parent``/``parent_track`` are -1 when unknown."""
        zero = self.zero[row]
        if parent_track >= 0:
            stack = self.stacks[parent_track]
            while stack and self._closed(stack[-1], start_ns, zero):
                stack.pop()
            if stack and stack[-1] == parent and self.end_ns[row] <= self.end_ns[parent]:
                stack.append(row)
                return parent_track
        track = self._free_track(start_ns, zero)
        if track < 0:
            track = len(self.stacks)
            self.stacks.append([])
            self.bottom.append(row)
            self.version.append(0)
        self.stacks[track] = [row]
        self.bottom[track] = row
        self.version[track] += 1
        heapq.heappush(self.busy, (self.end_ns[row], track, self.version[track]))
        return track

    def _free_track(self, start_ns: int, zero: bool) -> int:
        """The lowest-numbered track with nothing open at ``start_ns``, or -1."""
        if self.parked and (self.parked_at_ns < start_ns or not zero):
            for entry in self.parked:
                heapq.heappush(self.free, entry)
            self.parked.clear()
        busy, version = self.busy, self.version
        while busy and busy[0][0] <= start_ns:
            _, track, ver = heapq.heappop(busy)
            if ver == version[track]:
                heapq.heappush(self.free, (track, ver))
        while self.free:
            track, ver = heapq.heappop(self.free)
            if ver != version[track]:
                continue
            if not self._closed(self.bottom[track], start_ns, zero):
                # A zero-length slice at this very instant: free again once time moves on.
                self.parked.append((track, ver))
                self.parked_at_ns = start_ns
                continue
            return track
        return -1

    @property
    def count(self) -> int:
        return len(self.stacks)


def _depths(parents: list[int]) -> list[int]:
    """Depth of each span in its trace's tree; a cycle of parents is cut where it is met."""
    depth = [-1] * len(parents)
    for i in range(len(parents)):
        chain: list[int] = []
        on_chain: set[int] = set()
        node = i
        while node >= 0 and depth[node] < 0 and node not in on_chain:
            chain.append(node)
            on_chain.add(node)
            node = parents[node]
        base = depth[node] if node >= 0 and depth[node] >= 0 else -1
        for n in reversed(chain):
            base += 1
            depth[n] = base
    return depth


def _process_name(
    root: int, names: list[str], attrs: list[dict[str, Any]], trace_id: str
) -> tuple[str, bool]:
    """The name of a trace's process, and whether the trace is a harness run."""
    a = attrs[root]
    name = names[root] or "(unnamed span)"
    if _is_run(a):
        variant = a.get("parabench.variant") or "?"
        return f"{name} · {variant} · run {str(a['parabench.run.id'])[:8]}", True
    return f"{name} · trace {trace_id[:8]}", False


@dataclass
class _Columns:
    trace_id: list[str]
    span_id: list[str]
    parent_id: list[str]
    name: list[str]
    kind: list[str]
    start_ns: list[int]
    end_ns: list[int]
    status: list[int]
    attributes: list[dict[str, Any]]
    events: list[list[dict[str, Any]]]

    @classmethod
    def of(cls, spans: pd.DataFrame) -> _Columns:
        return cls(
            trace_id=spans["trace_id"].astype(str).tolist(),
            span_id=spans["span_id"].astype(str).tolist(),
            parent_id=[v if isinstance(v, str) else "" for v in spans["parent_span_id"].tolist()],
            name=spans["name"].astype(str).tolist(),
            kind=spans["kind"].astype(str).tolist(),
            start_ns=spans["start_ns"].astype("int64").tolist(),
            end_ns=spans["end_ns"].astype("int64").tolist(),
            status=spans["status"].astype("int64").tolist(),
            attributes=[a if isinstance(a, dict) else {} for a in spans["attributes"].tolist()],
            events=[e if isinstance(e, list) else [] for e in spans["events"].tolist()],
        )


def to_trace_events(spans: pd.DataFrame) -> dict[str, Any]:
    """The Chrome Trace Event document of a span table (``read_spans``'s columns)."""
    with paused_gc():  # hundreds of thousands of new dicts, none of them garbage
        return _trace_events(spans)


def _trace_events(spans: pd.DataFrame) -> dict[str, Any]:
    cols = _Columns.of(spans)
    event_times = [e["time_ns"] for events in cols.events for e in events]
    origin_ns = min(cols.start_ns + event_times, default=0)
    by_trace: dict[str, list[int]] = {}
    for row, trace_id in enumerate(cols.trace_id):
        by_trace.setdefault(trace_id, []).append(row)
    traces = sorted(by_trace.items(), key=lambda kv: min(cols.start_ns[r] for r in kv[1]))

    out = _Events(cols, origin_ns, first_tid=len(traces) + 1)
    for pid, (trace_id, rows) in enumerate(traces, 1):
        out.add_trace(pid, trace_id, rows)
    times_us = _us(np.array([t for t, *_ in out.instants], dtype=np.int64) - origin_ns)
    for (_, pid, tid, event), t_us in zip(out.instants, times_us, strict=True):
        event.update(ts=t_us, pid=pid, tid=tid)
    return {
        # Known keys before the events: older Perfetto skips the rest of the file
        # after a key it does not know and wants displayTimeUnit in the first chunk.
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "parabench export",
            "time_origin_unix_ns": str(origin_ns),
            "spans": len(cols.span_id),
            "traces": len(traces),
            "tracks": out.next_tid - len(traces) - 1,
        },
        "traceEvents": out.meta + out.slices + [event for *_, event in out.instants],
    }


class _Events:
    """The trace events of a span table, added one trace at a time."""

    def __init__(self, cols: _Columns, origin_ns: int, first_tid: int) -> None:
        self.cols = cols
        start = np.array(cols.start_ns, dtype=np.int64)
        end = np.maximum(np.array(cols.end_ns, dtype=np.int64), start)  # end < start: length 0
        self.ts_us = _us(start - origin_ns)
        self.dur_us = _us(end - start)
        self.end_ns: list[int] = end.tolist()
        self.zero: list[bool] = (end == start).tolist()
        self.next_tid = first_tid  # above every pid: no track looks like a process's main thread
        self.meta: list[dict[str, Any]] = []
        self.slices: list[dict[str, Any]] = []
        self.instants: list[tuple[int, int, int, dict[str, Any]]] = []  # (time_ns, pid, tid, event)

    def add_trace(self, pid: int, trace_id: str, rows: list[int]) -> None:
        """Place the spans ``rows`` of one trace on tracks of process ``pid``."""
        cols = self.cols
        local: dict[str, int] = {}
        for i, row in enumerate(rows):
            local.setdefault(cols.span_id[row], i)
        parents = []
        for i, row in enumerate(rows):
            p = local.get(cols.parent_id[row], -1) if cols.parent_id[row] else -1
            parents.append(-1 if p == i else p)
        depth = _depths(parents)
        end_ns = [self.end_ns[r] for r in rows]
        order = sorted(
            range(len(rows)), key=lambda i: (cols.start_ns[rows[i]], -end_ns[i], depth[i], i)
        )
        roots = [i for i in order if parents[i] < 0 and not cols.parent_id[rows[i]]]
        root = rows[(roots or [i for i in order if parents[i] < 0] or order)[0]]
        process, harness_run = _process_name(root, cols.name, cols.attributes, trace_id)

        tracks = _Tracks(end_ns, [self.zero[r] for r in rows])
        track_of = [-1] * len(rows)
        for i in order:
            row, p = rows[i], parents[i]
            track = tracks.place(i, cols.start_ns[row], p, track_of[p] if p >= 0 else -1)
            track_of[i] = track
            self._add_span(row, pid, self.next_tid + track, trace_id, rows[p] if p >= 0 else -1)

        self.meta.append(_metadata("process_name", pid, pid, name=process))
        for track in range(tracks.count):
            label = ("run" if harness_run else "main") if track == 0 else f"branch {track}"
            tid = self.next_tid + track
            self.meta.append(_metadata("thread_name", pid, tid, name=label))
            self.meta.append(_metadata("thread_sort_index", pid, tid, sort_index=track))
        self.next_tid += tracks.count

    def _add_span(self, row: int, pid: int, tid: int, trace_id: str, parent: int) -> None:
        cols = self.cols
        attrs = cols.attributes[row]
        status = cols.status[row]
        args: dict[str, Any] = {
            "trace_id": trace_id,
            "span_id": cols.span_id[row],
            "parent_span_id": cols.parent_id[row],
            "kind": cols.kind[row],
            "status": _STATUS[status] if 0 <= status < len(_STATUS) else "UNSET",
            "attributes": _safe_attributes(attrs),
        }
        note = _note(cols, row, parent, self.end_ns)
        if note:
            args["note"] = note
        self.slices.append(
            {
                "name": cols.name[row],
                "cat": _category(cols.kind[row], attrs),
                "ph": "X",
                "ts": self.ts_us[row],
                "dur": self.dur_us[row],
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )
        for event in cols.events[row]:
            self.instants.append((event["time_ns"], pid, tid, _instant(event, cols.span_id[row])))


def _note(cols: _Columns, row: int, parent: int, end_eff: list[int]) -> str:
    """Why a span may not sit where its parent is: bad data, said in the span's args."""
    notes = []
    if cols.end_ns[row] < cols.start_ns[row]:
        notes.append("ends before it starts: drawn with duration 0")
    if cols.parent_id[row] == cols.span_id[row]:
        notes.append("its own parent: drawn as a root")
    elif cols.parent_id[row] and parent < 0:
        notes.append("parent span not in the trace: drawn as a root")
    if parent >= 0 and (
        cols.start_ns[row] < cols.start_ns[parent] or end_eff[row] > end_eff[parent]
    ):
        notes.append("outside its parent's time (clock skew): not drawn under it")
    return "; ".join(notes)


def _instant(event: dict[str, Any], span_id: str) -> dict[str, Any]:
    attrs = _safe_attributes(event.get("attributes"))
    name = str(event.get("name", ""))
    if name == _CARD:
        label = (
            f"card {attrs.get('parabench.card.index', '?')} · {attrs.get('parabench.step.id', '?')}"
        )
        cat = "card"
    else:
        label, cat = name, "event"
    return {
        "name": label,
        "cat": cat,
        "ph": "i",
        "s": "t",
        "args": {"event": name, "span_id": span_id, "attributes": attrs},
    }


def _metadata(kind: str, pid: int, tid: int, **args: Any) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": args}


def write_trace_events(spans: pd.DataFrame, path: str | Path) -> dict[str, Any]:
    """Write ``to_trace_events(spans)`` to ``path`` as compact JSON; return the document.

    The file is written next to its final name and renamed into place, so a
    reader never sees half of it.
    """
    document = to_trace_events(spans)
    path = Path(path)
    data = msgspec.json.encode(document)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return document


@dataclass(frozen=True)
class ExportResult:
    """What ``export_trace_file`` wrote."""

    path: Path
    spans: int
    traces: int
    tracks: int
    data_quality: DataQuality


def _spans_file(source: Path) -> Path:
    if source.is_dir():
        spans = source / "spans.jsonl"
        if not spans.is_file():
            raise TraceDataError(
                "the directory has no spans.jsonl",
                where=str(source),
                fix="pass a run directory written by `parabench run`, or a trace file",
            )
        return spans
    if not source.exists():
        raise TraceDataError(
            "no such file or directory",
            where=str(source),
            fix="pass a run directory (with spans.jsonl) or an OTLP/Jaeger JSON trace file",
        )
    return source


def export_trace_file(
    source: str | Path, out: str | Path | None = None, output_format: str = "perfetto"
) -> ExportResult:
    """Export a run directory or trace file (default output: ``trace.perfetto.json`` beside it).

    Raises ``ConfigError`` for an unknown format and ``TraceDataError`` when the
    input is missing or holds no span.
    """
    if output_format not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown export format '{output_format}'",
            where="--format",
            fix=f"use one of: {', '.join(EXPORT_FORMATS)}",
        )
    spans_path = _spans_file(Path(source))
    spans, quality = read_spans(spans_path)
    if spans.empty:
        raise TraceDataError(
            "no spans could be read" + _findings(quality),
            where=str(spans_path),
            fix="pass OTLP JSON lines (as `parabench run` writes to DIR/spans.jsonl) "
            "or a Jaeger JSON download",
        )
    target = Path(out) if out is not None else spans_path.parent / TRACE_FILE_NAME
    if target.is_dir():
        target = target / TRACE_FILE_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        document = write_trace_events(spans, target)
    except OSError as exc:
        raise TraceDataError(
            f"cannot write the export: {exc.strerror or exc}",
            where=str(target),
            fix="choose a writable path with --out",
        ) from None
    other = document["otherData"]
    return ExportResult(target, other["spans"], other["traces"], other["tracks"], quality)


def _findings(quality: DataQuality) -> str:
    details: Iterable[str] = (
        f"{name}: {n} (e.g. {quality.examples[name][0]})"
        for name, n in sorted(quality.counts.items())
        if quality.examples.get(name)
    )
    text = "; ".join(details)
    return f" ({text})" if text else ""
