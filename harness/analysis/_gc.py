"""Keep Python's cyclic garbage collector out of bulk loads.

Reading a million spans creates millions of dicts, lists and strings, none of
them garbage. Each time enough new containers pile up the collector walks them
again, which costs a quarter of the time or more. So the collector is off
inside ``paused_gc()``; reference counting still frees everything that is not
in a cycle. Afterwards the new objects go straight to the oldest generation
(``gc.freeze`` then ``gc.unfreeze``) instead of being scanned by a young
collection on the way; that step is skipped when the caller has frozen objects
of its own.
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
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()
