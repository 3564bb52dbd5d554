"""Rewrite one benchmark's marked section of docs/benchmarks.md (shared by the scripts in bench/).

Each benchmark owns the lines between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` and rewrites only them; the other sections are kept as
they are.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS_PATH = REPO / "docs" / "benchmarks.md"

#: Every benchmark, in the order ``bench/run_all.py`` runs them and the page shows
#: them: (script name in bench/, section marker name, section heading, its question).
SECTIONS = (
    ("executor_efficiency", "executor-efficiency", "Executor efficiency",
     "does the executor reach the lower bound of a run?"),
    ("simulator_throughput", "simulator-throughput", "Simulator throughput",
     "how many concurrent streams does the simulator serve with its timing intact?"),
    ("service_capacity", "service-capacity", "Service capacity",
     "how many concurrent runs does the agent service carry at its lower bound?"),
    ("analysis_scale", "analysis-scale", "Analysis at scale",
     "does the analysis keep up with a million step spans?"),
    ("report_scale", "report-scale", "Report at scale",
     "how long does `parabench report` take on 10,000 runs?"),
    ("simulator_vs_guidellm", "simulator-vs-guidellm", "Simulator vs GuideLLM's mock server",
     "how does our simulator compare with GuideLLM's mock server?"),
    ("soak", "soak", "Soak and overload",
     "does the service refuse fast at 3× its limit, recover, and hold steady for 10 minutes?"),
)  # fmt: skip


def _anchor(heading: str) -> str:
    """The link target GitHub gives a ``## heading``."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _docs_intro() -> str:
    items = "".join(
        f"- [{heading}](#{_anchor(heading)}) — {question} (`bench/{script}.py`)\n"
        for script, _, heading, question in SECTIONS
    )
    return (
        "# Benchmarks\n\n"
        "Every figure here is produced by a script under `bench/` "
        "([bench/README.md](../bench/README.md)). One command reruns them all and rewrites this "
        "page:\n\n"
        "```sh\n"
        "make bench    # .venv/bin/python bench/run_all.py: every benchmark but the soak\n"
        "make soak     # the 10-minute soak alone (or bench/run_all.py --with-soak: all of them)\n"
        "```\n\n"
        "Each script rewrites only its own section, with the machine, the exact command and the "
        "date of its figures; `run_all.py` also records its last full run below.\n\n" + items
    )


DOCS_INTRO = _docs_intro()


def marks(name: str) -> tuple[str, str]:
    """The start and end markers of benchmark ``name``'s section."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def footer(machine: str, command: str, date: str, end_mark: str) -> list[str]:
    """A section's last lines: the machine, the exact command, the date, its end marker."""
    return [f"- Machine: {machine}", f"- Command: `{command}`", f"- Date: {date}", end_mark, ""]


def rewrite_section(path: Path, section: str, start_mark: str, end_mark: str) -> None:
    """Replace the section between ``start_mark`` and ``end_mark`` in ``path``, keeping the rest.

    ``section`` includes both markers. Without the markers (a hand-edited file)
    the section is found by its own ``## `` heading, up to the next heading or
    another benchmark's start marker; failing that, it is appended. A missing
    file is created with the page's introduction.
    """
    section = section.rstrip("\n") + "\n"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DOCS_INTRO + "\n" + section, encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8")
    start, end = text.find(start_mark), text.find(end_mark)
    if start != -1 and end > start:
        before, after = text[:start], text[end + len(end_mark) :]
    else:
        found = _heading_span(text, _heading(section))
        if found is None:
            before, after = text.rstrip("\n") + "\n\n", ""
        else:
            before, after = text[: found[0]], text[found[1] :]
    after = after.lstrip("\n")
    path.write_text(before + section + ("\n" + after if after else ""), encoding="utf-8")


def _heading(section: str) -> str | None:
    return next((line for line in section.splitlines() if line.startswith("## ")), None)


def _heading_span(text: str, heading: str | None) -> tuple[int, int] | None:
    """Character offsets of the unmarked section under ``heading``, or ``None``."""
    if heading is None:
        return None
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    first = None
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if first is None and line.rstrip() == heading:
            first = i
        elif first is not None and (
            line.startswith("## ") or (line.startswith("<!--") and ":start -->" in line)
        ):
            return offsets[first], offsets[i]
    return None if first is None else (offsets[first], len(text))
