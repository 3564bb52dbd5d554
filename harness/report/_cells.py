"""The report's table cells: a ``Table`` of display strings and the formats that fill it.

Cells are unescaped text; each renderer (``html``, ``markdown``) escapes for
its own format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Table", "make_table", "num", "pct", "scaled_ms", "usd_per_ms"]


@dataclass
class Table:
    """Columns and rows of display strings; ``numeric`` columns align right."""

    columns: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def without(self, column: str) -> Table:
        """The same table without ``column`` (when every row would repeat one value)."""
        if column not in self.columns:
            return self
        k = self.columns.index(column)
        numeric = {i - (i > k) for i in self.numeric if i != k}
        return Table(
            [c for i, c in enumerate(self.columns) if i != k],
            [[c for i, c in enumerate(row) if i != k] for row in self.rows],
            numeric,
        )


def make_table(columns: Sequence[str], rows: list[list[str]], first_numeric: int = 99) -> Table:
    """A table whose columns from ``first_numeric`` on hold numbers (aligned right)."""
    return Table(list(columns), rows, set(range(first_numeric, len(columns))))


def num(value: Any) -> float | None:
    """A finite float, or ``None`` (for ``None``, NaN, infinities and non-numbers)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def pct(share: Any, digits: int = 0) -> str:
    value = num(share)
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def scaled_ms(value: Any, scale: float) -> float | None:
    number = num(value)
    return None if number is None else number / scale


def usd_per_ms(value: Any) -> str:
    number = num(value)
    return "–" if number is None else f"${number:.3g}/ms"
