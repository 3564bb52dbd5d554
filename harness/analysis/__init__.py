"""Turning spans into answers: ingest, critical paths, bottlenecks, branches, variants, what-if.

``analyze_files`` is the one call behind ``parabench analyze``; the pieces are
importable on their own and return pandas DataFrames. See docs/analysis.md.

Heavy imports (pandas) live here, not in ``import harness``.
"""

from __future__ import annotations

from harness.analysis.audit import ANALYSIS_SCHEMA_VERSION, Analysis, analyze, analyze_files
from harness.analysis.bottlenecks import foreign_bottlenecks, harness_bottlenecks
from harness.analysis.branches import Branches, branch_table
from harness.analysis.compare import bootstrap_diff, compare_variants, mann_whitney_p
from harness.analysis.critical_path import CpSpan, Section, critical_path, exclusive_critical_time
from harness.analysis.dagpaths import run_critical_paths
from harness.analysis.ingest import DataQuality, read_spans
from harness.analysis.runs import runs_table, steps_table
from harness.analysis.summary import SUMMARY_SCHEMA_VERSION, efficiency_table, summarize
from harness.analysis.whatif import WhatIf, what_if, what_if_table

__all__ = [
    "ANALYSIS_SCHEMA_VERSION",
    "SUMMARY_SCHEMA_VERSION",
    "Analysis",
    "Branches",
    "CpSpan",
    "DataQuality",
    "Section",
    "WhatIf",
    "analyze",
    "analyze_files",
    "bootstrap_diff",
    "branch_table",
    "compare_variants",
    "critical_path",
    "efficiency_table",
    "exclusive_critical_time",
    "foreign_bottlenecks",
    "harness_bottlenecks",
    "mann_whitney_p",
    "read_spans",
    "run_critical_paths",
    "runs_table",
    "steps_table",
    "summarize",
    "what_if",
    "what_if_table",
]
