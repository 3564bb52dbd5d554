"""Security defaults: loopback binds, bearer tokens, request limits, and no leaked secrets.

The leak test plants secrets where a careless harness would copy them out —
a prompt in the scenario, the provider's API key, the service's API key and a
wrong key that gets refused — then runs every command a user would (the
simulator, ``run``, ``serve``, ``load``, ``report``, ``export``, ``analyze``)
as real processes on loopback, and searches every byte they wrote: files,
stdout, stderr (uvicorn's and Locust's logs included), ``/metrics`` and the
HTTP error bodies. With content capture switched on the prompt must show up
in the spans, which proves the search would find a leak.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from helpers import PARABENCH, _env, read_spans

from harness.service import ServiceConfig, ServiceServer
from harness.simulator import SimulatorConfig, SimulatorServer

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = httpx.Timeout(30.0)


class Process:
    """A parabench command in the background, its output in files (a pipe could fill up)."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.stdout = cwd / f"{name}.stdout"
        self.stderr = cwd / f"{name}.stderr"
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.proc = subprocess.Popen(
                [*PARABENCH, *args], cwd=cwd, stdout=out, stderr=err, env={**_env(), **env}
            )

    def url(self, marker: str, timeout_s: float = 30.0) -> str:
        """The URL the command printed after ``marker`` (waits for the line)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.stdout.read_text().splitlines():
                if marker in line:
                    return line.split(marker, 1)[1].split()[0].removesuffix("/v1")
            assert self.proc.poll() is None, self.stderr.read_text()
            time.sleep(0.05)
        raise AssertionError(f"no '{marker}' line: {self.stdout.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cmd(line: str) -> list[str]:
    """A command line as arguments (the tests' paths hold no spaces)."""
    return shlex.split(line)


def run(
    args: list[str], cwd: Path, env: dict[str, str], name: str
) -> subprocess.CompletedProcess[str]:
    """Run a parabench command to the end; keep its output in files next to the others."""
    result = subprocess.run(
        [*PARABENCH, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env={**_env(), **env},
        timeout=180,
        check=False,
    )
    (cwd / f"{name}.stdout").write_text(result.stdout)
    (cwd / f"{name}.stderr").write_text(result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def leaks(root: Path, secrets: dict[str, str]) -> list[str]:
    """Every (file, secret) pair where a secret's bytes occur in a file under ``root``."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for name, secret in secrets.items():
            if secret.encode() in data:
                found.append(f"{name} in {path.relative_to(root)}")
    return found


def planted_scenario(path: Path, prompt: str) -> Path:
    """research_assistant with the secret in two llm steps' prompts."""
    data = yaml.safe_load((ROOT / "scenarios" / "research_assistant.yaml").read_text())
    data["name"] = "planted_agent"
    for step in data["steps"]:
        if step["id"] in ("plan", "draft"):
            step["prompt"] = f"Summarise the account notes of {prompt} for the customer."
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class TestNoSecretsInOutputs:
    def test_planted_secrets_appear_in_no_output(self, tmp_path: Path) -> None:
        """Prompt text and API keys reach no file, log, metric, report or error body."""
        secrets = {
            "prompt": f"prompt-secret-{uuid.uuid4().hex}",
            "provider key": f"sk-planted-{uuid.uuid4().hex}",
            "service key": f"svc-planted-{uuid.uuid4().hex}",
            "wrong key": f"sk-wrong-{uuid.uuid4().hex}",
        }
        work = tmp_path / "work"
        work.mkdir()
        scenario = planted_scenario(tmp_path / "agent.yaml", secrets["prompt"])
        provider_key = secrets["provider key"]
        simulator = Process(
            "simulator",
            ["simulator", "--port", "0", "--time-scale", "0.02"],
            work,
            {"PARABENCH_SIMULATOR_API_KEY": provider_key},
        )
        service: Process | None = None
        try:
            sim_url = simulator.url("listening on ")
            base_url = f"{sim_url}/v1"
            provider = f"--provider openai --base-url {base_url}"
            ok = run(
                cmd(f"run {scenario} -n 2 --time-scale 0.02 --out run {provider}"),
                work,
                {"OPENAI_API_KEY": provider_key},
                "run",
            )
            assert ok.returncode == 0, ok.stderr
            refused = run(
                cmd(
                    f"run {scenario} -n 1 -v sequential --time-scale 0.02 --out refused {provider}"
                ),
                work,
                {"OPENAI_API_KEY": secrets["wrong key"]},
                "refused",
            )
            assert "401" in refused.stdout + refused.stderr + _spans_text(work / "refused")

            service = Process(
                "serve",
                cmd(
                    f"serve --port 0 -s {scenario} --time-scale 0.02 {provider} "
                    f"--spans {work}/load/spans.jsonl"
                ),
                work,
                {"PARABENCH_API_KEY": secrets["service key"], "OPENAI_API_KEY": provider_key},
            )
            url = service.url("listening on ")
            bodies = [
                httpx.get(f"{url}/v1/scenarios").text,
                httpx.get(
                    f"{url}/v1/scenarios",
                    headers={"Authorization": f"Bearer {secrets['wrong key']}"},
                ).text,
                httpx.post(f"{url}/v1/runs", json={"scenario": "planted_agent"}).text,
                httpx.post(
                    f"{sim_url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {secrets['wrong key']}"},
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                ).text,
            ]
            assert all("401" in b or "bearer" in b.lower() or "key" in b.lower() for b in bodies)
            load = run(
                cmd(f"load --host {url} --scenario planted_agent -u 2 --duration 3 --out load"),
                work,
                {"PARABENCH_API_KEY": secrets["service key"]},
                "load",
            )
            assert load.returncode == 0, load.stderr
            denied = run(
                cmd(f"load --host {url} --scenario planted_agent --duration 1 --out denied"),
                work,
                {"PARABENCH_API_KEY": secrets["wrong key"]},
                "denied",
            )
            assert denied.returncode == 2 and "PARABENCH_API_KEY" in denied.stderr
            bodies.append(httpx.get(f"{url}/metrics").text)
            bodies.append(
                httpx.get(f"{url}/metrics", headers={"accept": "application/openmetrics-text"}).text
            )
            bodies.append(httpx.get(f"{url}/").text)
        finally:
            if service is not None:
                service.stop()
            simulator.stop()
        (work / "http-bodies.txt").write_text("\n".join(bodies))

        samples = [json.loads(line) for line in (work / "load" / "samples.jsonl").open()]
        assert samples and all(s["outcome"] == "completed" for s in samples)
        for args in (
            ["report", "run"],
            ["report", "load"],
            ["export", "run"],
            ["analyze", "run/spans.jsonl", "--format", "json"],
            ["analyze", "load/spans.jsonl"],
        ):
            result = run(args, work, {}, "-".join(args).replace("/", "_"))
            assert result.returncode == 0, result.stderr
        assert (work / "load" / "report.html").exists()

        # The search looks at everything the commands wrote, and finds nothing.
        assert leaks(work, secrets) == []
        # It does read the prompt where it lies: the scenario file.
        assert leaks(tmp_path, {"prompt": secrets["prompt"]}) == ["prompt in agent.yaml"]

    def test_content_capture_records_the_prompt_and_never_the_key(self, tmp_path: Path) -> None:
        """Opted in, spans carry the prompt and the answer (semconv JSON); still no API key."""
        prompt = f"prompt-secret-{uuid.uuid4().hex}"
        key = f"sk-planted-{uuid.uuid4().hex}"
        scenario = planted_scenario(tmp_path / "agent.yaml", prompt)
        work = tmp_path / "work"
        work.mkdir()
        with SimulatorServer(SimulatorConfig(time_scale=0.02, api_key=key)) as simulator:
            provider = f"--provider openai --base-url {simulator.url}"
            result = run(
                cmd(f"run {scenario} -n 1 -v sequential --time-scale 0.02 --out run {provider}"),
                work,
                {
                    "OPENAI_API_KEY": key,
                    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
                },
                "run",
            )
        assert result.returncode == 0, result.stderr
        chats = [s for s in _spans(work / "run") if s["name"].startswith("chat ")]
        assert len(chats) == 4  # plan, search_docs, analyze_data, draft
        with_prompt = [c for c in chats if "gen_ai.input.messages" in c["attrs"]]
        assert len(with_prompt) == 2  # plan and draft set prompt:, the others send filler only
        for chat in with_prompt:
            (message,) = json.loads(chat["attrs"]["gen_ai.input.messages"])
            assert message["role"] == "user" and prompt in message["parts"][0]["content"]
        for chat in chats:
            (answer,) = json.loads(chat["attrs"]["gen_ai.output.messages"])
            assert answer["role"] == "assistant" and answer["finish_reason"] == "stop"
            words = answer["parts"][0]["content"].split()
            assert len(words) == int(chat["attrs"]["gen_ai.usage.output_tokens"])
        assert leaks(work, {"prompt": prompt}) != []
        assert leaks(work, {"key": key}) == []


def _spans(run_dir: Path) -> list[dict[str, Any]]:
    return read_spans(run_dir / "spans.jsonl")


def _spans_text(run_dir: Path) -> str:
    path = run_dir / "spans.jsonl"
    return path.read_text() if path.exists() else ""


class TestLimits:
    def test_servers_bind_loopback_by_default(self) -> None:
        """Left to their defaults, the service and the simulator listen on 127.0.0.1 only."""
        assert ServiceConfig().host == "127.0.0.1"
        assert SimulatorConfig().host == "127.0.0.1"
        with ServiceServer(ServiceConfig(port=0, time_scale=0.01)) as service:
            assert service.url.startswith("http://127.0.0.1:")
        with SimulatorServer(SimulatorConfig()) as simulator:
            assert simulator.url.startswith("http://127.0.0.1:")

    def test_serving_beyond_loopback_without_a_key_warns(self, tmp_path: Path) -> None:
        """Bound to every interface with no API key, the service says so and how to fix it."""
        service = Process(
            "serve", ["serve", "--host", "0.0.0.0", "--port", "0", "--no-spans"], tmp_path, {}
        )
        try:
            service.url("listening on ")
            deadline = time.monotonic() + 10
            while "PARABENCH_API_KEY" not in service.stderr.read_text():
                assert time.monotonic() < deadline, service.stderr.read_text()
                time.sleep(0.05)
        finally:
            service.stop()
        assert "not loopback only" in service.stderr.read_text()

    def test_one_request_starts_one_run(self) -> None:
        """Asking for a batch in one request is refused with the reason, not half-honoured."""
        with ServiceServer(ServiceConfig(port=0, time_scale=0.01)) as service:
            base = {"scenario": "research_assistant", "variant": "parallel"}
            for body in ({**base, "runs": 1000}, {**base, "n": 5}, [base, base]):
                response = httpx.post(f"{service.url}/v1/runs", json=body, timeout=TIMEOUT)
                assert response.status_code == 400, body
                assert "one request per run" in response.json()["error"]["message"]
            assert httpx.get(f"{service.url}/healthz").json()["active_runs"] == 0

    @pytest.mark.parametrize(
        ("extra", "param"),
        [({"n": 3}, "n"), ({"max_tokens": 1_000_000}, "max_tokens")],
        ids=["several choices", "huge answer"],
    )
    def test_simulator_refuses_amplified_requests(self, extra: dict[str, int], param: str) -> None:
        """One request is one bounded answer: n > 1 or a huge max_tokens get a 400 naming it."""
        with SimulatorServer(SimulatorConfig(max_output_tokens=4096)) as simulator:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **extra}
            response = httpx.post(f"{simulator.url}/chat/completions", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param
