"""Helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("parabench")
PARABENCH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "harness.cli"]

Result = subprocess.CompletedProcess[str]


def parabench(*args: str | Path, cwd: Path, module: bool = False, timeout: float = 120) -> Result:
    """Run the CLI as a real subprocess in ``cwd``, the way a user runs it, and capture its output.

    ``OTEL_*`` variables are dropped so no test exports to a collector, and a wide
    terminal keeps rich from wrapping the messages tests assert on.
    """
    command = [sys.executable, "-m", "harness.cli"] if module else PARABENCH
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONIOENCODING="utf-8", NO_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        env=env,
        check=False,
    )


def assert_clean_failure(result: Result) -> None:
    """Exit code 2, a message on stderr, nothing on stdout, no traceback anywhere."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    assert result.stderr.startswith("error: "), output
    assert result.stdout == ""


def expectations(path: Path) -> dict[str, str]:
    """The ``# expect-<what>: <text>`` header lines a bad scenario file carries."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# expect-"):
            key, _, value = line.removeprefix("# expect-").partition(": ")
            out[key] = value
    return out
