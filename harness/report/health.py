"""Tables about how the run held up and what it was made of: load, queues, errors, data.

The load sweep per concurrency level (client samples), how runs ended per
variant (run spans and client samples), queue time per variant (step spans),
failed LLM and tool attempts by ``error.type`` (429s included), data-quality
findings with what each means, and the files of the run directory. Latencies
are seconds at real speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.report._cells import Table, make_table, pct, scaled_ms
from harness.report.build import ReportData
from harness.report.findings import fmt_s

__all__ = [
    "errors_table",
    "files_table",
    "load_table",
    "outcomes_table",
    "quality_table",
    "queue_table",
]


def load_table(summary: dict[str, Any]) -> Table:
    rows = []
    for entry in summary["variants"]:
        client = entry.get("client") or {}
        scale = entry["time_scale"] or 1.0
        for level in client.get("concurrency_levels", []):
            outcomes = level["outcomes"]
            rows.append(
                [
                    entry["scenario"],
                    entry["variant"],
                    str(level["concurrency"]),
                    str(level["runs"]),
                    fmt_s(scaled_ms(level["e2e_ms"]["p50"], scale), 2),
                    fmt_s(scaled_ms(level["e2e_ms"]["p95"], scale), 2),
                    fmt_s(scaled_ms(level["ttfc_ms"]["p95"], scale), 2),
                    str(outcomes.get("rejected", 0)),
                    str(outcomes.get("failed", 0) + outcomes.get("error", 0)),
                    pct(level["error_rate"], 1),
                ]
            )
    columns = [
        "scenario",
        "variant",
        "users",
        "runs",
        "e2e p50",
        "e2e p95",
        "TTFC p95",
        "rejected (503)",
        "failed or error",
        "not completed",
    ]
    return make_table(columns, rows, 2)


#: Outcome columns of ``outcomes_table``: run spans have the first four, samples all but cancelled.
_OUTCOME_COLUMNS = ("completed", "partial", "failed", "cancelled", "rejected", "error")


def outcomes_table(summary: dict[str, Any]) -> Table:
    """How runs ended, per variant and side, with the failed attempts by ``error.type``.

    Server side from the run spans (``cancelled``: the client left, or the
    service stopped); client side from the load samples (``rejected``: 503,
    ``error``: no response or a stream cut short). "–" where a side cannot
    have that outcome.
    """
    rows = []
    for entry in summary["variants"]:
        errors = ", ".join(f"{kind} × {n}" for kind, n in (entry.get("errors") or {}).items())
        sides = [("server", entry["outcomes"], entry["runs"])] if entry["runs"] else []
        if client := entry.get("client"):
            sides.append(("client", client["outcomes"], client["runs"]))
        for side, outcomes, runs in sides:
            cells = [
                str(outcomes.get(k, 0))
                if (k != "cancelled" or side == "server")
                and (k not in ("rejected", "error") or side == "client")
                else "–"
                for k in _OUTCOME_COLUMNS
            ]
            attempts = (errors or "none") if side == "server" else "–"
            rows.append([entry["scenario"], entry["variant"], side, str(runs), *cells, attempts])
    columns = ["scenario", "variant", "side", "runs", *_OUTCOME_COLUMNS, "failed attempts"]
    return Table(columns, rows, set(range(3, len(columns) - 1)))


def queue_table(data: ReportData, scales: dict[tuple[str, str], float]) -> Table:
    rows = []
    steps = data.analysis.steps if data.analysis is not None else pd.DataFrame()
    for (scenario, variant), group in (
        steps.groupby(["scenario", "variant"], sort=False) if (not steps.empty) else ()
    ):
        scale = scales.get((scenario, variant), 1.0)
        measured = group.queue_ms.to_numpy(dtype=float)
        queue = measured / scale
        per_run = group.groupby("trace_id").queue_ms.sum().to_numpy(dtype=float) / scale
        rows.append(
            [
                str(scenario),
                str(variant),
                # Under a millisecond (as measured) is the event loop handing over, not a queue.
                pct(float((measured > 1.0).mean()), 1),
                fmt_s(float(queue.mean()), 2),
                fmt_s(float(np.quantile(queue, 0.95)), 2),
                fmt_s(float(per_run.mean()), 2),
            ]
        )
    columns = [
        "scenario",
        "variant",
        "steps that queued",
        "queue mean",
        "queue p95",
        "queued per run",
    ]
    return make_table(columns, rows, 2)


def errors_table(data: ReportData) -> Table:
    rows = [
        [
            str(r["scenario"]),
            str(r["variant"]),
            str(r["error_type"]),
            "yes" if r["rate_limited"] else "no",
            str(r["attempts"]),
        ]
        for r in data.provider_errors.to_dict(orient="records")
    ]
    return make_table(
        ["scenario", "variant", "error.type", "rate limited (429)", "failed attempts"], rows, 4
    )


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def files_table(data: ReportData) -> Table:
    """The run directory's files and what was read from each."""
    runs = len(data.analysis.runs) if data.analysis is not None else 0
    foreign = data.analysis.foreign_traces if data.analysis is not None else 0
    what = {
        "spans.jsonl": f"{len(data.spans):,} spans: {runs:,} harness runs, "
        f"{foreign:,} foreign traces",
        "samples.jsonl": f"{len(data.samples):,} load samples",
    }
    rows = [
        [f["name"], _size(f["bytes"]), what.get(f["name"], "not read")]
        for f in data.files
        if f["name"] not in ("report.html", "report.md")
    ]
    return make_table(["file", "size", "read"], rows)


_QUALITY_MEANING = {
    "orphan_span": "a parent id not in the trace (under parabench load, the service's "
    "request span has the load client's span as parent, which the client does not export)",
    "trace_without_root": "every span has a parent (follows from an orphan root)",
    "truncated_or_invalid_json": "a line that is not complete JSON: skipped",
    "invalid_sample_line": "a samples.jsonl line that is not a JSON object: skipped",
    "unknown_sample_schema": "a sample of another schema than parabench.load.sample/1: skipped",
    "end_before_start": "a span ending before it starts: its duration counts as 0",
    "child_outside_parent": "a child outside its parent's time (clock skew): clipped",
    "duplicate_span_id": "two spans with one id in a trace: the first is kept",
    "malformed_span": "a span without ids or times: skipped",
}


def quality_table(data: ReportData) -> Table:
    """Every data-quality finding: count, what it means, examples."""
    rows = [
        [name, str(v["count"]), _QUALITY_MEANING.get(name, ""), " · ".join(v["examples"])]
        for name, v in data.quality.to_dict().items()
    ]
    return make_table(["finding", "count", "meaning", "examples"], rows)
