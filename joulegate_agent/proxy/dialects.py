"""Read token counts from LLM server responses as their bytes go by.

The proxy relays every chunk unchanged and, beside that, feeds a copy to a `TokenReader`. The
reader understands the framing (SSE `data:` events, NDJSON lines, or one JSON document) and the
fields each server family reports. It never holds a stream: SSE and NDJSON are parsed line by
line; only a non-streamed JSON body is kept (bounded) until it is complete, since it cannot be
parsed before that.

Output tokens, in order of preference (docs: shared/reference/llm-server-formats.md):
1. llama.cpp `timings.predicted_n` (or `tokens_predicted`)
2. Ollama `eval_count` on the `done` object (absent means 0)
3. `usage.completion_tokens`
4. none of these: the number of streamed chunks that carried content, marked as an estimate
   (a non-streamed body without counts: its text length / 4, also marked).
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

MAX_BUFFER_BYTES = 8 * 1024 * 1024
"""Largest single line / JSON body the reader keeps to parse; beyond it the reader gives up."""

INFLATE_PIECE_BYTES = 256 * 1024
"""Most bytes one step of reading a compressed response inflates at once."""
MAX_INFLATED_BYTES = 32 * 1024 * 1024
"""Most bytes read from one compressed response (a 50 000-token stream is about 12 MiB); past
it the response is relayed but not read, so a compression bomb costs bounded time as well."""

CHARS_PER_TOKEN_ESTIMATE = 4

MAX_COUNT = 2**31 - 1
"""Largest token count taken from a response (or the API); a larger one is not a count, and would
overflow the ledger's INTEGER column."""

# A streamed event that carries generated text (or a tool call), found without parsing it. Inside
# a JSON string every quote is escaped, so these patterns only match real keys.
_CONTENT_RE = re.compile(
    rb'"(?:content|text|response|thinking|reasoning_content)"\s*:\s*"(?!")'
    rb'|"tool_calls"\s*:\s*\[\s*\{'
)


class Dialect(enum.Enum):
    """The response formats the proxy can read token counts from."""

    LLAMA_CPP = "llama.cpp"
    OPENAI = "openai"
    OLLAMA = "ollama"


LLAMA_CPP_INFERENCE_PATHS = frozenset({"/completion", "/completions", "/infill"})
OLLAMA_INFERENCE_PATHS = frozenset({"/api/generate", "/api/chat"})
OPENAI_INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


def dialect_for(method: str, path: str) -> Dialect | None:
    """The dialect whose token counts a route's answers carry, or None when unknown (the route is
    still metered unless it computes nothing: route_classes.py)."""
    if method.upper() != "POST":
        return None
    if path in LLAMA_CPP_INFERENCE_PATHS:
        return Dialect.LLAMA_CPP
    if path in OLLAMA_INFERENCE_PATHS:
        return Dialect.OLLAMA
    if path in OPENAI_INFERENCE_PATHS:
        return Dialect.OPENAI
    return None


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """What a finished response said about its tokens."""

    output_tokens: int | None = None
    prompt_tokens: int | None = None
    estimated: bool = False
    model: str | None = None
    upstream_ttft_s: float | None = None
    """Time to first token as the server reported it (non-streamed responses)."""


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or not 0 <= value <= MAX_COUNT:
        return None
    return int(value)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


@dataclass(slots=True)
class _Seen:
    """Every candidate count seen so far; resolved by preference at the end."""

    llama_predicted: int | None = None
    ollama_eval: int | None = None
    usage_completion: int | None = None
    prompt_usage: int | None = None
    prompt_llama: int | None = None
    prompt_ollama: int | None = None
    prompt_timings: int | None = None
    model: str | None = None
    ttft_s: float | None = None
    content_events: int = 0
    content_chars: int = 0
    objects: int = 0


class _Framing(enum.Enum):
    SSE = "sse"
    NDJSON = "ndjson"
    JSON = "json"


def _framing_for(content_type: str | None) -> _Framing:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == "text/event-stream":
        return _Framing.SSE
    if kind in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        return _Framing.NDJSON
    return _Framing.JSON


@functools.cache
def _any_of(markers: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """One pattern per dialect, built once: a reader is made for every response."""
    return re.compile(b"|".join(re.escape(m) for m in markers) or b"$^")


class TokenReader:
    """Incremental token-count reader; one per response. Subclasses know one dialect's fields."""

    dialect: Dialect
    count_markers: tuple[bytes, ...] = ()
    """Byte strings found in every streamed event that may carry counts. Only those events (and
    the first, for the model name) are parsed as JSON; elsewhere the reader only counts content
    fields with one pattern over each block of complete lines, which keeps it far cheaper than
    the relay it rides along."""

    def __init__(
        self, content_type: str | None = None, content_encoding: str | None = None
    ) -> None:
        self._framing = _framing_for(content_type)
        self._markers = _any_of(self.count_markers)
        self._seen = _Seen()
        self._buffer = bytearray()
        self._event_data: list[bytes] = []
        self._broken = False
        self._streamed = self._framing is not _Framing.JSON
        encoding = (content_encoding or "identity").strip().lower()
        self._inflate: Any = None
        self._inflated = 0
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._inflate = zlib.decompressobj(wbits=47)  # zlib or gzip header, auto-detected
        elif encoding not in ("", "identity"):
            self._broken = True  # br, zstd, ...: relayed unchanged, not read

    def feed(self, chunk: bytes) -> int:
        """Read one relayed chunk; return how many content-carrying events it completed."""
        if self._broken or not chunk:
            return 0
        before = self._seen.content_events
        if self._inflate is None:
            self._take(chunk)
        while self._inflate is not None and not self._broken:
            # In bounded pieces: a small compressed chunk can inflate a thousandfold.
            try:
                piece = self._inflate.decompress(chunk, INFLATE_PIECE_BYTES)
            except zlib.error:
                self._broken = True
                break
            self._inflated += len(piece)
            if self._inflated > MAX_INFLATED_BYTES:
                self._give_up()
                break
            self._take(piece)
            chunk = self._inflate.unconsumed_tail
            if not chunk and len(piece) < INFLATE_PIECE_BYTES:
                break  # a full piece may leave output inside zlib: ask again, with no input
        return self._seen.content_events - before

    def _take(self, data: bytes) -> None:
        self._buffer += data
        if self._framing is _Framing.JSON:
            if len(self._buffer) > MAX_BUFFER_BYTES:
                self._give_up()
            return
        self._drain_lines()

    def finish(self) -> TokenCounts:
        """The counts, once the response is over (complete or not)."""
        if not self._broken:
            if self._framing is _Framing.JSON:
                self._finish_json()
            else:
                if self._buffer:
                    self._buffer += b"\n"
                    self._drain_lines()
                self._end_sse_event()
        return self._resolve()

    # -- framing -----------------------------------------------------------------------------

    def _give_up(self) -> None:
        self._broken = True
        self._buffer.clear()
        self._event_data.clear()

    def _drain_lines(self) -> None:
        buf = self._buffer
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > MAX_BUFFER_BYTES:
                self._give_up()
            return
        block = bytes(buf[:end])
        del buf[: end + 1]
        if self._seen.objects and not self._event_data and self._markers.search(block) is None:
            # Fast path, taken for nearly every block: complete lines, no event half-read, and
            # nothing here can carry a count, so only the content fields need counting.
            self._seen.content_events += len(_CONTENT_RE.findall(block))
            return
        lines = block.split(b"\n")
        if self._framing is _Framing.SSE:
            data = self._event_data
            for line in lines:  # runs for every streamed line: kept inline
                if line.endswith(b"\r"):
                    line = line[:-1]  # noqa: PLW2901
                if not line:
                    if data:
                        self._end_sse_event()
                elif line.startswith(b"data:"):
                    data.append(line[6:] if line.startswith(b"data: ") else line[5:])
        else:
            for line in lines:
                self._stream_event(line)
        if len(buf) > MAX_BUFFER_BYTES:
            self._give_up()

    def _end_sse_event(self) -> None:
        events = self._event_data
        if not events:
            return
        data = events[0] if len(events) == 1 else b"\n".join(events)
        events.clear()
        if data == b"[DONE]" or data.strip() == b"[DONE]":
            return
        self._stream_event(data)

    def _stream_event(self, text: bytes) -> None:
        """One SSE event's data or one NDJSON line."""
        if self._seen.objects == 0 or self._markers.search(text) is not None:
            self._json_text(text)
        elif _CONTENT_RE.search(text) is not None:
            self._seen.content_events += 1

    def _finish_json(self) -> None:
        body = bytes(self._buffer)
        self._buffer.clear()
        if not body.strip():
            return
        try:
            parsed = json.loads(body)
        except RecursionError:  # nested too deep to parse: not a response with counts
            return
        except ValueError:
            # Some servers send NDJSON under a JSON content type: read it line by line.
            self._streamed = True
            for line in body.splitlines():
                self._json_text(line)
            return
        self._take_json(parsed)

    def _json_text(self, text: bytes) -> None:
        if not text.strip():
            return
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            return
        self._take_json(parsed)

    def _take_json(self, parsed: Any) -> None:
        if not isinstance(parsed, dict):
            return
        seen = self._seen
        seen.objects += 1
        model = parsed.get("model")
        if isinstance(model, str) and model:
            seen.model = model
        chars = self.take(parsed, seen)
        if chars > 0:
            seen.content_events += 1
            seen.content_chars += chars

    # -- dialect -----------------------------------------------------------------------------

    def take(self, obj: dict[str, Any], seen: _Seen) -> int:
        """Record the counts `obj` carries into `seen`; return its content length (0: none)."""
        raise NotImplementedError

    @staticmethod
    def _take_timings(obj: dict[str, Any], seen: _Seen) -> None:
        timings = _dict(obj.get("timings"))
        if not timings:
            return
        predicted = _int(timings.get("predicted_n"))
        if predicted is not None:
            seen.llama_predicted = predicted
        prompt_n = _int(timings.get("prompt_n"))
        if prompt_n is not None:  # the sum of two counts may itself be past MAX_COUNT
            seen.prompt_timings = _int(prompt_n + (_int(timings.get("cache_n")) or 0))
        prompt_ms = _num(timings.get("prompt_ms"))
        if prompt_ms is not None:
            seen.ttft_s = prompt_ms / 1000.0

    @staticmethod
    def _take_usage(obj: dict[str, Any], seen: _Seen) -> None:
        usage = _dict(obj.get("usage"))
        if not usage:
            return
        completion = _int(usage.get("completion_tokens"))
        if completion is not None:
            seen.usage_completion = completion
        prompt = _int(usage.get("prompt_tokens"))
        if prompt is not None:
            seen.prompt_usage = prompt
        ttft = _num(_dict(usage.get("extra")).get("ttft_s"))  # MLC LLM
        if ttft is not None:
            seen.ttft_s = ttft

    def _resolve(self) -> TokenCounts:
        seen = self._seen
        output: int | None
        estimated = False
        if seen.llama_predicted is not None:
            output = seen.llama_predicted
        elif seen.ollama_eval is not None:
            output = seen.ollama_eval
        elif seen.usage_completion is not None:
            output = seen.usage_completion
        else:
            estimated = True
            if self._broken and seen.objects == 0:
                output = None
            elif self._streamed:
                output = seen.content_events
            else:
                output = math.ceil(seen.content_chars / CHARS_PER_TOKEN_ESTIMATE)
        prompt = next(
            (
                value
                for value in (
                    seen.prompt_usage,
                    seen.prompt_llama,
                    seen.prompt_ollama,
                    seen.prompt_timings,
                )
                if value is not None
            ),
            None,
        )
        return TokenCounts(
            output_tokens=output,
            prompt_tokens=prompt,
            estimated=estimated,
            model=seen.model,
            upstream_ttft_s=seen.ttft_s,
        )


class LlamaCppReader(TokenReader):
    """llama.cpp native `/completion`: `tokens_predicted`, `tokens_evaluated`, `timings`."""

    dialect = Dialect.LLAMA_CPP
    count_markers = (b'"timings"', b'"tokens_predicted"', b'"tokens_evaluated"', b'"usage"')

    def take(self, obj: dict[str, Any], seen: _Seen) -> int:
        self._take_timings(obj, seen)
        predicted = _int(obj.get("tokens_predicted"))
        timings_n = _int(_dict(obj.get("timings")).get("predicted_n"))
        if predicted is not None and timings_n is None:  # timings.predicted_n wins
            seen.llama_predicted = predicted
        evaluated = _int(obj.get("tokens_evaluated"))
        if evaluated is not None:
            seen.prompt_llama = evaluated
        self._take_usage(obj, seen)
        return _text_len(obj.get("content"))


class OpenAIReader(TokenReader):
    """OpenAI-compatible `/v1/*`: `usage`, and llama.cpp's top-level `timings` when present."""

    dialect = Dialect.OPENAI
    count_markers = (b'"usage"', b'"timings"')

    def take(self, obj: dict[str, Any], seen: _Seen) -> int:
        self._take_timings(obj, seen)
        self._take_usage(obj, seen)
        chars = 0
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                choice_d = _dict(choice)
                chars += _text_len(choice_d.get("text"))
                for part in (_dict(choice_d.get("delta")), _dict(choice_d.get("message"))):
                    chars += _text_len(part.get("content"))
                    chars += _text_len(part.get("reasoning_content"))
                    if part.get("tool_calls"):
                        chars += 1
        return chars


class OllamaReader(TokenReader):
    """Ollama `/api/generate` and `/api/chat`: counts on the `done: true` object."""

    dialect = Dialect.OLLAMA
    count_markers = (b'"done":true', b'"done": true', b'"done_reason"', b'"eval_count"')

    def take(self, obj: dict[str, Any], seen: _Seen) -> int:
        if obj.get("done") is True:
            seen.ollama_eval = _int(obj.get("eval_count")) or 0
            seen.prompt_ollama = _int(obj.get("prompt_eval_count")) or 0
            load_ns = _num(obj.get("load_duration")) or 0.0
            prompt_ns = _num(obj.get("prompt_eval_duration")) or 0.0
            if load_ns or prompt_ns:  # two finite durations may add up to infinity
                seen.ttft_s = _num((load_ns + prompt_ns) / 1e9)
        message = _dict(obj.get("message"))
        chars = _text_len(obj.get("response")) + _text_len(obj.get("thinking"))
        chars += _text_len(message.get("content")) + _text_len(message.get("thinking"))
        if message.get("tool_calls"):
            chars += 1
        return chars


_READERS: dict[Dialect, type[TokenReader]] = {
    Dialect.LLAMA_CPP: LlamaCppReader,
    Dialect.OPENAI: OpenAIReader,
    Dialect.OLLAMA: OllamaReader,
}


def reader_for(
    dialect: Dialect, content_type: str | None = None, content_encoding: str | None = None
) -> TokenReader:
    """A fresh reader for one response of `dialect`."""
    return _READERS[dialect](content_type, content_encoding)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the proxy reads from a request body before sending it on."""

    model: str | None = None
    streamed: bool = False
    """Whether the answer will stream (Ollama streams unless told not to; the others only when
    asked): then the proxy sees its work token by token."""


def read_request(dialect: Dialect | None, body: bytes) -> RequestFacts:
    """The model and the streaming choice of an inference request body, parsed once. A route of
    no known dialect is never `streamed`: no reader sees its tokens arrive."""
    parsed = _request_object(body)
    if parsed is None:
        return RequestFacts()
    if dialect is None:
        return RequestFacts(model=_model_of(parsed))
    stream = parsed.get("stream")
    streamed = stream is not False if dialect is Dialect.OLLAMA else stream is True
    return RequestFacts(model=_model_of(parsed), streamed=streamed)


def model_from_request(body: bytes) -> str | None:
    """The `model` field of a JSON request body, if it has one."""
    parsed = _request_object(body)
    return None if parsed is None else _model_of(parsed)


def _request_object(body: bytes) -> dict[str, Any] | None:
    if not body or len(body) > MAX_BUFFER_BYTES:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        return None
    return parsed if isinstance(parsed, dict) else None


def _model_of(parsed: dict[str, Any]) -> str | None:
    model = parsed.get("model")
    return model if isinstance(model, str) and model else None
