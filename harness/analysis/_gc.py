"""Pause Python's cyclic garbage collector while building big tables.

Reading a million spans creates millions of dicts, lists and strings, none of
them garbage. Each time enough new containers pile up, the collector walks all
of them again; over a large ingest that costs a quarter of the time or more.
Reference counting still frees everything that is not in a cycle while the
collector is paused, and the previous state is restored afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block (re-enabled only if it was on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
