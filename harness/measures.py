"""Small, dependency-free measures shared by the analysis and the load client."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["speed_index"]


def speed_index(card_times: Sequence[float]) -> float | None:
    """∫ (1 − share of cards shown) dt from the request to the last card, in the times' unit.

    Lighthouse's speed index applied to progressive results: all 5 cards at
    10 s → 10 s; one every 2 s → 6 s. ``None`` without cards.

    >>> speed_index([10.0] * 5)
    10.0
    >>> speed_index([2.0, 4.0, 6.0, 8.0, 10.0])
    6.0
    """
    if not card_times:
        return None
    times = sorted(max(t, 0.0) for t in card_times)
    n = len(times)
    total, prev = 0.0, 0.0
    for shown, t in enumerate(times):
        total += (1 - shown / n) * (t - prev)
        prev = t
    return total
