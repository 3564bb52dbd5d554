"""The raw per-run values a gate judges: from a run dir, a baseline file or a summary.json.

A **run dir** is what ``parabench run`` (``spans.jsonl``), ``parabench load``
(``samples.jsonl``) or ``parabench demo`` (both) wrote. Its latencies come from
one *side*:

* ``client`` — ``samples.jsonl``, one sample per run as the load generator saw
  it (what a user waits for); the default when the file exists;
* ``server`` — the run spans in ``spans.jsonl`` (run span start → end).

Executor efficiency and the cost per ms saved of each parallel branch exist
only in spans; they are read from ``spans.jsonl`` whichever side gives the
latencies. The time scale comes from the run spans; client samples alone do
not record it, so it is then given on the command line (``--time-scale``).

Baseline files and summary.json baselines are read in ``harness.gate.baseline``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harness.errors import ConfigError
from harness.gate.metrics import Metric

__all__ = [
    "COLUMNS",
    "BranchFigure",
    "RunData",
    "Side",
    "VariantRuns",
    "floats",
    "load_run_dir",
    "no_runs_of",
    "parse_side",
    "resolve_time_scale",
]

Side = Literal["client", "server"]
Array = npt.NDArray[np.float64]
#: The per-run values kept besides the completed flag.
COLUMNS = ("e2e_ms", "ttfc_ms", "speed_index_ms", "cost_usd")
_RUN_DIR_FIX = (
    "point at a directory written by `parabench run --out DIR` (spans.jsonl) or "
    "`parabench load --out DIR` (samples.jsonl)"
)


@dataclass(frozen=True)
class BranchFigure:
    """One parallel branch over a variant's runs (``harness.analysis.branches``)."""

    usd_per_ms_saved: float | None
    verdict: str
    reason: str


@dataclass
class VariantRuns:
    """One variant's runs, one entry per run, in measured units (not ÷ time scale).

    ``efficiency`` (per completed run) and ``branches`` are None when the data
    has no spans to compute them from.
    """

    completed: npt.NDArray[np.bool_]
    e2e_ms: Array
    ttfc_ms: Array
    speed_index_ms: Array
    cost_usd: Array
    efficiency: Array | None = None
    branches: dict[str, BranchFigure] | None = None

    @classmethod
    def from_columns(cls, completed: npt.ArrayLike, columns: dict[str, Array]) -> VariantRuns:
        """From the completed flags and one array per column of ``COLUMNS``."""
        e2e, ttfc, speed_index, cost = (columns[c] for c in COLUMNS)
        return cls(np.asarray(completed, dtype=bool), e2e, ttfc, speed_index, cost)

    @property
    def runs(self) -> int:
        return int(self.completed.size)

    def values(self, metric: Metric) -> Array:
        """The values the metric is a statistic of (see ``harness.gate.metrics``)."""
        if metric.column == "error":
            return (~self.completed).astype(float)
        if metric.column == "efficiency":
            values = self.efficiency if self.efficiency is not None else np.empty(0)
        else:
            values = getattr(self, metric.column)
            if metric.completed_only:
                values = values[self.completed]
        return values[~np.isnan(values)]


@dataclass
class RunData:
    """One scenario's runs from one source, per variant, with their side and time scale.

    ``points`` (summary.json only) holds a point estimate per variant and
    regression metric, in measured units; ``variants`` is then empty.
    """

    path: str
    origin: Literal["run dir", "baseline file", "summary"]
    scenario: str
    side: Side
    time_scale: float
    variants: dict[str, VariantRuns] = field(default_factory=dict)
    points: dict[str, dict[str, float | None]] = field(default_factory=dict)
    read: list[str] = field(default_factory=list)

    @property
    def raw(self) -> bool:
        """Whether it holds raw per-run values (not just a summary's percentiles)."""
        return self.origin != "summary"

    @property
    def variant_names(self) -> list[str]:
        return list(self.variants or self.points)

    def describe(self) -> str:
        """One line: where from, which side, what time scale, how many runs."""
        counts = ", ".join(f"{v} {r.runs}" for v, r in self.variants.items())
        runs = f"; runs: {counts}" if counts else ""
        files = f" ({', '.join(self.read)})" if self.read else ""
        return (
            f"{self.path}: {self.origin}{files}, {self.side} side, "
            f"time scale {self.time_scale:g}{runs}"
        )


def floats(values: list[Any]) -> Array:
    """Numbers as floats; anything else (None, text) as NaN."""
    return np.array(
        [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
         for v in values],
        dtype=float,
    )  # fmt: skip


def _from_samples(samples: list[dict[str, Any]]) -> dict[str, VariantRuns]:
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_variant.setdefault(str(sample.get("variant")), []).append(sample)
    return {
        variant: VariantRuns.from_columns(
            [s.get("outcome") == "completed" for s in group],
            {c: floats([s.get(c) for s in group]) for c in COLUMNS},
        )
        for variant, group in by_variant.items()
    }


def _from_runs(runs: Any) -> dict[str, VariantRuns]:
    return {
        str(variant): VariantRuns.from_columns(
            (group.outcome == "completed").to_numpy(dtype=bool),
            {c: group[c].to_numpy(dtype=float) for c in COLUMNS},
        )
        for variant, group in runs.groupby("variant", sort=False)
    }


@dataclass
class _SpanFigures:
    """What a run dir's spans say about one scenario's runs."""

    runs: Any  # the runs table (harness.analysis.runs), this scenario's runs only
    scenarios: set[str]
    efficiency: dict[str, Array] = field(default_factory=dict)
    branches: dict[str, dict[str, BranchFigure]] = field(default_factory=dict)


def _span_figures(spans_path: Path, scenario: str, trace_ids: set[str]) -> _SpanFigures:
    """Runs, efficiencies and branch figures of ``scenario``; of ``trace_ids`` if any match.

    A load's run dir may hold the service's spans of more runs than the samples
    (a warm-up, another load): the runs the samples name are the ones judged.
    """
    from harness.analysis.branches import branch_table
    from harness.analysis.ingest import read_spans
    from harness.analysis.runs import runs_table, steps_table
    from harness.analysis.summary import efficiency_table

    spans, _ = read_spans(spans_path)
    every = runs_table(spans)
    runs = every[every.scenario == scenario]
    joined = runs[runs.trace_id.isin(trace_ids)]
    if not joined.empty:
        runs = joined
    found = _SpanFigures(runs, set(every.scenario))
    if runs.empty:
        return found
    steps = steps_table(spans, runs)
    eff = efficiency_table(runs, steps)
    for variant, group in eff.groupby("variant", sort=False):
        found.efficiency[str(variant)] = group.efficiency.to_numpy(dtype=float)
    for row in branch_table(steps, runs).branches.itertuples():
        per_ms = row.usd_per_ms_saved
        known = isinstance(per_ms, int | float) and math.isfinite(per_ms)
        found.branches.setdefault(str(row.variant), {})[str(row.step)] = BranchFigure(
            float(per_ms) if known else None, str(row.verdict), str(row.reason or "")
        )
    return found


def no_runs_of(path: Path, names: set[str], scenario: str) -> ConfigError:
    """The error for a source without runs of ``scenario``, naming those it has."""
    found = ", ".join(sorted(names)) or "none"
    return ConfigError(
        f"no runs of scenario '{scenario}' (scenarios found: {found})",
        where=str(path),
        fix="gate the run dir of the budget's scenario, or use that scenario's budget file",
    )


def resolve_time_scale(path: Path, measured: list[float], given: float | None) -> float:
    """The one time scale the runs recorded, else ``--time-scale``; ``ConfigError`` if neither."""
    if len(measured) > 1:
        raise ConfigError(
            "runs recorded at several time scales (" + ", ".join(f"{s:g}" for s in measured) + ")",
            where=str(path),
            fix="gate runs of one time scale: one run dir per time scale",
        )
    if measured:
        if given is not None and not math.isclose(given, measured[0]):
            raise ConfigError(
                f"--time-scale {given:g} disagrees with the runs' own {measured[0]:g}",
                where=str(path),
                fix="drop --time-scale: the spans record it",
            )
        return measured[0]
    if given is None:
        raise ConfigError(
            "the time scale is unknown: client samples do not record it and the "
            "directory has no spans.jsonl of this scenario",
            where=str(path),
            fix="pass --time-scale with the value the service ran at (parabench serve "
            "--time-scale), or have the service write its spans into the run dir (--spans)",
        )
    return given


def parse_side(value: str | None) -> Side | None:
    """``--side``: client, server, or None (client when the run dir has samples)."""
    if value is None:
        return None
    if value == "client":
        return "client"
    if value == "server":
        return "server"
    raise ConfigError(f"unknown side '{value}'", where="--side", fix="use client or server")


def load_run_dir(
    path: str | Path,
    scenario: str,
    *,
    side: Side | None = None,
    time_scale: float | None = None,
) -> RunData:
    """Read one scenario's runs from a run dir; ``side`` None picks client if it can.

    Raises ``ConfigError`` (exit 2) when the directory holds no runs of the
    scenario, lacks the side asked for, or its time scale is unknown or mixed.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError("not a directory", where=str(path), fix=_RUN_DIR_FIX)
    samples_path, spans_path = path / "samples.jsonl", path / "spans.jsonl"
    has_samples, has_spans = samples_path.is_file(), spans_path.is_file()
    if not (has_samples or has_spans):
        raise ConfigError("no samples.jsonl and no spans.jsonl", where=str(path), fix=_RUN_DIR_FIX)
    chosen: Side = side or ("client" if has_samples else "server")
    if chosen == "client" and not has_samples:
        raise ConfigError(
            "no client-side samples (samples.jsonl) to compare with",
            where=str(path),
            fix="compare like with like: gate a load against a load's run dir, or pass "
            "--side server to use the spans of both",
        )
    if chosen == "server" and not has_spans:
        raise ConfigError(
            "no server-side spans (spans.jsonl) to compare with",
            where=str(path),
            fix="compare like with like: gate a `parabench run` dir against another, or "
            "have the service write its spans into the run dir (parabench serve --spans)",
        )
    read: list[str] = []
    variants: dict[str, VariantRuns] = {}
    trace_ids: set[str] = set()
    if chosen == "client":
        from harness.load.samples import read_samples

        samples = read_samples(samples_path)
        mine = [s for s in samples if s.get("scenario") == scenario]
        if not mine:
            raise no_runs_of(path, {str(s.get("scenario")) for s in samples}, scenario)
        variants = _from_samples(mine)
        trace_ids = {str(s["trace_id"]) for s in mine if s.get("trace_id")}
        read.append("samples.jsonl")
    scales: list[float] = []
    if has_spans:
        figures = _span_figures(spans_path, scenario, trace_ids)
        read.append("spans.jsonl")
        if chosen == "server":
            if figures.runs.empty:
                raise no_runs_of(path, figures.scenarios, scenario)
            variants = _from_runs(figures.runs)
        scales = sorted(set(figures.runs.time_scale.astype(float)))
        for name, runs in variants.items():
            runs.efficiency = figures.efficiency.get(name, np.empty(0))
            runs.branches = figures.branches.get(name, {})
    return RunData(
        path=str(path),
        origin="run dir",
        scenario=scenario,
        side=chosen,
        time_scale=resolve_time_scale(path, scales, time_scale),
        variants=variants,
        read=read,
    )
