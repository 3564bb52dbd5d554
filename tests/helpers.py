"""Helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

_SCRIPT = Path(sys.executable).with_name("parabench")
PARABENCH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "harness.cli"]

Result = subprocess.CompletedProcess[str]


def parabench(*args: str | Path, cwd: Path, module: bool = False, timeout: float = 120) -> Result:
    """Run the CLI as a real subprocess in ``cwd``, the way a user runs it, and capture its output.

    ``OTEL_*`` variables are dropped so no test exports to a collector, and a wide
    terminal keeps rich from wrapping the messages tests assert on.
    """
    command = [sys.executable, "-m", "harness.cli"] if module else PARABENCH
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        env=_env(),
        check=False,
    )


def start_parabench(*args: str | Path, cwd: Path) -> subprocess.Popen[str]:
    """Start the CLI like ``parabench()`` (same command, same environment) without waiting.

    stdout and stderr are text pipes; the caller waits, signals or kills it.
    """
    return subprocess.Popen(
        [*PARABENCH, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=_env(),
    )


def _env() -> dict[str, str]:
    """No ``OTEL_*`` (no test exports to a collector); a wide terminal (messages unwrapped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONIOENCODING="utf-8", NO_COLOR="1", COLUMNS="200")
    return env


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


def system_binary(name: str, what: str, package: str = "prometheus") -> str:
    """The path of a binary from a Debian package (``promtool``, ``prometheus``, ``chromium``).

    Without it the test skips loudly, saying ``what`` went unchecked; with
    ``PARABENCH_REQUIRE_SYSTEM_DEPS=1`` (as .ci/run sets) it fails instead.
    """
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if found is None:
        if os.environ.get("PARABENCH_REQUIRE_SYSTEM_DEPS") == "1":
            pytest.fail(f"{name} is required (PARABENCH_REQUIRE_SYSTEM_DEPS=1) but missing")
        pytest.skip(
            f"{name.upper()} NOT INSTALLED, so not checked: {what}; run "
            f"scripts/setup-system.sh (Debian package '{package}')"
        )
    return found


def assert_file_error(result: Result, path: Path, expect: dict[str, str]) -> None:
    """A clean exit 2 whose message names ``path``, the expected field, problem and fix.

    ``expect`` comes from the file's ``# expect-*`` header (see ``expectations``);
    a field of ``-`` means the problem is not about one field.
    """
    assert_clean_failure(result)
    assert result.stderr.startswith(f"error: {path}: ")
    if expect["field"] != "-":
        assert f"field '{expect['field']}'" in result.stderr
    what, _, fix = result.stderr.rstrip("\n").partition("\n  fix: ")
    assert expect["text"] in what
    assert expect["fix"] in fix
    # One message: the problem on one line, the fix on the next.
    assert "\n" not in what and "\n" not in fix


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Spans of an OTLP JSON lines file, with plain attribute values."""
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    attrs = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
                    spans.append({**span, "attrs": attrs})
    return spans
