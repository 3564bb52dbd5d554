"""What a benchmark's figures were measured on (shared by the scripts in bench/)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import psutil


def machine_facts() -> dict[str, Any]:
    """CPUs as `nproc` counts them, the CPU model, memory, Python and the OS."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))  # what `nproc` prints
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {
        "nproc": nproc,
        "cpu": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def describe(facts: dict[str, Any]) -> str:
    """``machine_facts()`` as the docs print it: CPUs, model, memory, OS, Python."""
    return (
        f"{facts['nproc']} CPUs (`nproc`), {facts['cpu']}, {facts['memory_gb']} GB, "
        f"{facts['platform']}, Python {facts['python']}"
    )
