"""The OpenAI-compatible provider against the built-in simulator on loopback.

Every test drives the official ``openai`` client through
``OpenAICompatProvider`` to a real ``SimulatorServer`` on 127.0.0.1, with the
executor owning retries, so each attempt is its own ``chat {model}`` span.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.analysis.ingest import read_spans
from harness.analysis.runs import runs_table, steps_table
from harness.errors import ConfigError
from harness.executor import Executor, RetryPolicy, RunResult
from harness.providers.base import LlmCall
from harness.providers.limits import ClientLimiter
from harness.providers.openai_compat import OpenAICompatProvider, is_loopback_url
from harness.scenario import Scenario, load_scenario
from harness.simulator import SimulatorConfig, SimulatorServer
from harness.telemetry import Telemetry

SCALE = 0.02


def _two_step(**step_extra: Any) -> Scenario:
    return Scenario.from_dict(
        {
            "name": "two_step",
            "models": {
                "sim": {
                    "price": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2},
                    "latency": {"ttft_ms": 200, "itl_ms": 5, "jitter_sigma": 0},
                }
            },
            "defaults": {"model": "sim"},
            "steps": [
                {
                    "id": "ask",
                    "kind": "llm",
                    "input_tokens": 300,
                    "output_tokens": 40,
                    "card": True,
                    **step_extra,
                },
                {"id": "tool", "kind": "tool", "latency_ms": 100, "depends_on": ["ask"]},
            ],
            "variants": {"sequential": {"mode": "sequential"}},
        },
        source="two_step",
    )


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[SimulatorServer]:
    settings = dict(getattr(request, "param", {}))
    settings.setdefault("time_scale", SCALE)
    # The simulator knows the test model's profile, as `--provider simulator` arranges.
    settings.setdefault("profiles", _two_step().latency_overrides)
    with SimulatorServer(SimulatorConfig(**settings)) as server:
        yield server


def _run(
    scenario: Scenario,
    server: SimulatorServer,
    spans_path: Path,
    *,
    variant: str = "sequential",
    time_scale: float = SCALE,
    runs: int = 1,
    timeout_s: float = 30.0,
    limiter: ClientLimiter | None = None,
) -> tuple[list[RunResult], Any]:
    telemetry = Telemetry(spans_path=spans_path, otlp_from_env=False)

    async def main() -> list[RunResult]:
        provider = OpenAICompatProvider(
            base_url=server.url,
            api_key="unused",
            simulator=True,
            timeout_s=timeout_s,
            limiter=limiter,
        )
        executor = Executor(
            scenario,
            telemetry=telemetry,
            provider=provider,
            time_scale=time_scale,
            retry=RetryPolicy(base_s=0.05, max_s=0.2),
        )
        try:
            return [await executor.run(variant, seed=3, run_index=i) for i in range(runs)]
        finally:
            await provider.aclose()

    results = asyncio.run(main())
    telemetry.force_flush()
    telemetry.shutdown()
    spans, _ = read_spans(spans_path)
    return results, spans


def _chat_spans(spans: Any) -> Any:
    return spans[spans.name.str.startswith("chat ")]


class TestStreaming:
    """A streamed attempt returns the simulated usage and a content-based TTFT."""

    @pytest.mark.parametrize("simulator", [{"time_scale": 0.2}], indirect=True)
    def test_usage_and_ttft(self, simulator: SimulatorServer) -> None:
        """Usage equals what was asked of the simulator; TTFT is about the profile's TTFT."""
        provider = OpenAICompatProvider(base_url=simulator.url, api_key="x", simulator=True)
        scenario = _two_step()
        call = LlmCall(
            "ask",
            "sim",
            300,
            40,
            seed=1,
            run_index=0,
            attempt=0,
            latency_profile=scenario.latency_profile("sim"),
        )

        async def main() -> Any:
            try:
                await provider.chat(call)  # warm up: connection, client-side imports
                return await provider.chat(call)
            finally:
                await provider.aclose()

        response = asyncio.run(main())
        assert (response.input_tokens, response.output_tokens) == (300, 40)
        assert response.usage_reported
        # 200 ms + 80 ms/1k × 300 = 224 ms of model time, scaled. The role-only chunk
        # arrives at once; TTFT waits for content, so it cannot come in early.
        expected_ttft = (200 + 80 * 0.3) / 1000 * 0.2
        assert response.ttft_s is not None
        assert expected_ttft * 0.97 <= response.ttft_s <= expected_ttft + 0.05

    def test_spans_of_a_successful_run(self, simulator: SimulatorServer, tmp_path: Path) -> None:
        """One chat CLIENT span with the GenAI attributes; provider named as the simulator."""
        results, spans = _run(_two_step(), simulator, tmp_path / "s.jsonl")
        assert results[0].outcome == "completed"
        chats = _chat_spans(spans)
        assert len(chats) == 1
        attrs = chats.iloc[0].attributes
        assert chats.iloc[0].kind == "CLIENT"
        assert attrs["gen_ai.provider.name"] == "parabench.simulator"
        assert attrs["gen_ai.usage.input_tokens"] == 300
        assert attrs["gen_ai.usage.output_tokens"] == 40
        assert attrs["gen_ai.response.time_to_first_chunk"] > 0
        # Price override: 300 × $1/M + 40 × $2/M.
        assert attrs["parabench.cost_usd"] == pytest.approx(300e-6 + 80e-6)


class TestRetries:
    """Failed attempts are recorded one span each and retried."""

    @pytest.mark.parametrize("simulator", [{"rpm_limit": 2}], indirect=True)
    def test_429_storm_is_retried(self, simulator: SimulatorServer, tmp_path: Path) -> None:
        """Over the RPM limit, 429s carry Retry-After; every attempt has a span; runs finish."""
        scenario = _two_step(max_attempts=20)
        results, spans = _run(scenario, simulator, tmp_path / "s.jsonl", runs=4)
        assert all(r.outcome == "completed" for r in results)
        chats = _chat_spans(spans)
        errors = [a.get("error.type") for a in chats.attributes]
        assert errors.count("rate_limited") >= 1
        assert errors.count(None) == 4
        steps = steps_table(spans)
        ask = steps[steps.step_id == "ask"]
        assert ask.attempts.sum() == len(chats)

    @pytest.mark.parametrize(
        ("simulator", "error_type"),
        [
            ({"error_500_rate": 0.5, "seed": 7}, "http_500"),
            ({"disconnect_rate": 0.5, "seed": 3}, "disconnect"),
        ],
        indirect=["simulator"],
        ids=["5xx", "disconnect"],
    )
    def test_fault_then_success(
        self, simulator: SimulatorServer, error_type: str, tmp_path: Path
    ) -> None:
        """A 500 or a stream dropped mid-way is a failed attempt span, then a retry succeeds."""
        scenario = _two_step(max_attempts=10)
        results, spans = _run(scenario, simulator, tmp_path / "s.jsonl", runs=6)
        assert all(r.outcome == "completed" for r in results)
        errors = [a.get("error.type") for a in _chat_spans(spans).attributes]
        assert error_type in errors
        assert errors.count(None) == 6

    @pytest.mark.parametrize("simulator", [{"hang_rate": 1.0, "hang_s": 30}], indirect=True)
    def test_hang_hits_the_timeout(self, simulator: SimulatorServer, tmp_path: Path) -> None:
        """A hung request ends at the client timeout, as error.type timeout, every attempt."""
        scenario = _two_step(max_attempts=2)
        results, spans = _run(scenario, simulator, tmp_path / "s.jsonl", timeout_s=0.3)
        assert results[0].outcome == "failed"
        chats = _chat_spans(spans)
        assert [a.get("error.type") for a in chats.attributes] == ["timeout", "timeout"]
        durations_s = (chats.end_ns - chats.start_ns) / 1e9
        assert durations_s.between(0.25, 3.0).all()


class TestQueueTime:
    """Waiting for a client-side slot is queue time, apart from service time."""

    def test_client_slot_wait_is_queue(self, simulator: SimulatorServer, tmp_path: Path) -> None:
        """With one LLM call in flight, parallel LLM branches queue instead of overlapping."""
        scenario = load_scenario("research_assistant")
        _, spans = _run(
            scenario,
            simulator,
            tmp_path / "s.jsonl",
            variant="parallel",
            limiter=ClientLimiter(max_in_flight=1),
        )
        steps = steps_table(spans)
        llm_branches = steps[steps.step_id.isin(["search_docs", "analyze_data"])]
        # One of the two LLM branches waited for the other's slot.
        assert llm_branches.queue_ms.max() > 0.5 * llm_branches.service_ms.min()
        assert (steps[steps.step_id == "plan"].queue_ms < 5).all()


class TestSameLatencyModel:
    """In process and over HTTP, a scenario has the same latency distribution."""

    # A tenth of real time: per-call HTTP overhead (~2 ms) stays well under 5% of a step.
    @pytest.mark.parametrize("simulator", [{"time_scale": 0.1}], indirect=True)
    def test_medians_within_5_percent(self, simulator: SimulatorServer, tmp_path: Path) -> None:
        """Median e2e and per-step median durations agree within 5%."""
        scenario = load_scenario("research_assistant")
        runs = 8
        _, http_spans = _run(
            scenario,
            simulator,
            tmp_path / "http.jsonl",
            variant="parallel",
            runs=runs,
            time_scale=0.1,
        )
        telemetry = Telemetry(spans_path=tmp_path / "mem.jsonl", otlp_from_env=False)

        async def in_process() -> None:
            executor = Executor(scenario, telemetry=telemetry, time_scale=0.1)
            for i in range(runs):
                await executor.run("parallel", seed=3, run_index=i)

        asyncio.run(in_process())
        telemetry.force_flush()
        telemetry.shutdown()
        mem_spans, _ = read_spans(tmp_path / "mem.jsonl")
        http_e2e = statistics.median(runs_table(http_spans).e2e_ms)
        mem_e2e = statistics.median(runs_table(mem_spans).e2e_ms)
        assert http_e2e == pytest.approx(mem_e2e, rel=0.05)
        http_steps, mem_steps = steps_table(http_spans), steps_table(mem_spans)
        for sid in ("plan", "search_docs", "analyze_data", "draft"):
            a = http_steps[http_steps.step_id == sid].service_ms.median()
            b = mem_steps[mem_steps.step_id == sid].service_ms.median()
            assert a == pytest.approx(b, rel=0.05), sid


class TestRealEndpointConfig:
    """A real endpoint without a key fails clearly before any run starts."""

    def test_from_env_without_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No OPENAI_API_KEY for a remote URL raises ConfigError naming the variable."""
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with pytest.raises(ConfigError) as info:
            OpenAICompatProvider.from_env(base_url="https://llm.example.com/v1")
        assert "OPENAI_API_KEY" in info.value.message
        assert "fix:" in info.value.message

    def test_loopback_needs_no_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A loopback endpoint (a local simulator or vLLM) works without a key."""
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        assert is_loopback_url("http://127.0.0.1:8001/v1")
        assert not is_loopback_url("https://api.openai.com/v1")
        provider = OpenAICompatProvider.from_env(base_url="http://127.0.0.1:9/v1")
        asyncio.run(provider.aclose())

    def test_cli_fails_before_any_run(self, tmp_path: Path) -> None:
        """`parabench run --provider openai` without a key exits 2 and writes nothing."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_"))}
        out = tmp_path / "out"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "run",
                "research_assistant",
                "-n",
                "1",
                "--provider",
                "openai",
                "--base-url",
                "https://llm.example.com/v1",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2
        assert "OPENAI_API_KEY" in proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert not out.exists()


class TestScenarioProviderConfig:
    """A scenario's provider: block chooses the endpoint; flags override it."""

    SCENARIO = """\
name: remote
provider: {kind: openai, base_url: "https://llm.example.com/v1"}
steps:
  - {id: a, kind: llm, model: gpt-4o-mini, input_tokens: 10, output_tokens: 10, card: true}
variants:
  sequential: {mode: sequential}
"""

    def _run(self, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "remote.yaml"
        path.write_text(self.SCENARIO, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_"))}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "run",
                str(path),
                "-n",
                "1",
                "--time-scale",
                "0.01",
                "--out",
                str(tmp_path / "out"),
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def test_scenario_endpoint_without_key_fails_early(self, tmp_path: Path) -> None:
        """The scenario's remote endpoint with no key exits 2 before any run."""
        proc = self._run(tmp_path)
        assert proc.returncode == 2
        assert "https://llm.example.com/v1" in proc.stderr
        assert not (tmp_path / "out").exists()

    def test_flag_overrides_scenario_provider(self, tmp_path: Path) -> None:
        """--provider simulated wins over the scenario's block and the run completes."""
        proc = self._run(tmp_path, "--provider", "simulated")
        assert proc.returncode == 0, proc.stderr
        spans, _ = read_spans(tmp_path / "out" / "spans.jsonl")
        assert runs_table(spans).outcome.tolist() == ["completed"]


class TestSimulatorProviderKind:
    """`--provider simulator` runs the job through the built-in HTTP simulator."""

    def test_cli_run_through_simulator(self, tmp_path: Path) -> None:
        """The spans name the simulator as provider and the run completes."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_"))}
        out = tmp_path / "out"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "run",
                "support_agent",
                "-n",
                "1",
                "-v",
                "parallel",
                "--time-scale",
                "0.02",
                "--provider",
                "simulator",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        spans, _ = read_spans(out / "spans.jsonl")
        chats = _chat_spans(spans)
        assert len(chats) == 3
        assert {a["gen_ai.provider.name"] for a in chats.attributes} == {"parabench.simulator"}
        assert runs_table(spans).outcome.tolist() == ["completed"]
