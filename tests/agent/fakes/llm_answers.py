"""What LLM servers answer, shape by shape, for the fake upstream to replay.

The shapes follow what llama.cpp `llama-server`, Ollama and OpenAI-compatible servers put on the
wire (shared/reference/llm-server-formats.md): the same fields, the same framing (SSE `data:`
events, NDJSON lines, one JSON document), compact JSON, one event per write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def _j(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def sse(obj: Any) -> bytes:
    return b"data: " + _j(obj) + b"\n\n"


def ndjson(obj: Any) -> bytes:
    return _j(obj) + b"\n"


TOKENS = ["The", " sun", " pays", " for", " this", " token"]
LLAMA_TIMINGS = {
    "prompt_n": 11,
    "prompt_ms": 182.5,
    "prompt_per_token_ms": 16.59,
    "prompt_per_second": 60.27,
    "predicted_n": 6,
    "predicted_ms": 240.1,
    "predicted_per_token_ms": 40.02,
    "predicted_per_second": 24.99,
    "cache_n": 3,
}


@dataclass(frozen=True)
class Shape:
    """One recorded response: what the client sends, and the bytes the server answers with."""

    name: str
    path: str
    request: dict[str, Any]
    content_type: str
    chunks: tuple[bytes, ...]
    output_tokens: int
    prompt_tokens: int | None
    estimated: bool
    model: str | None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def stream(self) -> bool:
        return len(self.chunks) > 1


def _llama_native_stream() -> Shape:
    events = [
        sse({"index": 0, "content": t, "tokens": [i], "stop": False}) for i, t in enumerate(TOKENS)
    ]
    final = {
        "index": 0,
        "content": "",
        "tokens": [],
        "id_slot": 0,
        "stop": True,
        "model": "gpt-3.5-turbo",
        "tokens_predicted": 6,
        "tokens_evaluated": 14,
        "generation_settings": {"n_predict": 6, "temperature": 0.8},
        "prompt": "<|begin_of_text|>Why is the sky blue?",
        "has_new_line": False,
        "truncated": False,
        "stop_type": "limit",
        "stopping_word": "",
        "tokens_cached": 19,
        "timings": LLAMA_TIMINGS,
    }
    return Shape(
        "llama.cpp /completion stream",
        "/completion",
        {"prompt": "Why is the sky blue?", "n_predict": 6, "stream": True},
        "text/event-stream",
        (*events, sse(final)),
        output_tokens=6,
        prompt_tokens=14,
        estimated=False,
        model="gpt-3.5-turbo",
    )


def _llama_native_json() -> Shape:
    body = {
        "index": 0,
        "content": "".join(TOKENS),
        "tokens": [],
        "id_slot": 0,
        "stop": True,
        "model": "gpt-3.5-turbo",
        "tokens_predicted": 6,
        "tokens_evaluated": 14,
        "truncated": False,
        "stop_type": "limit",
        "stopping_word": "",
        "tokens_cached": 19,
        "timings": LLAMA_TIMINGS,
    }
    return Shape(
        "llama.cpp /completion json",
        "/completion",
        {"prompt": "Why is the sky blue?", "n_predict": 6},
        "application/json; charset=utf-8",
        (_j(body),),
        output_tokens=6,
        prompt_tokens=14,
        estimated=False,
        model="gpt-3.5-turbo",
    )


def _openai_envelope(obj: str) -> dict[str, Any]:
    return {
        "created": 1764164700,
        "model": "llama-3.2-3b-instruct",
        "system_fingerprint": "b6123-4f5e6a7b",
        "object": obj,
        "id": "chatcmpl-Xq3b8f0Lw2mC1u9dR4sT7vYzA6kE5hJ",
    }


def _openai_chat_stream(include_usage: bool) -> Shape:
    env = _openai_envelope("chat.completion.chunk")
    chunks = [
        sse(
            {
                "choices": [
                    {
                        "finish_reason": None,
                        "index": 0,
                        "delta": {"role": "assistant", "content": None},
                    }
                ],
                **env,
            }
        )
    ]
    chunks += [
        sse({"choices": [{"finish_reason": None, "index": 0, "delta": {"content": t}}], **env})
        for t in TOKENS
    ]
    chunks.append(
        sse(
            {
                "choices": [{"finish_reason": "length", "index": 0, "delta": {}}],
                **env,
                "timings": LLAMA_TIMINGS,
            }
        )
    )
    request: dict[str, Any] = {
        "model": "llama-3.2-3b-instruct",
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "max_tokens": 6,
        "stream": True,
    }
    if include_usage:
        usage = {"completion_tokens": 6, "prompt_tokens": 14, "total_tokens": 20}
        chunks.append(sse({"choices": [], **env, "usage": usage}))
        request["stream_options"] = {"include_usage": True}
    chunks.append(b"data: [DONE]\n\n")
    return Shape(
        f"llama.cpp /v1/chat/completions stream{' +usage' if include_usage else ''}",
        "/v1/chat/completions",
        request,
        "text/event-stream",
        tuple(chunks),
        output_tokens=6,
        prompt_tokens=14,  # usage.prompt_tokens, or timings prompt_n 11 + cache_n 3
        estimated=False,
        model="llama-3.2-3b-instruct",
    )


def _openai_chat_json() -> Shape:
    body = {
        "choices": [
            {
                "finish_reason": "length",
                "index": 0,
                "message": {"role": "assistant", "content": "".join(TOKENS)},
            }
        ],
        **_openai_envelope("chat.completion"),
        "usage": {"completion_tokens": 6, "prompt_tokens": 14, "total_tokens": 20},
        "timings": LLAMA_TIMINGS,
    }
    return Shape(
        "llama.cpp /v1/chat/completions json",
        "/v1/chat/completions",
        {
            "model": "llama-3.2-3b-instruct",
            "messages": [{"role": "user", "content": "Why?"}],
            "max_tokens": 6,
        },
        "application/json; charset=utf-8",
        (_j(body),),
        output_tokens=6,
        prompt_tokens=14,
        estimated=False,
        model="llama-3.2-3b-instruct",
    )


def _vllm_completions_stream_no_usage() -> Shape:
    """An OpenAI-compatible server (vLLM-like) streaming without usage: only an estimate."""
    env = {
        "id": "cmpl-9f8e7d6c5b4a",
        "object": "text_completion",
        "created": 1764164700,
        "model": "Qwen/Qwen2.5-1.5B-Instruct",
    }
    chunks = [
        sse(
            {
                **env,
                "choices": [
                    {
                        "index": 0,
                        "text": t,
                        "logprobs": None,
                        "finish_reason": None,
                        "stop_reason": None,
                    }
                ],
            }
        )
        for t in TOKENS
    ]
    chunks.append(
        sse(
            {
                **env,
                "choices": [
                    {
                        "index": 0,
                        "text": "",
                        "logprobs": None,
                        "finish_reason": "length",
                        "stop_reason": None,
                    }
                ],
            }
        )
    )
    chunks.append(b"data: [DONE]\n\n")
    return Shape(
        "vLLM /v1/completions stream without usage",
        "/v1/completions",
        {
            "model": "Qwen/Qwen2.5-1.5B-Instruct",
            "prompt": "Why is the sky blue?",
            "max_tokens": 6,
            "stream": True,
        },
        "text/event-stream; charset=utf-8",
        tuple(chunks),
        output_tokens=6,
        prompt_tokens=None,
        estimated=True,
        model="Qwen/Qwen2.5-1.5B-Instruct",
    )


def _mlc_chat_json() -> Shape:
    body = {
        "id": "chatcmpl-5a4b3c2d1e",
        "choices": [
            {
                "finish_reason": "length",
                "index": 0,
                "message": {"content": "".join(TOKENS), "role": "assistant"},
                "logprobs": None,
            }
        ],
        "created": 1764164700,
        "model": "Llama-3.2-3B-Instruct-q4f16_1-MLC",
        "system_fingerprint": "",
        "object": "chat.completion",
        "usage": {
            "prompt_tokens": 31,
            "completion_tokens": 6,
            "total_tokens": 37,
            "extra": {
                "prefill_tokens_per_s": 512.4,
                "decode_tokens_per_s": 27.9,
                "ttft_s": 0.0605,
                "end_to_end_latency_s": 0.27,
            },
        },
    }
    return Shape(
        "MLC /v1/chat/completions json",
        "/v1/chat/completions",
        {
            "model": "Llama-3.2-3B-Instruct-q4f16_1-MLC",
            "messages": [{"role": "user", "content": "Why?"}],
            "max_tokens": 6,
        },
        "application/json",
        (_j(body),),
        output_tokens=6,
        prompt_tokens=31,
        estimated=False,
        model="Llama-3.2-3B-Instruct-q4f16_1-MLC",
    )


OLLAMA_DONE = {
    "done": True,
    "done_reason": "length",
    "total_duration": 1324557125,
    "load_duration": 21460917,
    "prompt_eval_count": 30,
    "prompt_eval_duration": 310954000,
    "eval_count": 6,
    "eval_duration": 240417000,
}


def _ollama_generate_stream() -> Shape:
    chunks = [
        ndjson(
            {
                "model": "llama3.2:3b",
                "created_at": f"2026-11-26T13:45:0{i}.1234567Z",
                "response": t,
                "done": False,
            }
        )
        for i, t in enumerate(TOKENS)
    ]
    chunks.append(
        ndjson(
            {
                "model": "llama3.2:3b",
                "created_at": "2026-11-26T13:45:07.1Z",
                "response": "",
                **OLLAMA_DONE,
                "context": [128006, 882, 128007],
            }
        )
    )
    return Shape(
        "Ollama /api/generate ndjson",
        "/api/generate",
        {"model": "llama3.2:3b", "prompt": "Why is the sky blue?", "options": {"num_predict": 6}},
        "application/x-ndjson",
        tuple(chunks),
        output_tokens=6,
        prompt_tokens=30,
        estimated=False,
        model="llama3.2:3b",
    )


def _ollama_chat_stream() -> Shape:
    chunks = [
        ndjson(
            {
                "model": "llama3.2:3b",
                "created_at": "2026-11-26T13:45:01.5Z",
                "message": {"role": "assistant", "content": t},
                "done": False,
            }
        )
        for t in TOKENS
    ]
    chunks.append(
        ndjson(
            {
                "model": "llama3.2:3b",
                "created_at": "2026-11-26T13:45:02Z",
                "message": {"role": "assistant", "content": ""},
                **OLLAMA_DONE,
            }
        )
    )
    return Shape(
        "Ollama /api/chat ndjson",
        "/api/chat",
        {
            "model": "llama3.2:3b",
            "messages": [{"role": "user", "content": "Why is the sky blue?"}],
            "options": {"num_predict": 6},
        },
        "application/x-ndjson",
        tuple(chunks),
        output_tokens=6,
        prompt_tokens=30,
        estimated=False,
        model="llama3.2:3b",
    )


def _ollama_chat_json() -> Shape:
    body = {
        "model": "llama3.2:3b",
        "created_at": "2026-11-26T13:45:02Z",
        "message": {"role": "assistant", "content": "".join(TOKENS)},
        **OLLAMA_DONE,
    }
    return Shape(
        "Ollama /api/chat json",
        "/api/chat",
        {
            "model": "llama3.2:3b",
            "messages": [{"role": "user", "content": "Why?"}],
            "stream": False,
        },
        "application/json; charset=utf-8",
        (_j(body),),
        output_tokens=6,
        prompt_tokens=30,
        estimated=False,
        model="llama3.2:3b",
    )


SHAPES: tuple[Shape, ...] = (
    _llama_native_stream(),
    _llama_native_json(),
    _openai_chat_stream(include_usage=False),
    _openai_chat_stream(include_usage=True),
    _openai_chat_json(),
    _vllm_completions_stream_no_usage(),
    _mlc_chat_json(),
    _ollama_generate_stream(),
    _ollama_chat_stream(),
    _ollama_chat_json(),
)

TAGS = {
    "models": [
        {
            "name": "llama3.2:3b",
            "model": "llama3.2:3b",
            "modified_at": "2026-01-01T00:00:00Z",
            "size": 2019393189,
            "digest": "a80c4f17acd5" + "0" * 52,
            "details": {"format": "gguf", "family": "llama"},
        }
    ]
}
MODELS = {
    "object": "list",
    "data": [
        {
            "id": "llama-3.2-3b-instruct",
            "object": "model",
            "created": 1764164700,
            "owned_by": "llamacpp",
        }
    ],
}
