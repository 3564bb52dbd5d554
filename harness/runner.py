"""Run many runs of a scenario in process and write spans + summary (``parabench run``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.executor import Executor, RetryPolicy, RunResult
from harness.providers.base import LlmProvider
from harness.scenario import Scenario
from harness.telemetry import Telemetry

if TYPE_CHECKING:
    from harness.telemetry.metrics import Metrics

__all__ = ["BatchResult", "run_batch"]


@dataclass
class BatchResult:
    """What a batch produced: its files, the in-memory results, and whether it was cut short."""

    out_dir: Path
    spans_path: Path
    summary_path: Path
    summary: dict[str, Any]
    results: list[RunResult] = field(default_factory=list)
    interrupted: bool = False


async def _run_all(
    executor: Executor,
    variants: Sequence[str],
    runs: int,
    seed: int,
    concurrency: int,
    on_done: Callable[[RunResult], None],
) -> list[RunResult]:
    # Variants interleave (v1#0, v2#0, v1#1, ...) so drift over time hits all alike,
    # and run i of every variant draws the same random numbers: paired samples.
    jobs = [(i, v) for i in range(runs) for v in variants]
    slots = asyncio.Semaphore(max(concurrency, 1))
    results: list[RunResult] = []

    async def one(index: int, variant: str) -> None:
        async with slots:
            result = await executor.run(variant, seed=seed, run_index=index)
            results.append(result)
            on_done(result)

    tasks = [asyncio.create_task(one(i, v)) for i, v in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return results


def run_batch(
    scenario: Scenario,
    *,
    variants: Sequence[str],
    runs: int,
    out_dir: str | Path,
    seed: int = 0,
    time_scale: float = 1.0,
    concurrency: int = 1,
    provider: LlmProvider | None = None,
    on_done: Callable[[RunResult], None] | None = None,
    metrics: Metrics | None = None,
    retry: RetryPolicy | None = None,
) -> BatchResult:
    """Run ``runs`` runs of each variant; write ``spans.jsonl`` and ``summary.json``.

    The summary is computed by reading the written spans back. On Ctrl-C the
    runs in flight are cancelled (recorded as cancelled) and everything already
    collected is still flushed and summarised. ``metrics`` (optional) records
    the runs as the service's ``/metrics`` would; ``retry`` overrides the
    executor's retry policy.
    """
    from harness.analysis.summary import write_summary

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spans_path = out / "spans.jsonl"
    spans_path.unlink(missing_ok=True)
    telemetry = Telemetry(spans_path=spans_path, metrics=metrics)
    executor = Executor(
        scenario, telemetry=telemetry, provider=provider, time_scale=time_scale, retry=retry
    )
    results: list[RunResult] = []
    interrupted = False

    def done(result: RunResult) -> None:
        results.append(result)
        if on_done is not None:
            on_done(result)

    async def main() -> None:
        try:
            await _run_all(executor, variants, runs, seed, concurrency, done)
        finally:
            with contextlib.suppress(Exception):
                await executor.provider.aclose()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        telemetry.force_flush()
        telemetry.shutdown()
    summary_path = out / "summary.json"
    summary = write_summary(spans_path, summary_path)
    summary["interrupted"] = interrupted
    summary["scenario_file"] = scenario.source
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return BatchResult(out, spans_path, summary_path, summary, results, interrupted)
