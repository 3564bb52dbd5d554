"""Run a benchmark's measuring half in a fresh interpreter (shared by the scripts in bench/).

A fresh process pays its own imports and has a peak RSS of its own, so the
figures are the measured code's, not the generator's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console


def measure_in_child(
    script: str | Path, source: Path, result_path: Path, console: Console
) -> dict[str, Any] | None:
    """Run ``script --measure SOURCE RESULT``; the JSON it wrote, or ``None`` if it failed."""
    child = subprocess.run(
        [sys.executable, str(Path(script).resolve()), "--measure", source, result_path],
        check=False,
    )
    if child.returncode != 0 or not result_path.exists():
        console.print(f"[red]the measuring process failed (exit {child.returncode})")
        return None
    measured: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return measured
