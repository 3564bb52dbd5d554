"""A gate's result for people and for CI: a terminal table, Markdown and JUnit XML.

* ``print_result`` — a rich table, one row per check, then the verdict;
* ``to_markdown`` — the same as a Markdown section for a pull-request comment;
* ``to_junit`` — JUnit XML: one ``<testsuite>`` per gate (inside
  ``<testsuites>``), one ``<testcase>`` per check; a ``fail`` is a
  ``<failure>``, an ``inconclusive`` check is ``<skipped>`` with its reason, a
  ``warn`` passes with the warning in ``<system-out>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import ConfigError
from harness.gate.checks import Check, GateResult

__all__ = ["format_value", "print_result", "to_junit", "to_markdown", "write_outputs"]

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "inconclusive": "cyan"}
_ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "inconclusive": "❔"}
_COLUMNS = ("status", "variant", "check", "measured", "limit", "interval", "n", "note")
_RIGHT = {"measured", "limit", "n"}


def format_value(value: float | None, unit: str) -> str:
    """A number in its unit, as the table shows it."""
    if value is None:
        return "–"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "usd":
        return f"${value:.4g}"
    if unit == "fraction":
        return f"{value:.2%}"
    if unit == "relative":
        return f"{value:+.1%}"
    if unit == "points":
        return f"{value * 100:+.2f} pts"
    if unit == "usd_per_ms":
        return f"${value:.3g}/ms"
    return f"{value:.3f}"


def _limit(check: Check) -> str:
    if check.threshold is None:
        return "–"
    sign = "≥" if check.bound == "min" else "≤"
    return f"{sign} {format_value(check.threshold, check.unit)}"


def _interval(check: Check) -> str:
    if check.ci is None:
        return "–"
    low, high = (format_value(v, check.unit) for v in check.ci)
    return f"[{low}, {high}]"


def _n(check: Check) -> str:
    if check.n is None:
        return "–"
    return str(check.n) if check.n_baseline is None else f"{check.n} vs {check.n_baseline}"


def _note(check: Check) -> str:
    parts = [check.detail] if check.detail else []
    if check.n_needed is not None:
        per = " per side" if check.kind == "regression" else ""
        parts.append(f"≈{check.n_needed:,} runs{per} would decide")
    return "; ".join(parts)


def _row(check: Check) -> list[str]:
    return [
        check.status,
        check.variant,
        check.name if check.kind != "regression" else f"Δ {check.name}",
        format_value(check.measured, check.unit),
        _limit(check),
        _interval(check),
        _n(check),
        _note(check),
    ]


def _summary_line(result: GateResult) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in result.counts().items() if n)
    return f"{result.status.upper()} ({counts or 'no checks'})"


def _sources(result: GateResult) -> list[str]:
    lines = [f"budget: {result.budget.source}", f"current: {result.current.describe()}"]
    if result.baseline is not None:
        lines.append(f"baseline: {result.baseline.describe()}")
    confidence = f"{result.budget.confidence:.0%}"
    lines.append(
        f"latencies at real speed (measured ÷ time scale); intervals: {confidence} bootstrap"
    )
    return lines + result.notes


def print_result(result: GateResult, console: Console) -> None:
    """The checks as a table, what was compared, and the verdict."""
    table = Table(title=f"gate: {result.budget.scenario}", title_justify="left")
    for col in _COLUMNS:
        table.add_column(col, justify="right" if col in _RIGHT else "left")
    for check in result.checks:
        cells = [escape(c) for c in _row(check)]
        cells[0] = f"[{_STYLE[check.status]}]{cells[0]}[/]"
        table.add_row(*cells)
    for line in _sources(result):
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(table)
    style = _STYLE[result.status]
    console.print(f"[{style}]{escape(_summary_line(result))}[/]", highlight=False)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(result: GateResult) -> str:
    """A Markdown section for a pull-request comment."""
    icon = _ICON[result.status]
    lines = [
        f"### {icon} parabench gate: {result.budget.scenario} — {_summary_line(result)}",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join("---:" if c in _RIGHT else "---" for c in _COLUMNS) + "|",
    ]
    for check in result.checks:
        cells = _row(check)
        cells[0] = f"{_ICON[check.status]} {cells[0]}"
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines.append("")
    lines += [f"- {_md_cell(line)}" for line in _sources(result)]
    return "\n".join(lines) + "\n"


def to_junit(result: GateResult) -> str:
    """JUnit XML: one testsuite, one testcase per check (see the module docstring)."""
    counts = result.counts()
    totals = {
        "tests": str(len(result.checks)),
        "failures": str(counts["fail"]),
        "errors": "0",
        "skipped": str(counts["inconclusive"]),
        "time": "0",
    }
    root = ET.Element("testsuites", {"name": "parabench gate", **totals})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": f"parabench gate {result.budget.scenario}",
            **totals,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    facts = [("budget", result.budget.source), ("current", result.current.describe())]
    if result.baseline is not None:
        facts.append(("baseline", result.baseline.describe()))
    facts.append(("confidence", f"{result.budget.confidence:g}"))
    facts += [("note", note) for note in result.notes]
    properties = ET.SubElement(suite, "properties")
    for name, value in facts:
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for check in result.checks:
        name = check.name if check.kind != "regression" else f"regression {check.name}"
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"{result.budget.scenario}.{check.variant}", "name": name, "time": "0"},
        )
        row = dict(zip(_COLUMNS, _row(check), strict=True))
        text = "; ".join(f"{k}: {v}" for k, v in row.items() if k not in {"status", "variant"})
        message = f"{row['check']}: {row['measured']} (limit {row['limit']})"
        if check.status == "fail":
            failure = ET.SubElement(case, "failure", {"message": message, "type": "fail"})
            failure.text = text
        elif check.status == "inconclusive":
            ET.SubElement(case, "skipped", {"message": f"inconclusive: {_note(check) or message}"})
        elif check.status == "warn":
            ET.SubElement(case, "system-out").text = f"warn: {text}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_outputs(result: GateResult, *, markdown: Path | None, junit: Path | None) -> None:
    """Write the Markdown and JUnit files asked for; ``ConfigError`` if one cannot be written."""
    for path, text, option in ((markdown, to_markdown, "--markdown"), (junit, to_junit, "--junit")):
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text(result), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write {path}: {exc.strerror or exc}",
                where=option,
                fix="give a path in a writable directory",
            ) from None
