"""The span table and its whole-table checks, for ``harness.analysis.ingest``.

Checks are vectorised: ids become integer keys (trace code × id count + id
code), so duplicates, parents and orphans are hash look-ups over arrays rather
than a Python loop over spans. Each finding is counted exactly, with examples
of the first three occurrences in reading order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis._otlp import KIND_NAMES, SpanSink, id_hex

__all__ = ["AddMany", "SpanTable"]

#: ``add_many(finding, count, examples)``, i.e. ``DataQuality.add_many``.
AddMany = Callable[[str, int, Iterable[str]], None]

_EXAMPLES = 3
_NIBBLES = np.full(256, 255, dtype=np.uint8)  # ASCII lowercase hex digit -> its value
_NIBBLES[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_PRODUCER, _CONSUMER = KIND_NAMES.index("PRODUCER"), KIND_NAMES.index("CONSUMER")
_SERVER = KIND_NAMES.index("SERVER")


def _ms(ns: Any) -> str:
    return f"{int(ns) / 1e6:.6g} ms"


def _int64(values: Any) -> np.ndarray:
    """A copy of an ``array("q")`` as an int64 array."""
    return np.frombuffer(values, dtype=np.int64).copy() if len(values) else np.zeros(0, np.int64)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-d object array (``np.array`` would turn a list of lists into 2-d)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _hex64(ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Span ids as uint64; whether each is 16 lowercase hex digits; whether it is empty.

    (Fixed-width bytes do not keep trailing NULs, so an id with a trailing
    ``\u0000`` counts as the same id without it.)
    """
    n = len(ids)
    try:
        raw = np.array(ids, dtype="S17")
    except UnicodeEncodeError:  # a non-ASCII id: never hex
        raw = np.array([i if i.isascii() else "?" for i in ids], dtype="S17")
    chars = raw.view(np.uint8).reshape(n, 17)
    nibbles = _NIBBLES[chars[:, :16]]
    ok = (nibbles != 255).all(axis=1) & (chars[:, 16] == 0)  # 16 hex digits, no 17th
    packed = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])
    empty = chars[:, 0] == 0
    for i in np.flatnonzero(empty):  # "" or an id that starts with NUL
        empty[i] = not ids[i]
    return packed.view(">u8").ravel().astype(np.uint64), ok, empty


class SpanTable:
    """The span table, with integer codes of its ids and, per row, where it was read.

    ``trace_code`` numbers the traces and ``span_code``/``parent_code`` the
    distinct span ids (``width`` of them), so ``trace_code * width + span_code``
    is an exact integer key per span. ``has_parent`` is False where the parent id
    is empty; ``is_async`` marks spans whose parent is a FOLLOWS_FROM reference.
    """

    def __init__(self, sink: SpanSink, columns: list[str]) -> None:
        """Build the table from the sink's columns (its id lists are normalised in place)."""
        n = len(sink)
        self.sources = sink.sources
        self.src = _int64(sink.src)
        self.is_async = np.zeros(n, dtype=bool)
        self.is_async[sink.async_rows] = True
        self.trace_code, self.kind_code = _int64(sink.trace), _int64(sink.kind)
        self._code_ids(sink.span_id, sink.parent_span_id, self._fast_rows(sink, n))
        strings: dict[str, tuple[Sequence[Any], np.ndarray]] = {
            "trace_id": (sink.traces, self.trace_code),
            "name": (list(sink.names), _int64(sink.name)),
            "kind": (list(KIND_NAMES), self.kind_code),
        }
        data: dict[str, Any] = {
            name: pd.array(_objects(values), dtype="str").take(rows)
            for name, (values, rows) in strings.items()
        }
        data["span_id"] = pd.array(_objects(sink.span_id), dtype="str")
        data["parent_span_id"] = pd.array(_objects(sink.parent_span_id), dtype="str")
        for name in ("start_ns", "end_ns", "status"):
            data[name] = _int64(getattr(sink, name))
        data["attributes"], data["events"] = _objects(sink.attributes), _objects(sink.events)
        self.frame = (
            pd.DataFrame(data, columns=columns, copy=False) if n else pd.DataFrame(columns=columns)
        )

    @staticmethod
    def _fast_rows(sink: SpanSink, n: int) -> np.ndarray:
        fast = np.zeros(n, dtype=bool)
        for first, stop in sink.fast_rows:
            fast[first:stop] = True
        return fast

    def _code_ids(self, spans: list[str], parents: list[str], fast: np.ndarray) -> None:
        """Set ``span_code``, ``parent_code``, ``width`` and ``has_parent``.

        Ids the fast path took as written are made lowercase hex here, in place
        (only the few that are not: base64, upper case); an all-zero parent is
        no parent. When every id is then 16 hex digits, the codes come from
        their uint64 values; otherwise (a Jaeger id like ``span-A``) from the
        strings themselves.
        """
        n = len(spans)
        span_value, span_ok, _ = _hex64(spans)
        parent_value, parent_ok, empty = _hex64(parents)
        odd_spans = np.flatnonzero(fast & ~span_ok)
        odd_parents = np.flatnonzero(fast & ~parent_ok & ~empty)
        if len(odd_spans) or len(odd_parents):
            for i in odd_spans:
                spans[i] = id_hex(spans[i])
            for i in odd_parents:
                parents[i] = id_hex(parents[i])
            span_value, span_ok, _ = _hex64(spans)
            parent_value, parent_ok, empty = _hex64(parents)
        for i in np.flatnonzero(parent_ok & (parent_value == 0)):
            parents[i] = ""
            empty[i], parent_ok[i] = True, False
        if span_ok.all() and (parent_ok | empty).all():
            codes = pd.factorize(np.concatenate([span_value, parent_value]))[0]
        else:
            codes = pd.factorize(np.concatenate([_objects(spans), _objects(parents)]))[0]
        self.span_code, self.parent_code = codes[:n], codes[n:]
        self.width = int(codes.max()) + 1 if n else 0
        self.has_parent = ~empty

    def _where(self, rows: Iterable[int]) -> list[str]:
        frame = self.frame
        return [
            f"{self.sources[self.src[i]]}: trace {frame.trace_id.iat[i]} "
            f"span {frame.span_id.iat[i]} {frame.name.iat[i]!r}"
            for i in rows
        ]

    def check(self, add_many: AddMany) -> pd.DataFrame:
        """Report duplicates, orphans, rootless traces, end < start and clock skew."""
        frame = self.frame
        n = len(frame)
        if n == 0:
            return frame
        trace_codes, kind = self.trace_code, self.kind_code
        width = np.int64(self.width)
        key = trace_codes * width + self.span_code
        parent_key = trace_codes * width + self.parent_code
        has_parent = self.has_parent

        dup = pd.Index(key).duplicated(keep="first")
        if dup.any():
            rows = np.flatnonzero(dup)
            firsts = [int(np.flatnonzero(key == key[i])[0]) for i in rows[:_EXAMPLES]]
            add_many(
                "duplicate_span_id",
                len(rows),
                (
                    f"{where} (first read at {self.sources[self.src[first]]})"
                    for where, first in zip(self._where(rows[:_EXAMPLES]), firsts, strict=True)
                ),
            )
            keep = ~dup
            frame = self.frame = frame[keep].reset_index(drop=True)
            self.src, self.is_async = self.src[keep], self.is_async[keep]
            trace_codes, key, parent_key = trace_codes[keep], key[keep], parent_key[keep]
            has_parent, kind = has_parent[keep], kind[keep]

        start = frame.start_ns.to_numpy()
        end = frame.end_ns.to_numpy()
        parent_ids = frame.parent_span_id.to_numpy(dtype=object)
        parent_row = np.where(has_parent, pd.Index(key).get_indexer(parent_key), -1)
        # A SERVER or CONSUMER span whose parent is missing was called from another
        # process (a client's traceparent): it is this file's entry point, not an orphan.
        remote = has_parent & (parent_row < 0) & np.isin(kind, (_SERVER, _CONSUMER))
        orphan = np.flatnonzero(has_parent & (parent_row < 0) & ~remote)
        add_many(
            "orphan_span",
            len(orphan),
            (
                f"{where}: parent {parent_ids[i]} is not in the trace"
                for where, i in zip(self._where(orphan[:_EXAMPLES]), orphan, strict=False)
            ),
        )

        spans_per_trace = np.bincount(trace_codes)
        rooted = np.bincount(trace_codes[~has_parent | remote], minlength=len(spans_per_trace)) > 0
        rootless = np.flatnonzero((spans_per_trace > 0) & ~rooted)
        firsts = [int(np.argmax(trace_codes == code)) for code in rootless[:_EXAMPLES]]
        add_many(
            "trace_without_root",
            len(rootless),
            (
                f"{self.sources[self.src[i]]}: trace {frame.trace_id.iat[i]}: "
                f"all {spans_per_trace[code]} spans have a parent id"
                for i, code in zip(firsts, rootless, strict=False)
            ),
        )

        backwards = np.flatnonzero(end < start)
        add_many(
            "end_before_start",
            len(backwards),
            (
                f"{where}: ends {_ms(start[i] - end[i])} before it starts"
                for where, i in zip(self._where(backwards[:_EXAMPLES]), backwards, strict=False)
            ),
        )

        child = parent_row >= 0  # has a parent, and the parent is in the trace
        parent = np.where(child, parent_row, 0)
        may_end_late = self.is_async | (kind == _CONSUMER) | (kind[parent] == _PRODUCER)
        early = child & (start < start[parent])
        late = child & (end > end[parent]) & ~may_end_late
        outside = np.flatnonzero(early | late)
        add_many(
            "child_outside_parent",
            len(outside),
            (
                f"{where}: "
                + (
                    f"starts {_ms(start[parent[i]] - start[i])} before"
                    if early[i]
                    else f"ends {_ms(end[i] - end[parent[i]])} after"
                )
                + f" its parent {parent_ids[i]}"
                for where, i in zip(self._where(outside[:_EXAMPLES]), outside, strict=False)
            ),
        )
        return frame
