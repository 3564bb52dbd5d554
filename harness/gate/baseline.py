"""Baselines: writing one on purpose, and reading a baseline file or a summary.json.

A **baseline file** (``parabench gate --update-baseline PATH``) is JSON: the
raw per-run values of every variant of one scenario, with what they can be
compared with::

    {"schema": "parabench.gate.baseline/1", "scenario": "research_assistant",
     "side": "client", "time_scale": 0.1, "parabench_version": "0.1.0",
     "created": "2025-01-31T12:00:00+00:00", "source": "reports/ci",
     "variants": {"parallel": {"completed": [true, ...], "e2e_ms": [...],
                               "ttfc_ms": [...], "speed_index_ms": [...],
                               "cost_usd": [...]}}}

Values are as measured (not divided by the time scale); null where a run has
none. A **summary.json** (``parabench run`` / ``parabench report``) holds only
percentiles: a gate can compare point estimates with it and nothing more.
``load_baseline`` also takes a run dir (``harness.gate.rundata``).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.errors import ConfigError
from harness.gate.metrics import REGRESSION_METRICS
from harness.gate.rundata import (
    COLUMNS,
    Array,
    RunData,
    Side,
    VariantRuns,
    floats,
    load_run_dir,
    no_runs_of,
    resolve_time_scale,
)

__all__ = ["BASELINE_SCHEMA", "load_baseline", "write_baseline"]

BASELINE_SCHEMA = "parabench.gate.baseline/1"


def _json_list(values: Array | npt.NDArray[np.bool_]) -> list[Any]:
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values.tolist()]


def write_baseline(data: RunData, path: str | Path) -> Path:
    """Write the raw per-run values of ``data`` as a baseline file (JSON); return its path."""
    from harness import __version__

    out = Path(path)
    document = {
        "schema": BASELINE_SCHEMA,
        "scenario": data.scenario,
        "side": data.side,
        "time_scale": data.time_scale,
        "parabench_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": data.path,
        "variants": {
            name: {
                "completed": _json_list(runs.completed),
                **{c: _json_list(getattr(runs, c)) for c in COLUMNS},
            }
            for name, runs in data.variants.items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "no such file or directory",
            where=str(path),
            fix="give a run dir, a baseline file (--update-baseline) or a summary.json",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"not a JSON file ({type(exc).__name__})",
            where=str(path),
            fix="give a run dir, a baseline file (--update-baseline) or a summary.json",
        ) from None


def _from_baseline_file(path: Path, doc: dict[str, Any], scenario: str) -> RunData:
    if doc.get("scenario") != scenario:
        raise no_runs_of(path, {str(doc.get("scenario"))}, scenario)
    try:
        variants = {
            name: VariantRuns.from_columns(
                [bool(c) for c in v["completed"]], {c: floats(v[c]) for c in COLUMNS}
            )
            for name, v in doc["variants"].items()
        }
        side, time_scale = doc["side"], float(doc["time_scale"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"a damaged baseline file ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="write it again with parabench gate --update-baseline",
        ) from None
    if side not in ("client", "server"):
        raise ConfigError(
            f"unknown side {side!r}", where=str(path), fix="write it again with --update-baseline"
        )
    return RunData(str(path), "baseline file", scenario, side, time_scale, variants)


def _summary_points(block: dict[str, Any]) -> dict[str, float | None]:
    points: dict[str, float | None] = {}
    for name, metric in REGRESSION_METRICS.items():
        if metric.column == "error":
            value = block.get("error_rate")
            if value is None and block.get("runs"):
                value = 1.0 - block.get("completed_runs", 0) / block["runs"]
        elif metric.column == "cost_usd":
            value = (block.get("cost_usd_per_run") or {}).get("mean")
        else:
            value = (block.get(metric.column) or {}).get(f"p{round(100 * (metric.quantile or 0))}")
        points[name] = float(value) if isinstance(value, int | float) else None
    return points


def _from_summary(
    path: Path, doc: dict[str, Any], scenario: str, side: Side, time_scale: float | None
) -> RunData:
    entries = [e for e in doc.get("variants") or [] if e.get("scenario") == scenario]
    if not entries:
        raise no_runs_of(path, {str(e.get("scenario")) for e in doc["variants"]}, scenario)
    points: dict[str, dict[str, float | None]] = {}
    scales: set[float] = set()
    for entry in entries:
        block = entry.get("client") if side == "client" else entry
        if side == "server" and not entry.get("runs"):
            block = None
        if block:
            points[str(entry["variant"])] = _summary_points(block)
            if isinstance(entry.get("time_scale"), int | float):
                scales.add(float(entry["time_scale"]))
    if not points:
        raise ConfigError(
            f"no {side}-side figures of scenario '{scenario}'",
            where=str(path),
            fix="compare like with like: use a summary written from the same kind of run",
        )
    return RunData(
        str(path), "summary", scenario, side, resolve_time_scale(path, sorted(scales), time_scale),
        points=points,
    )  # fmt: skip


def load_baseline(
    path: str | Path, scenario: str, *, side: Side, time_scale: float | None = None
) -> RunData:
    """Read a baseline: a run dir, a baseline file or a summary.json, on ``side``."""
    path = Path(path)
    if path.is_dir():
        return load_run_dir(path, scenario, side=side, time_scale=time_scale)
    doc = _read_json(path)
    if isinstance(doc, dict) and doc.get("schema") == BASELINE_SCHEMA:
        return _from_baseline_file(path, doc, scenario)
    if isinstance(doc, dict) and isinstance(doc.get("variants"), list):
        return _from_summary(path, doc, scenario, side, time_scale)
    raise ConfigError(
        "neither a baseline file nor a summary.json",
        where=str(path),
        fix="give a run dir, a file written by --update-baseline, or a summary.json",
    )
