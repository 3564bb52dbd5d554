"""Load testing the agent service with Locust: ``parabench load``.

:func:`run_load` runs Locust headless in a child process (Locust's gevent
must never patch the caller's process) with ``harness/load/locustfile.py``,
and summarises the raw per-run samples it writes. Importing this package
imports neither Locust nor gevent.
"""

from __future__ import annotations

from harness.load.runner import (
    LOCUSTFILE,
    LoadOptions,
    LoadResult,
    check_host,
    print_summary,
    run_load,
)

__all__ = ["LOCUSTFILE", "LoadOptions", "LoadResult", "check_host", "print_summary", "run_load"]
