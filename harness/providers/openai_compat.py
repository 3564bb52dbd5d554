"""LLM steps over HTTP with the official ``openai`` client: real endpoints or the simulator.

Any OpenAI-compatible base URL works (OpenAI, vLLM, Ollama, the built-in
simulator). Each ``chat`` is one streamed attempt with ``max_retries=0`` — the
executor owns retries so that every attempt gets its own span. TTFT is the
time to the first chunk with non-empty content (a role-only chunk is not it);
usage comes from the endpoint's final ``include_usage`` chunk.

Prompts carry no real content unless the step sets ``prompt:``: its text,
then filler words up to ``input_tokens`` words, which the simulator counts one
token per word. The answer's text is kept only when content capture is on
(``LlmCall.capture_content``); otherwise it is read and dropped. Against the
simulator the request also carries ``x-parabench-key`` so it draws the same
timings as the in-process provider.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

from harness.clock import monotonic_s
from harness.errors import ConfigError, ProviderError, RateLimitedError
from harness.providers.base import LlmCall, LlmResponse
from harness.providers.limits import ClientLimiter

__all__ = ["OpenAICompatProvider", "is_loopback_url", "prompt_text"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http() -> Any:
    """The HTTP library the installed ``openai`` is built on (httpx2 in openai ≥ 3, else httpx)."""
    try:
        import httpx2

        return httpx2
    except ImportError:
        import httpx

        return httpx


@lru_cache(maxsize=256)
def _filler(words: int) -> str:
    return " ".join(["lorem"] * max(words, 1))


def prompt_text(call: LlmCall) -> str:
    """The user message of ``call``: its prompt, padded with filler to ``input_tokens`` words."""
    if call.prompt is None:
        return _filler(call.input_tokens)
    missing = call.input_tokens - len(call.prompt.split())
    return f"{call.prompt} {_filler(missing)}" if missing > 0 else call.prompt


def _retry_after_s(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) / scale, 0.0)
        except ValueError:
            continue  # an HTTP date; fall back to our own backoff
    return None


class OpenAICompatProvider:
    """LLM calls through ``openai.AsyncOpenAI`` against any compatible endpoint.

    >>> provider = OpenAICompatProvider.from_env()            # OPENAI_BASE_URL / OPENAI_API_KEY
    >>> provider = OpenAICompatProvider(base_url=sim.url, api_key="unused", simulator=True)
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        name: str | None = None,
        simulator: bool = False,
        timeout_s: float = 60.0,
        max_connections: int = 1000,
        limiter: ClientLimiter | None = None,
    ) -> None:
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        http = _http()
        timeout = http.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self.base_url = base_url
        self.simulator = simulator
        self.name = name or ("parabench.simulator" if simulator else _provider_name(base_url))
        self.limiter = limiter
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=0,
            timeout=timeout,
            http_client=DefaultAsyncHttpxClient(
                limits=http.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                timeout=timeout,
            ),
        )
        # OpenAI's own API wants max_completion_tokens; older servers know only max_tokens.
        self._max_tokens_field = (
            "max_completion_tokens" if "api.openai.com" in base_url else "max_tokens"
        )

    @classmethod
    def from_env(
        cls,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        **kwargs: Any,
    ) -> OpenAICompatProvider:
        """Build from ``OPENAI_BASE_URL`` / the API key variable; fail early without a key."""
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key = os.environ.get(api_key_env, "")
        if not key:
            if not is_loopback_url(url):
                raise ConfigError(
                    f"no API key for the endpoint {url}: ${api_key_env} is empty",
                    where="provider",
                    fix=f"export {api_key_env}=... (or point OPENAI_BASE_URL at a local "
                    "server such as `parabench simulator`)",
                )
            key = "unused"
        return cls(base_url=url, api_key=key, **kwargs)

    async def chat(self, call: LlmCall) -> LlmResponse:
        from openai import (
            APIConnectionError,
            APIStatusError,
            APITimeoutError,
            RateLimitError,
        )

        headers: dict[str, str] = {}
        if self.simulator:
            headers["x-parabench-key"] = (
                f"{call.seed}:{call.run_index}:{call.step_id}:{call.attempt}"
            )
            headers["x-parabench-input-tokens"] = str(call.input_tokens)
        body: dict[str, Any] = {
            "model": call.model,
            "messages": [{"role": "user", "content": prompt_text(call)}],
            "stream": True,
            "stream_options": {"include_usage": True},
            self._max_tokens_field: call.output_tokens,
        }
        started = monotonic_s()
        ttft_s: float | None = None
        usage = None
        model = call.model
        finish = "stop"
        parts: list[str] | None = [] if call.capture_content else None
        try:
            stream = await self._client.chat.completions.create(**body, extra_headers=headers)
            async for chunk in stream:
                if chunk.model:
                    model = chunk.model
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if ttft_s is None and choice.delta and choice.delta.content:
                        ttft_s = monotonic_s() - started
                    if parts is not None and choice.delta and choice.delta.content:
                        parts.append(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except RateLimitError as exc:
            raise RateLimitedError(
                f"rate limited by {self.base_url} (429)",
                retry_after_s=_retry_after_s(exc.response.headers),
            ) from None
        except APITimeoutError:
            raise ProviderError(
                f"no answer from {self.base_url} within the client timeout",
                error_type="timeout",
            ) from None
        except APIStatusError as exc:
            status = exc.status_code
            retryable = status >= 500 or status in (408, 409)
            raise ProviderError(
                f"{self.base_url} answered {status}: {_short(exc.message)}",
                error_type=f"http_{status}",
                retryable=retryable,
                fix=None if retryable else "check the model name, the API key and the request",
            ) from None
        except (APIConnectionError, _http().HTTPError) as exc:
            kind = "disconnect" if ttft_s is not None or _is_disconnect(exc) else "connection"
            raise ProviderError(
                f"connection to {self.base_url} failed: {type(exc).__name__}",
                error_type=kind,
            ) from None
        content = "".join(parts) if parts is not None else None
        if usage is None:
            # The endpoint ignored include_usage: record what was asked, flagged as estimated.
            return LlmResponse(
                model,
                call.input_tokens,
                call.output_tokens,
                ttft_s,
                finish,
                content=content,
                usage_reported=False,
            )
        return LlmResponse(
            model, usage.prompt_tokens, usage.completion_tokens, ttft_s, finish, content=content
        )

    async def aclose(self) -> None:
        await self._client.close()


def _provider_name(base_url: str) -> str:
    host = urlparse(base_url).hostname or ""
    if host.endswith("openai.com"):
        return "openai"
    if host.endswith("anthropic.com"):
        return "anthropic"
    return "openai_compatible"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _is_disconnect(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, _http().RemoteProtocolError | _http().ReadError):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
