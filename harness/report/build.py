"""Gather what a report needs from a run directory: spans, load samples, the analysis.

A run directory holds ``spans.jsonl`` (OTLP JSON lines, from ``parabench run``
or ``parabench serve``), ``samples.jsonl`` (load samples, from ``parabench
load``), or both. ``gather`` reads whichever exist, runs the analysis on the
spans (``harness.analysis.analyze``), reads the samples, and derives the few
tables the analysis does not keep: card times per run, provider errors per
variant, and, for foreign traces, which sibling spans overlapped in time.

Bad input is a ``ParabenchError`` that says what, where and how to fix it;
bad *data* (a torn line, a sample of an unknown schema) is a data-quality
finding, and the report is written from what is still usable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis import Analysis, DataQuality, analyze, read_spans
from harness.analysis.ingest import SPAN_COLUMNS
from harness.analysis.summary import error_table, summarize
from harness.errors import ConfigError, TraceDataError
from harness.report.overlap import inferred_overlaps

__all__ = ["SAMPLES_FILE", "SPANS_FILE", "ReportData", "error_table", "gather"]

SPANS_FILE = "spans.jsonl"
SAMPLES_FILE = "samples.jsonl"
# Kept from an existing summary.json when the report rewrites it (``parabench run`` adds them).
_CARRIED_KEYS = ("interrupted", "scenario_file")

Progress = Callable[[str], None]


@dataclass
class ReportData:
    """Everything the report shows, before any formatting."""

    run_dir: Path
    files: list[dict[str, Any]]
    spans: pd.DataFrame
    quality: DataQuality
    analysis: Analysis | None
    samples: list[dict[str, Any]]
    summary: dict[str, Any]
    baseline_variant: str | None
    cards: pd.DataFrame
    provider_errors: pd.DataFrame
    overlaps: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def has_spans(self) -> bool:
        return len(self.spans) > 0

    @property
    def has_runs(self) -> bool:
        return self.analysis is not None and not self.analysis.runs.empty


def _check_run_dir(run_dir: Path) -> tuple[Path | None, Path | None]:
    if not run_dir.exists():
        raise ConfigError(
            "no such run directory",
            where=str(run_dir),
            fix="pass the directory `parabench run --out`, `parabench serve --spans` or "
            "`parabench load --out` wrote to",
        )
    if not run_dir.is_dir():
        raise ConfigError(
            "not a directory: a report reads a run directory, not one file",
            where=str(run_dir),
            fix=f"pass the directory that holds {SPANS_FILE} and/or {SAMPLES_FILE} "
            f"(here: {run_dir.parent})",
        )
    spans = run_dir / SPANS_FILE
    samples = run_dir / SAMPLES_FILE
    found = (spans if spans.is_file() else None, samples if samples.is_file() else None)
    if found == (None, None):
        raise ConfigError(
            f"neither {SPANS_FILE} nor {SAMPLES_FILE} is in this directory",
            where=str(run_dir),
            fix="run `parabench run SCENARIO --out DIR` (spans) or `parabench load --out DIR` "
            "(samples) first, then `parabench report DIR`",
        )
    return found


def _read_samples(path: Path, quality: DataQuality) -> list[dict[str, Any]]:
    """Samples of schema ``parabench.load.sample/1``; every other line is a finding."""
    from harness.load.samples import SAMPLE_SCHEMA

    out: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                item = json.loads(line)
            except ValueError:
                quality.add("invalid_sample_line", f"{where}: not complete JSON")
                continue
            if not isinstance(item, dict):
                quality.add("invalid_sample_line", f"{where}: not a JSON object")
            elif item.get("schema", SAMPLE_SCHEMA) != SAMPLE_SCHEMA:
                quality.add(
                    "unknown_sample_schema", f"{where}: schema {item.get('schema')!r} (skipped)"
                )
            else:
                out.append(item)
    return out


def _run_spans(spans: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    return spans.set_index("span_id").loc[runs.span_id.drop_duplicates()]


def card_table(spans: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per completed harness run: when each card was shown (ms since the run started), by whom."""
    columns = ["trace_id", "scenario", "variant", "time_scale", "card_times_ms", "card_steps"]
    done = runs[runs.outcome == "completed"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    events = _run_spans(spans, done).events
    times, steps = [], []
    for ev, start in zip(events.loc[done.span_id], done.start_ns, strict=True):
        cards = sorted(
            (
                (e["time_ns"] - start) / 1e6,
                str(e.get("attributes", {}).get("parabench.step.id", "")),
            )
            for e in ev or ()
            if e["name"] == "parabench.card"
        )
        times.append([t for t, _ in cards])
        steps.append([sid for _, sid in cards])
    return pd.DataFrame(
        {
            "trace_id": done.trace_id.to_numpy(),
            "scenario": done.scenario.to_numpy(),
            "variant": done.variant.to_numpy(),
            "time_scale": done.time_scale.to_numpy(dtype=float),
            "card_times_ms": times,
            "card_steps": steps,
        }
    )


def _files(run_dir: Path) -> list[dict[str, Any]]:
    listed = []
    for path in sorted(run_dir.iterdir()):
        if path.is_file():
            listed.append({"name": path.name, "bytes": path.stat().st_size})
    return listed


def _carried(out_dir: Path) -> dict[str, Any]:
    try:
        old = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict):
        return {}
    return {k: old[k] for k in _CARRIED_KEYS if k in old}


def gather(
    run_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    baseline_variant: str | None = None,
    progress: Progress | None = None,
) -> ReportData:
    """Read ``run_dir`` and analyse it; raise ``ParabenchError`` when there is nothing to read."""
    say = progress or (lambda _: None)
    run_dir = Path(run_dir)
    spans_path, samples_path = _check_run_dir(run_dir)
    quality = DataQuality()
    spans = pd.DataFrame(columns=SPAN_COLUMNS)
    if spans_path is not None:
        say(f"reading {spans_path}")
        spans, quality = read_spans(spans_path)
    samples = _read_samples(samples_path, quality) if samples_path is not None else []
    if len(spans) == 0 and not samples:
        findings = "; ".join(f"{k}: {v['count']}" for k, v in quality.to_dict().items())
        raise TraceDataError(
            "nothing to report: no span and no load sample could be read"
            + (f" ({findings})" if findings else ""),
            where=", ".join(str(p) for p in (spans_path, samples_path) if p is not None),
            fix="pass a run directory whose spans.jsonl holds OTLP JSON lines "
            "(`parabench run --out DIR`) or whose samples.jsonl holds load samples "
            "(`parabench load --out DIR`)",
        )
    analysis = None
    if len(spans):
        analysis = analyze(
            spans,
            quality,
            baseline_variant=baseline_variant,
            files=[str(spans_path)],
            progress=say,
        )
    say("report tables")
    runs = analysis.runs if analysis is not None else _no_runs()
    errors = error_table(spans, runs)
    summary = summarize(
        spans,
        quality,
        runs=analysis.runs if analysis is not None else None,
        steps=analysis.steps if analysis is not None else None,
        efficiency=analysis.efficiency if analysis is not None else None,
        branches=_branches(analysis),
        samples=samples,
        errors=errors,
    )
    summary.update(_carried(Path(out_dir) if out_dir is not None else run_dir))
    foreign = spans if runs.empty else spans[~spans.trace_id.isin(set(runs.trace_id))]
    return ReportData(
        run_dir=run_dir,
        files=_files(run_dir),
        spans=spans,
        quality=quality,
        analysis=analysis,
        samples=samples,
        summary=summary,
        baseline_variant=baseline_variant,
        cards=card_table(spans, runs),
        provider_errors=errors,
        overlaps=inferred_overlaps(foreign),
        notes=list(analysis.notes) if analysis is not None else [],
    )


def _no_runs() -> pd.DataFrame:
    from harness.analysis.runs import RUN_COLUMNS

    return pd.DataFrame(columns=RUN_COLUMNS)


def _branches(analysis: Analysis | None) -> Any:
    from harness.analysis.branches import BRANCH_COLUMNS, FORK_COLUMNS, Branches

    if analysis is None:
        return Branches(pd.DataFrame(columns=BRANCH_COLUMNS), pd.DataFrame(columns=FORK_COLUMNS))
    return Branches(analysis.branches, analysis.forks)
