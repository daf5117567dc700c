"""Proxied inference requests for the reliability tests and the soak: one of each dialect."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InferenceRequest:
    path: str
    body: dict[str, Any]
    done_marker: bytes
    """Bytes that only a complete response contains (its last event)."""


def inference_request(rng: random.Random, max_tokens: int = 12) -> InferenceRequest:
    """A streaming request of a random dialect asking for 1..max_tokens tokens."""
    tokens = rng.randint(1, max_tokens)
    prompt = "Is the sun paying for this?"
    messages = [{"role": "user", "content": prompt}]
    choice = rng.randrange(4)
    if choice == 0:
        return InferenceRequest(
            "/completion",
            {"prompt": prompt, "n_predict": tokens, "stream": True},
            b'"stop":true',
        )
    if choice == 1:
        return InferenceRequest(
            "/v1/chat/completions",
            {
                "model": "llama3.2:3b",
                "messages": messages,
                "max_tokens": tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            b"data: [DONE]",
        )
    if choice == 2:
        return InferenceRequest(
            "/api/generate",
            {"model": "llama3.2:3b", "prompt": prompt, "options": {"num_predict": tokens}},
            b'"done":true',
        )
    return InferenceRequest(
        "/api/chat",
        {"model": "llama3.2:3b", "messages": messages, "options": {"num_predict": tokens}},
        b'"done":true',
    )
