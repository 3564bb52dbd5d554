"""Raw per-run samples of a load test: the schema, the file, and the summary.

Each run a Locust user makes becomes one JSON object on one line of
``samples.jsonl``. Gates and reports read these raw samples; Locust's own
percentiles are rounded (to 2 significant digits above 100 ms) and are never
used for a verdict.

=====================  =====================================================
field                  meaning
=====================  =====================================================
``schema``             ``parabench.load.sample/1``
``send_time_unix_s``   wall-clock time the request was sent
``scenario``           scenario name sent in the request
``variant``            variant sent in the request
``outcome``            ``completed``, ``partial``, ``failed`` (from the final
                       event), ``rejected`` (503: over capacity) or ``error``
                       (connection error, other status, stream cut short)
``http_status``        response status; 0 when no response arrived
``e2e_ms``             request sent → final event received (client side)
``ttfc_ms``            request sent → first ``card`` event
``speed_index_ms``     ∫ (1 − share of cards shown) dt, request → last card
``cards``              cards received; ``cards_expected`` from ``run.started``
``card_times_ms``      arrival time of each card, from the request
``server_e2e_ms``      the service's own e2e from the final event (run span)
``server_ttfc_ms``     the service's own TTFC from the final event
``cost_usd``           the run's cost from the final event
``trace_id``           trace id sent in ``traceparent`` (joins server spans)
``run_id``             the service's run id
``concurrency``        users the test targeted when the request was sent
``worker_users``       users running in the sending Locust process then
``worker``             ``local``, or the Locust worker's client id
``error``              why the run was rejected, failed or in error
=====================  =====================================================

Durations are on the sending process's monotonic clock, rounded to µs.
"""

from __future__ import annotations

import bisect
import json
import statistics
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "OUTCOMES",
    "SAMPLE_SCHEMA",
    "ConcurrencyTimeline",
    "SampleFile",
    "SampleTail",
    "read_samples",
    "summarize_samples",
]

SAMPLE_SCHEMA = "parabench.load.sample/1"
OUTCOMES = ("completed", "partial", "failed", "rejected", "error")


class SampleFile:
    """Appends samples to a JSON-lines file, one flushed line per sample.

    Flushing every line lets a progress display count runs while Locust is
    still going, and loses at most one line if the process is killed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.written = 0

    def write(self, samples: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in samples)
        if not lines:
            return
        with self._lock:
            self._file.write(lines)
            self._file.flush()
            self.written += lines.count("\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


class ConcurrencyTimeline:
    """The target user count over time, to stamp each sample with its concurrency level.

    The process that drives the load (Locust's master, or the only process)
    records each change; a sample sent at time t gets the level in force at t.
    """

    def __init__(self) -> None:
        self._times: list[float] = []
        self._levels: list[int] = []

    def record(self, at_unix_s: float, level: int) -> None:
        if self._levels and self._levels[-1] == level:
            return
        self._times.append(at_unix_s)
        self._levels.append(level)

    def at(self, at_unix_s: float) -> int | None:
        i = bisect.bisect_right(self._times, at_unix_s) - 1
        return self._levels[i] if i >= 0 else None

    def changes(self) -> list[tuple[float, int]]:
        return list(zip(self._times, self._levels, strict=True))


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Every sample in a JSON-lines file; a torn last line (killed writer) is skipped."""
    out: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
    return out


class SampleTail:
    """Reads the lines appended to ``samples.jsonl`` since the last call.

    Counts runs per outcome and per variant (in order of appearance), and keeps
    the latest sample's concurrency level and the last 500 e2e times, for a live
    progress line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.outcomes: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self.concurrency: int | None = None
        self.recent_e2e_ms: list[float] = []

    def poll(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                sample = json.loads(line)
            except ValueError:
                continue
            self.outcomes[str(sample.get("outcome"))] += 1
            self.variants[str(sample.get("variant"))] += 1
            if isinstance(sample.get("concurrency"), int):
                self.concurrency = sample["concurrency"]
            if isinstance(sample.get("e2e_ms"), int | float):
                self.recent_e2e_ms.append(float(sample["e2e_ms"]))
        self.recent_e2e_ms = self.recent_e2e_ms[-500:]

    @property
    def runs(self) -> int:
        return sum(self.outcomes.values())

    def describe(self) -> str:
        """One line: users now, runs (per variant when several), problems, median e2e."""
        parts = [] if self.concurrency is None else [f"{self.concurrency} users"]
        runs = f"{self.runs} runs"
        if len(self.variants) > 1:
            runs += ": " + ", ".join(f"{name} {count}" for name, count in self.variants.items())
        parts.append(runs)
        parts += [f"{name} {n}" for name, n in sorted(self.outcomes.items()) if name != "completed"]
        if self.recent_e2e_ms:
            parts.append(f"e2e p50 {statistics.median(self.recent_e2e_ms):.0f} ms")
        return " · ".join(parts)


def _stats(values: list[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "mean": round(float(arr.mean()), 3),
    }


def _group_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = Counter(s.get("outcome", "error") for s in samples)
    answered = [s for s in samples if s.get("e2e_ms") is not None]
    return {
        "runs": len(samples),
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "e2e_ms": _stats([s["e2e_ms"] for s in answered]),
        "ttfc_ms": _stats([s["ttfc_ms"] for s in samples if s.get("ttfc_ms") is not None]),
        "speed_index_ms": _stats(
            [s["speed_index_ms"] for s in samples if s.get("speed_index_ms") is not None]
        ),
    }


def summarize_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per outcome and p50/p95/p99 of e2e, TTFC and speed index, from raw samples.

    Percentiles use numpy's default (linear interpolation) over every run that
    has the figure: e2e over runs that reached a final event (completed,
    partial or failed); rejected and errored runs have none.
    """
    by_variant: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in samples:
        by_variant.setdefault((str(s.get("scenario")), str(s.get("variant"))), []).append(s)
    by_level: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        if isinstance(s.get("concurrency"), int):
            by_level.setdefault(s["concurrency"], []).append(s)
    return {
        **_group_summary(samples),
        "variants": [
            {"scenario": scenario, "variant": variant, **_group_summary(group)}
            for (scenario, variant), group in sorted(by_variant.items())
        ],
        "concurrency_levels": [
            {"concurrency": level, **_group_summary(group)}
            for level, group in sorted(by_level.items())
        ],
    }
