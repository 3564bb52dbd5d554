"""One clock for every timestamp parabench records.

Durations come from a monotonic counter (time can go backwards on the wall
clock: NTP steps, VM migrations); timestamps written to spans are that counter
anchored once to the wall clock, so they stay monotonic within a process and
still read as real dates.
"""

from __future__ import annotations

import time

__all__ = ["elapsed_s", "monotonic_s", "now_ns"]

_ANCHOR_WALL_NS = time.time_ns()
_ANCHOR_MONO_NS = time.perf_counter_ns()


def now_ns() -> int:
    """Wall-clock nanoseconds since the epoch, advancing monotonically."""
    return _ANCHOR_WALL_NS + (time.perf_counter_ns() - _ANCHOR_MONO_NS)


def monotonic_s() -> float:
    """Seconds on the monotonic clock (for durations only)."""
    return time.perf_counter()


def elapsed_s(start_s: float, end_s: float | None = None) -> float:
    """Seconds between two monotonic readings, clamped at 0."""
    end = time.perf_counter() if end_s is None else end_s
    return max(end - start_s, 0.0)
