"""Helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path


def expectations(path: Path) -> dict[str, str]:
    """The ``# expect-<what>: <text>`` header lines a bad scenario file carries."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# expect-"):
            key, _, value = line.removeprefix("# expect-").partition(": ")
            out[key] = value
    return out
