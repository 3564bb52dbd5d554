"""The OpenAI wire format, as the simulator speaks it.

Parsing a chat-completion request into a ``ChatRequest`` (with the token
accounting that is the contract with parabench's client), OpenAI-shaped error
bodies, and the byte templates of streamed chunks. Streaming must stay cheap
under a thousand concurrent streams, so every chunk is a concatenation of
bytes prepared once per request (or once per process for the content words);
nothing is JSON-encoded per chunk.

Token accounting:

* input tokens: whitespace-separated words over all message contents (a
  string, or a list of ``{"type": "text", "text": ...}`` parts), unless the
  ``x-parabench-input-tokens`` header gives the number;
* output tokens: ``max_completion_tokens``, else ``max_tokens``, else the
  ``x-parabench-output-tokens`` header (which wins over both), else the
  server's default. The answer is exactly that many words, so the usage the
  server reports is what it simulated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ApiError",
    "ChatRequest",
    "StreamTemplates",
    "completion_body",
    "content_text",
    "error_body",
    "parse_chat_request",
]

# Plain ASCII words: no JSON escaping needed, so chunks are spliced as bytes.
_VOCABULARY = [
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while"),
    *("seven", "tired", "agents", "wait", "for", "their", "tokens", "to", "stream"),
    *("back", "from", "some", "distant", "model"),
]


class ApiError(Exception):
    """A request the simulator refuses, answered with OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or []

    def body(self) -> bytes:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str, *, type: str = "invalid_request_error", param: str | None, code: str | None
) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the simulator needs from one ``POST /v1/chat/completions``."""

    model: str
    stream: bool
    include_usage: bool
    input_tokens: int
    output_tokens: int


def parse_chat_request(
    body: bytes,
    headers: dict[bytes, bytes],
    default_output_tokens: int,
    max_output_tokens: int | None = None,
) -> ChatRequest:
    """Validate a request body and apply the token-accounting rules; raise ``ApiError``.

    One request is one answer: ``n`` above 1 is refused rather than silently
    answered once, and so is an output longer than ``max_output_tokens``.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. The body must be one JSON "
            f"object ({exc}).",
        ) from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_type")

    model = payload.get("model")
    if model is None:
        raise ApiError(
            400,
            "You must provide a model parameter.",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(model, str) or not model:
        raise ApiError(
            400, "'model' must be a non-empty string.", param="model", code="invalid_type"
        )

    messages = payload.get("messages")
    if messages is None:
        raise ApiError(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list):
        raise ApiError(
            400,
            "'messages' must be a list of message objects.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise ApiError(400, "'messages' must contain at least one message.", param="messages")

    stream = payload.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be a boolean.", param="stream", code="invalid_type")
    options = payload.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(
            400, "'stream_options' must be an object.", param="stream_options", code="invalid_type"
        )
    include_usage = bool(options.get("include_usage")) and stream
    choices = payload.get("n")
    if choices is not None and choices != 1:
        raise ApiError(
            400,
            f"'n' must be 1: the simulator answers one choice per request, not {choices!r}.",
            param="n",
            code="invalid_value",
        )

    input_tokens = _header_int(headers, b"x-parabench-input-tokens")
    if input_tokens is None:
        input_tokens = _count_words(messages)

    output_tokens = _header_int(headers, b"x-parabench-output-tokens")
    if output_tokens is None:
        for name in ("max_completion_tokens", "max_tokens"):
            value = payload.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ApiError(
                    400,
                    f"'{name}' must be a non-negative integer.",
                    param=name,
                    code="invalid_type",
                )
            output_tokens = value
            break
        else:
            output_tokens = default_output_tokens
    if max_output_tokens is not None and output_tokens > max_output_tokens:
        raise ApiError(
            400,
            f"max_tokens is too large: {output_tokens}. The simulator answers at most "
            f"{max_output_tokens} completion tokens (max_output_tokens); ask for fewer.",
            param="max_tokens",
            code="invalid_value",
        )
    return ChatRequest(model, stream, include_usage, input_tokens, output_tokens)


def _header_int(headers: dict[bytes, bytes], name: bytes) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(
            400,
            f"Header '{name.decode()}' must be a non-negative integer, "
            f"got {raw.decode(errors='replace')!r}.",
            param=name.decode(),
            code="invalid_header",
        )
    return value


def _count_words(messages: list[object]) -> int:
    words = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(
                400, f"'messages[{index}]' must be an object.", param=f"messages[{index}]"
            )
        content = message.get("content")
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    text = part.get("text")
                    if isinstance(text, str):
                        words += len(text.split())
    return words


def content_text(start: int, count: int) -> str:
    """``count`` words starting at word ``start`` of the answer, joined by spaces."""
    size = len(_VOCABULARY)
    return " ".join(_VOCABULARY[(start + i) % size] for i in range(count))


@lru_cache(maxsize=256)
def _chunk_content(start_mod: int, count: int, leading_space: bool) -> bytes:
    # Keyed by the position modulo the vocabulary, so equal-sized chunks share one entry.
    text = content_text(start_mod, count)
    return (" " + text if leading_space else text).encode()


@lru_cache(maxsize=64)
def _whole_content(count: int) -> str:
    # Scenarios reuse a handful of output sizes: build each answer's text once.
    return content_text(0, count)


def completion_body(
    completion_id: str, created: int, model: str, input_tokens: int, output_tokens: int
) -> bytes:
    """A non-streamed ``chat.completion`` object."""
    message = {"role": "assistant", "content": _whole_content(output_tokens), "refusal": None}
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(input_tokens, output_tokens),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


class StreamTemplates:
    """The SSE lines of one streamed answer, built from prepared byte templates.

    The answer's words are split as a real server emits them: the first token
    alone (at TTFT), then ``chunk_tokens`` at a time, each chunk when its last
    token is due. ``content(k)`` is the k-th content chunk's SSE event.
    """

    __slots__ = ("_prefix", "_usage", "chunk_tokens", "output_tokens")

    DONE = b"data: [DONE]\n\n"
    _CONTENT_HEAD = b'{"content":"'
    _CONTENT_TAIL = b'"},"logprobs":null,"finish_reason":null}]}\n\n'

    def __init__(
        self,
        completion_id: str,
        created: int,
        model: str,
        request: ChatRequest,
        chunk_tokens: int,
    ) -> None:
        head = (
            f'data: {{"id":"{completion_id}","object":"chat.completion.chunk",'
            f'"created":{created},"model":{json.dumps(model)},"system_fingerprint":null,'
        )
        self._prefix = (head + '"choices":[{"index":0,"delta":').encode()
        self._usage = b""
        if request.include_usage:
            usage = json.dumps(_usage(request.input_tokens, request.output_tokens))
            self._usage = f'{head}"choices":[],"usage":{usage}}}\n\n'.encode()
        self.chunk_tokens = chunk_tokens
        self.output_tokens = request.output_tokens

    def chunk_count(self) -> int:
        """How many content chunks the answer has."""
        if self.output_tokens <= 0:
            return 0
        return 1 + -(-(self.output_tokens - 1) // self.chunk_tokens)

    def last_token(self, index: int) -> int:
        """0-based index of the last token in content chunk ``index`` (when it is due)."""
        return min(index * self.chunk_tokens, self.output_tokens - 1)

    def role(self) -> bytes:
        """The first event: the assistant role and no content, sent at once."""
        return (
            self._prefix
            + b'{"role":"assistant","content":"","refusal":null},'
            + b'"logprobs":null,"finish_reason":null}]}\n\n'
        )

    def content(self, index: int) -> bytes:
        """Content chunk ``index``: token 0 alone, then ``chunk_tokens`` tokens each."""
        if index == 0:
            words = _chunk_content(0, 1, False)
        else:
            start = 1 + (index - 1) * self.chunk_tokens
            count = self.last_token(index) - start + 1
            words = _chunk_content(start % len(_VOCABULARY), count, True)
        return self._prefix + self._CONTENT_HEAD + words + self._CONTENT_TAIL

    def finish(self) -> bytes:
        """The stop chunk, the usage chunk when asked for, and ``[DONE]``, in one write."""
        stop = self._prefix + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
        return stop + self._usage + self.DONE
