"""The OpenAI-compatible simulator, driven by the official ``openai`` client on loopback."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from harness.errors import ConfigError
from harness.latency import DEFAULT_PROFILES, LatencyProfile, rng_for
from harness.providers.base import LlmCall
from harness.providers.simulated import SimulatedProvider
from harness.simulator import SimulatorConfig, SimulatorServer, load_config
from harness.simulator.ratelimit import RateLimiter, TokenBucket, format_duration

ROOT = Path(__file__).resolve().parents[1]

# Slow enough to measure on a busy 2-core machine, fast enough for a short suite.
FAST = LatencyProfile(ttft_ms=200, prefill_ms_per_1k_input=0, itl_ms=2, jitter_sigma=0)
JITTERY = LatencyProfile(ttft_ms=2000, prefill_ms_per_1k_input=0, itl_ms=20, jitter_sigma=0.5)
USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "tell me about latency please"}  # 5 words
]


def start(**settings: object) -> SimulatorServer:
    settings.setdefault("time_scale", 0.02)
    settings.setdefault("profiles", {"sim-fast": FAST, "sim-jittery": JITTERY})
    return SimulatorServer(SimulatorConfig.model_validate(settings)).start()


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with start() as running:
        yield running


@pytest.fixture
def client(server: SimulatorServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url, api_key="test", max_retries=0) as sync_client:
        yield sync_client


TOO_LARGE = "request_too_large"


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def words(text: str | None) -> int:
    return len((text or "").split())


class TestChatCompletion:
    def test_usage_matches_the_simulated_answer(self, client: openai.OpenAI) -> None:
        """A whole answer has max_tokens words; usage reports them and the prompt's words."""
        reply = client.chat.completions.create(model="sim-fast", messages=USER, max_tokens=37)
        assert reply.object == "chat.completion"
        assert reply.choices[0].message.role == "assistant"
        assert reply.choices[0].finish_reason == "stop"
        assert words(reply.choices[0].message.content) == 37
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 37)
        assert reply.usage.total_tokens == 42

    def test_input_tokens_count_text_parts_and_every_message(self, client: openai.OpenAI) -> None:
        """Input tokens are the words of all messages, string or list-of-text-parts content."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
        ]
        reply = client.chat.completions.create(model="sim-fast", messages=messages, max_tokens=1)
        assert reply.usage is not None and reply.usage.prompt_tokens == 5

    def test_headers_and_defaults_set_token_counts(self, client: openai.OpenAI) -> None:
        """The token headers win; without max_tokens the answer has default_output_tokens words."""
        reply = client.chat.completions.create(
            model="sim-fast",
            messages=USER,
            max_tokens=3,
            extra_headers={"x-parabench-input-tokens": "1200", "x-parabench-output-tokens": "9"},
        )
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (1200, 9)
        default = client.chat.completions.create(model="sim-fast", messages=USER)
        assert words(default.choices[0].message.content) == 256

    def test_max_completion_tokens_wins_over_max_tokens(self, client: openai.OpenAI) -> None:
        """max_completion_tokens, OpenAI's current name, takes precedence over max_tokens."""
        reply = client.chat.completions.create(
            model="sim-fast", messages=USER, max_tokens=50, max_completion_tokens=4
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 4


class TestStreaming:
    def test_stream_shape_and_usage(self, client: openai.OpenAI) -> None:
        """A stream opens with a role-only chunk, ends with stop then a usage-only chunk."""
        stream = client.chat.completions.create(
            model="sim-fast",
            messages=USER,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        first = chunks[0].choices[0].delta
        assert (first.role, first.content) == ("assistant", "")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert words(text) == 50
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 50)

    def test_content_comes_in_chunks_of_chunk_tokens(self, client: openai.OpenAI) -> None:
        """The first token comes alone, then chunk_tokens (16) at a time; no usage unless asked."""
        stream = client.chat.completions.create(
            model="sim-fast", messages=USER, max_tokens=40, stream=True
        )
        chunks = list(stream)
        sizes = [words(c.choices[0].delta.content) for c in chunks if c.choices]
        assert [size for size in sizes if size] == [1, 16, 16, 7]
        assert all(c.usage is None for c in chunks)

    def test_streamed_text_equals_the_whole_answer(self, client: openai.OpenAI) -> None:
        """Joining the streamed deltas gives exactly the non-streamed content."""
        whole = client.chat.completions.create(model="sim-fast", messages=USER, max_tokens=33)
        stream = client.chat.completions.create(
            model="sim-fast", messages=USER, max_tokens=33, stream=True
        )
        joined = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert joined == whole.choices[0].message.content

    def test_many_concurrent_streams_all_complete(self, server: SimulatorServer) -> None:
        """Two hundred concurrent streams through one AsyncOpenAI client all finish intact."""

        async def run() -> list[int]:
            async with openai.AsyncOpenAI(
                base_url=server.url, api_key="test", max_retries=0
            ) as async_client:

                async def one() -> int:
                    stream = await async_client.chat.completions.create(
                        model="sim-fast", messages=USER, max_tokens=20, stream=True
                    )
                    text = [c.choices[0].delta.content or "" async for c in stream if c.choices]
                    return words("".join(text))

                return await asyncio.gather(*(one() for _ in range(200)))

        assert asyncio.run(run()) == [20] * 200
        assert sum(server.state.in_flight.values()) == 0


def measure_stream(
    client: openai.OpenAI, model: str, key: str | None, max_tokens: int, **headers: str
) -> tuple[float, float]:
    """(TTFT, E2E) in seconds: request sent → first non-empty content, → end of stream."""
    if key:
        headers["x-parabench-key"] = key
    started = time.perf_counter()
    ttft = math.nan
    stream = client.chat.completions.create(
        model=model, messages=USER, max_tokens=max_tokens, stream=True, extra_headers=headers
    )
    for chunk in stream:
        if math.isnan(ttft) and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - started
    return ttft, time.perf_counter() - started


class TestTiming:
    SCALE = 0.05

    @pytest.fixture
    def jittery(self) -> Iterator[openai.OpenAI]:
        with (
            start(time_scale=self.SCALE) as running,
            openai.OpenAI(base_url=running.url, api_key="test", max_retries=0) as sync_client,
        ):
            sync_client.models.list()  # open the connection before timing anything
            yield sync_client

    def expected(
        self, seed: int, run: int, step: str, attempt: int, output: int
    ) -> tuple[float, float]:
        timing = JITTERY.sample(rng_for(seed, run, step, attempt + 1), 5, output, 1)
        return timing.ttft_s * self.SCALE, timing.total_s * self.SCALE

    def test_ttft_and_e2e_follow_the_keyed_draw(self, jittery: openai.OpenAI) -> None:
        """Measured TTFT and E2E match rng_for + LatencyProfile.sample for the request's key."""
        for attempt in (0, 1):  # drawn 84 ms and 171 ms TTFT: far enough apart to tell
            want_ttft, want_e2e = self.expected(7, 0, "plan", attempt, 50)
            ttft, e2e = measure_stream(jittery, "sim-jittery", f"7:0:plan:{attempt}", max_tokens=50)
            assert want_ttft - 0.002 <= ttft <= want_ttft + 0.025
            assert want_e2e - 0.002 <= e2e <= want_e2e + 0.030

    def test_same_key_same_latency_over_http_and_in_process(self, jittery: openai.OpenAI) -> None:
        """One key gives the same TTFT from the HTTP simulator and the in-process provider."""
        call = LlmCall(
            step_id="search",
            model="sim-jittery",
            input_tokens=5,
            output_tokens=10,
            seed=7,
            run_index=2,
            attempt=0,
            time_scale=self.SCALE,
            latency_profile=JITTERY,
        )
        in_process = asyncio.run(SimulatedProvider().chat(call)).ttft_s
        assert in_process is not None
        http_ttft, _ = measure_stream(jittery, "sim-jittery", "7:2:search:0", max_tokens=10)
        want_ttft, _ = self.expected(7, 2, "search", 0, 10)
        assert abs(in_process - want_ttft) < 0.010
        assert abs(http_ttft - in_process) < 0.025

    def test_whole_answers_take_the_total_time(self, jittery: openai.OpenAI) -> None:
        """A non-streamed answer arrives after the drawn total, not before."""
        _, want_e2e = self.expected(7, 0, "plan", 0, 50)
        started = time.perf_counter()
        jittery.chat.completions.create(
            model="sim-jittery",
            messages=USER,
            max_tokens=50,
            extra_headers={"x-parabench-key": "7:0:plan:0"},
        )
        assert want_e2e - 0.002 <= time.perf_counter() - started <= want_e2e + 0.030

    def test_timing_headers_override_the_draw(self, client: openai.OpenAI) -> None:
        """x-parabench-ttft-ms and -itl-ms replace the drawn timing (scaled by time_scale)."""
        overrides = {"x-parabench-ttft-ms": "5000", "x-parabench-itl-ms": "1000"}
        ttft, e2e = measure_stream(client, "sim-jittery", None, 11, **overrides)
        assert 0.100 <= ttft <= 0.125  # 5 s × 0.02
        assert 0.300 <= e2e <= 0.330  # (5 s + 10 × 1 s) × 0.02

    def test_the_request_counts_itself_in_flight(self) -> None:
        """With capacity 1, a lone request runs at twice its latency, as in process."""
        slow = LatencyProfile(
            ttft_ms=5000, prefill_ms_per_1k_input=0, itl_ms=0, jitter_sigma=0, capacity=1
        )
        with (
            start(profiles={"busy": slow}) as running,
            openai.OpenAI(base_url=running.url, api_key="test", max_retries=0) as sync_client,
        ):
            ttft, _ = measure_stream(sync_client, "busy", None, max_tokens=2)
        assert 0.200 <= ttft <= 0.230  # 5 s × slowdown 2 × 0.02


class TestRateLimits:
    def test_rpm_exceeded_gives_429_with_retry_after(self) -> None:
        """The third request in a 2-RPM window is a 429 with OpenAI's headers and Retry-After."""
        with (
            start(rpm_limit=2, tpm_limit=10_000) as running,
            openai.OpenAI(base_url=running.url, api_key="test", max_retries=0) as sync_client,
        ):
            create = sync_client.chat.completions.with_raw_response.create
            ok = create(model="sim-fast", messages=USER, max_tokens=5)
            assert ok.headers["x-ratelimit-limit-requests"] == "2"
            assert ok.headers["x-ratelimit-remaining-requests"] == "1"
            assert ok.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 10)
            create(model="sim-fast", messages=USER, max_tokens=5)
            with pytest.raises(openai.RateLimitError) as caught:
                create(model="sim-fast", messages=USER, max_tokens=5)
            error = caught.value
            assert error.status_code == 429
            assert error.code == "rate_limit_exceeded"
            assert error.type == "rate_limit_exceeded"
            headers = error.response.headers
            # One request refills in 30 model seconds = 0.6 real seconds at time_scale 0.02.
            assert 0.5 < float(headers["retry-after"]) <= 0.6
            assert 500 < int(headers["retry-after-ms"]) <= 600
            for name in ("limit", "remaining", "reset"):
                assert f"x-ratelimit-{name}-requests" in headers
                assert f"x-ratelimit-{name}-tokens" in headers
            assert headers["x-ratelimit-remaining-requests"] == "0"
            time.sleep(float(headers["retry-after"]))
            create(model="sim-fast", messages=USER, max_tokens=5)  # allowed again

    def test_tpm_counts_input_and_output_tokens(self) -> None:
        """A request over the whole token budget is refused without a Retry-After; others pass."""
        with (
            start(tpm_limit=100) as running,
            openai.OpenAI(base_url=running.url, api_key="test", max_retries=0) as sync_client,
        ):
            sync_client.chat.completions.create(model="sim-fast", messages=USER, max_tokens=95)
            with pytest.raises(openai.RateLimitError) as caught:
                sync_client.chat.completions.create(model="sim-fast", messages=USER, max_tokens=96)
            assert "too large" in caught.value.message
            assert "retry-after" not in caught.value.response.headers

    def test_limits_are_per_model(self) -> None:
        """Exhausting one model's RPM leaves another model's budget untouched."""
        with (
            start(rpm_limit=1) as running,
            openai.OpenAI(base_url=running.url, api_key="test", max_retries=0) as sync_client,
        ):
            sync_client.chat.completions.create(model="sim-fast", messages=USER, max_tokens=1)
            sync_client.chat.completions.create(model="sim-jittery", messages=USER, max_tokens=1)
            with pytest.raises(openai.RateLimitError):
                sync_client.chat.completions.create(model="sim-fast", messages=USER, max_tokens=1)


class TestRateLimiter:
    def test_bucket_refills_continuously(self) -> None:
        """A 60-per-minute bucket regains one unit per second, capped at its capacity."""
        bucket = TokenBucket(60, now_s=0.0)
        bucket.take(60)
        bucket.refill(0.5)
        assert bucket.level == pytest.approx(0.5)
        assert bucket.wait_s(1) == pytest.approx(0.5)
        bucket.refill(1000.0)
        assert bucket.level == 60

    def test_retry_after_is_converted_to_real_seconds(self) -> None:
        """With time_scale 0.1, a 30 model-second wait is a 3 s Retry-After."""
        now = [0.0]
        limiter = RateLimiter(2, None, time_scale=0.1, clock=lambda: now[0])
        assert limiter.check("m", 10).allowed
        assert limiter.check("m", 10).allowed
        refused = limiter.check("m", 10)
        assert not refused.allowed and refused.retry_after_s == pytest.approx(3.0)
        now[0] = 3.0
        assert limiter.check("m", 10).allowed

    def test_durations_are_written_like_openai(self) -> None:
        """Reset headers read like OpenAI's: milliseconds, seconds, minutes and seconds."""
        assert [format_duration(s) for s in (0.0204, 1.5, 360.0)] == ["21ms", "1.5s", "6m0s"]


class TestFaults:
    @pytest.mark.parametrize("status", [500, 503])
    def test_server_errors_on_demand(self, client: openai.OpenAI, status: int) -> None:
        """x-parabench-fault: 500 / 503 surface as openai.InternalServerError with that status."""
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model="sim-fast", messages=USER, extra_headers={"x-parabench-fault": str(status)}
            )
        assert caught.value.status_code == status
        assert caught.value.type == "server_error"

    def test_hang_hits_the_client_timeout(self, server: SimulatorServer) -> None:
        """A hung request makes a 0.5 s client timeout fire; the server then drops the request."""
        with openai.OpenAI(base_url=server.url, api_key="test", timeout=0.5, max_retries=0) as hung:
            started = time.perf_counter()
            with pytest.raises(openai.APITimeoutError):
                hung.chat.completions.create(
                    model="sim-fast", messages=USER, stream=True,
                    extra_headers={"x-parabench-fault": "hang"},
                )  # fmt: skip
            assert time.perf_counter() - started < 2.0
        deadline = time.monotonic() + 2.0
        while server.state.in_flight["sim-fast"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.state.in_flight["sim-fast"] == 0
        assert server.state.outcomes["client_left"] == 1

    def test_disconnect_mid_stream_raises_after_some_content(self, client: openai.OpenAI) -> None:
        """A dropped stream yields the role and some content, then openai.APIConnectionError."""
        received: list[str] = []
        with pytest.raises(openai.APIConnectionError):
            stream = client.chat.completions.create(
                model="sim-fast", messages=USER, max_tokens=100, stream=True,
                extra_headers={"x-parabench-fault": "disconnect"},
            )  # fmt: skip
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert 0 < words("".join(received)) < 100

    def test_disconnect_mid_body_raises(self, client: openai.OpenAI) -> None:
        """A dropped whole answer raises openai.APIConnectionError, not a half-parsed reply."""
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(
                model="sim-fast", messages=USER, extra_headers={"x-parabench-fault": "disconnect"}
            )

    def test_fault_rates_are_seeded(self) -> None:
        """Two servers with the same seed fail the same requests; about the configured share."""

        def outcomes(seed: int) -> list[str]:
            settings = {"seed": seed, "error_500_rate": 0.3, "error_503_rate": 0.2}
            with (
                start(**settings) as running,
                openai.OpenAI(base_url=running.url, api_key="test", max_retries=0) as sync_client,
            ):
                seen = []
                for _ in range(40):
                    try:
                        sync_client.chat.completions.create(
                            model="sim-fast", messages=USER, max_tokens=1
                        )
                        seen.append("ok")
                    except openai.APIStatusError as error:
                        seen.append(str(error.status_code))
                return seen

        first = outcomes(3)
        assert first == outcomes(3)
        assert first != outcomes(4)
        assert 4 <= first.count("500") <= 20 and 2 <= first.count("503") <= 16


class TestBadRequests:
    @pytest.fixture
    def http(self) -> Iterator[httpx.Client]:
        with (
            start(strict_models=True, max_body_bytes=2000) as running,
            httpx.Client(base_url=running.base_url, timeout=5) as raw,
        ):
            yield raw

    @pytest.mark.parametrize(
        ("content", "status", "param", "code"),
        [
            (b"{not json", 400, None, None),
            (b"[1, 2]", 400, None, "invalid_type"),
            (body(messages=USER), 400, "model", "missing_required_parameter"),
            (body(model="gpt-4o"), 400, "messages", "missing_required_parameter"),
            (body(model="gpt-4o", messages="hi"), 400, "messages", "invalid_type"),
            (body(model="gpt-4o", messages=USER, max_tokens=-1), 400, "max_tokens", "invalid_type"),
            (body(model="nope-1", messages=USER), 404, "model", "model_not_found"),
            (body(model="gpt-4o", messages=[{"content": "x" * 3000}]), 413, None, TOO_LARGE),
        ],
    )  # fmt: skip
    def test_bad_bodies_get_openai_errors(
        self, http: httpx.Client, content: bytes, status: int, param: str | None, code: str | None
    ) -> None:
        """Malformed, incomplete, unknown-model and oversized requests get OpenAI's error shape."""
        response = http.post("/v1/chat/completions", content=content)
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
        assert (error["param"], error["code"]) == (param, code)
        assert error["message"]

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/v1/chat/completions", 405),
            ("POST", "/v1/models", 405),
            ("GET", "/v1/nothing", 404),
        ],
    )
    def test_wrong_method_or_path(
        self, http: httpx.Client, method: str, path: str, status: int
    ) -> None:
        """A wrong method is a 405 and an unknown path a 404, both in OpenAI's error shape."""
        response = http.request(method, path)
        assert response.status_code == status
        assert response.json()["error"]["type"] == "invalid_request_error"

    @pytest.mark.parametrize(
        "headers",
        [
            {"x-parabench-key": "7:0:a:b:0"},
            {"x-parabench-ttft-ms": "soon"},
            {"x-parabench-fault": "boom"},
        ],
    )
    def test_malformed_test_headers_are_400(
        self, http: httpx.Client, headers: dict[str, str]
    ) -> None:
        """A malformed parabench header is refused, naming the header."""
        response = http.post(
            "/v1/chat/completions", json={"model": "gpt-4o", "messages": USER}, headers=headers
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == next(iter(headers))

    def test_strict_models_refuse_unknown_models_only(self) -> None:
        """With strict_models an unknown model is NotFoundError; a known one's variant passes."""
        with (
            start(strict_models=True) as running,
            openai.OpenAI(base_url=running.url, api_key="t", max_retries=0) as sync_client,
        ):
            sync_client.chat.completions.create(
                model="gpt-4o-2024-08-06", messages=USER, max_tokens=1
            )
            with pytest.raises(openai.NotFoundError) as caught:
                sync_client.chat.completions.create(model="nope-1", messages=USER)
        assert caught.value.code == "model_not_found"


class TestAuth:
    @pytest.fixture
    def guarded(self) -> Iterator[SimulatorServer]:
        with start(api_key="s3cret") as running:
            yield running

    def test_wrong_or_missing_key_is_401(self, guarded: SimulatorServer) -> None:
        """A wrong bearer token raises AuthenticationError; a missing one is a 401 as well."""
        with openai.OpenAI(base_url=guarded.url, api_key="wrong", max_retries=0) as sync_client:
            with pytest.raises(openai.AuthenticationError) as caught:
                sync_client.chat.completions.create(model="sim-fast", messages=USER, max_tokens=1)
            assert caught.value.code == "invalid_api_key"
            with pytest.raises(openai.AuthenticationError):
                sync_client.models.list()
        response = httpx.post(f"{guarded.url}/chat/completions", json={"model": "m"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_api_key"

    def test_right_key_passes_and_health_needs_none(self, guarded: SimulatorServer) -> None:
        """The configured key is accepted; /healthz answers without one."""
        with openai.OpenAI(base_url=guarded.url, api_key="s3cret", max_retries=0) as sync_client:
            reply = sync_client.chat.completions.create(
                model="sim-fast", messages=USER, max_tokens=2
            )
        assert reply.usage is not None and reply.usage.completion_tokens == 2
        assert httpx.get(f"{guarded.base_url}/healthz").json()["status"] == "ok"

    def test_the_key_never_shows_in_the_config_repr(self) -> None:
        """The API key is a secret: repr and str of the config hide it."""
        config = SimulatorConfig(api_key="s3cret")
        assert "s3cret" not in repr(config) and "s3cret" not in str(config)


class TestModels:
    def test_models_lists_overrides_and_defaults(self, client: openai.OpenAI) -> None:
        """GET /v1/models lists the configured profiles and the built-in ones, OpenAI-shaped."""
        ids = [model.id for model in client.models.list()]
        assert ids[:2] == ["sim-fast", "sim-jittery"]
        assert set(DEFAULT_PROFILES) <= set(ids)
        assert client.models.retrieve("gpt-4o").id == "gpt-4o"


class TestServer:
    def test_binds_loopback_only_by_default(self, server: SimulatorServer) -> None:
        """The default server listens on 127.0.0.1 and is unreachable from another interface."""
        assert SimulatorConfig().host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        other = _non_loopback_address()
        if other is None:
            pytest.skip("this machine has no non-loopback IPv4 address")
        with pytest.raises(OSError), socket.create_connection((other, server.port), timeout=1):
            pass

    def test_stop_releases_the_port(self) -> None:
        """After stop() the port accepts no connections and a context exit does the same."""
        with start() as running:
            port = running.port
            assert httpx.get(f"{running.base_url}/healthz").status_code == 200
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass

    def test_config_is_validated(self) -> None:
        """Unknown fields and fault rates adding up to more than 1 are refused with the fix."""
        with pytest.raises(ConfigError, match="tme_scale"):
            load_config('{"tme_scale": 1}')
        with pytest.raises(ConfigError, match="more than 1"):
            load_config(None, error_500_rate=0.6, hang_rate=0.6)
        assert load_config('{"time_scale": 0.5}', port=9, seed=None).port == 9

    def test_module_entry_point_serves_until_interrupted(self) -> None:
        """python -m harness.simulator prints its URL, serves, and exits 0 on Ctrl-C."""
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.simulator", "--port", "0", "--time-scale", "0.01"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = line.rsplit(" ", 1)[-1].strip()
            assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
            with openai.OpenAI(base_url=url, api_key="t", max_retries=0) as sync_client:
                reply = sync_client.chat.completions.create(
                    model="gpt-4o", messages=USER, max_tokens=3
                )
            assert reply.usage is not None and reply.usage.completion_tokens == 3
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _non_loopback_address() -> str | None:
    # Routing a UDP "connection" picks the outward interface without sending anything.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else str(address)
