"""Shared fixtures: run a scenario in process and read back what it wrote."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.analysis.ingest import read_spans
from harness.executor import Executor, RetryPolicy, RunResult
from harness.scenario import Scenario
from harness.telemetry import Telemetry
from harness.telemetry.metrics import Metrics


@dataclass
class Recorded:
    """The results of some runs and the spans they wrote, read back from disk."""

    results: list[RunResult]
    spans: pd.DataFrame
    spans_path: Path


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Callable[..., Recorded]]:
    """Run ``(variant, seed, run_index)`` jobs of a scenario and return results and spans.

    Jobs run one after another, or all at once with ``concurrent=True``.
    """
    made: list[Telemetry] = []

    def run(
        scenario: Scenario,
        jobs: Sequence[tuple[str, int, int]],
        *,
        time_scale: float = 0.02,
        concurrent: bool = False,
        metrics: Metrics | None = None,
        name: str = "spans.jsonl",
    ) -> Recorded:
        spans_path = tmp_path / name
        telemetry = Telemetry(spans_path=spans_path, metrics=metrics, otlp_from_env=False)
        made.append(telemetry)
        executor = Executor(
            scenario,
            telemetry=telemetry,
            time_scale=time_scale,
            retry=RetryPolicy(base_s=0.05, max_s=0.1),
        )

        async def main() -> list[RunResult]:
            if concurrent:
                return list(
                    await asyncio.gather(
                        *(executor.run(v, seed=s, run_index=i) for v, s, i in jobs)
                    )
                )
            return [await executor.run(v, seed=s, run_index=i) for v, s, i in jobs]

        results = asyncio.run(main())
        telemetry.force_flush()
        spans, _ = read_spans(spans_path)
        return Recorded(results, spans, spans_path)

    yield run
    for telemetry in made:
        telemetry.shutdown()


@pytest.fixture
def raw_runs() -> Callable[[Path], list[dict[str, Any]]]:
    """Parse run spans straight from OTLP JSON lines, without the analysis package."""

    def parse(path: Path) -> list[dict[str, Any]]:
        runs = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                request = json.loads(line)
            except json.JSONDecodeError:
                continue
            for rs in request.get("resourceSpans", []):
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        attrs = {a["key"]: a["value"] for a in span.get("attributes", [])}
                        if not span["name"].startswith("invoke_agent "):
                            continue
                        start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                        cards = sorted(
                            int(e["timeUnixNano"])
                            for e in span.get("events", [])
                            if e["name"] == "parabench.card"
                        )
                        runs.append(
                            {
                                "variant": attrs["parabench.variant"]["stringValue"],
                                "outcome": attrs["parabench.outcome"]["stringValue"],
                                "e2e_ms": (end - start) / 1e6,
                                "ttfc_ms": (cards[0] - start) / 1e6 if cards else None,
                                "cost_usd": attrs["parabench.cost_usd"]["doubleValue"],
                            }
                        )
        return runs

    return parse


@pytest.fixture(scope="session")
def research_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory of every research_assistant variant, 6 runs each, at time scale 0.02.

    Shared by the tests that only read it (analysis, export); made once per session.
    """
    from harness.runner import run_batch
    from harness.scenario import load_scenario

    out = tmp_path_factory.mktemp("research")
    run_batch(
        load_scenario("research_assistant"),
        variants=["sequential", "parallel", "parallel_capped"],
        runs=6,
        out_dir=out,
        time_scale=0.02,
        concurrency=3,
    )
    return out
