"""Turning spans into answers: ingest, per-run tables and summaries.

Heavy imports (pandas) live here, not in ``import harness``.
"""

from __future__ import annotations

from harness.analysis.ingest import DataQuality, read_spans
from harness.analysis.runs import runs_table, steps_table
from harness.analysis.summary import SUMMARY_SCHEMA_VERSION, summarize

__all__ = [
    "SUMMARY_SCHEMA_VERSION",
    "DataQuality",
    "read_spans",
    "runs_table",
    "steps_table",
    "summarize",
]
