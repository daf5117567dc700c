"""Which proxied routes the gate lets through without a lease: only those that compute nothing.

Everything else an upstream serves (chat, completions, embeddings, rerank, images, audio, the
Responses and Messages APIs, model creation and pulls, and whatever route a server adds next) is
gated and metered: an allow-list fails closed, where a list of inference routes let every route
it did not name walk around the gate and leave no row.
"""

from __future__ import annotations

import re

_READS = frozenset({"GET", "HEAD"})

_COMPUTE_NOTHING: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = (
    (_READS, re.compile(r"/v1/models(/.*)?|/models")),  # model lists (OpenAI-compatible)
    (_READS, re.compile(r"/api/(tags|ps|version)")),  # Ollama: models, loaded models, version
    (frozenset({"POST"}), re.compile(r"/api/show")),  # Ollama: one model's details
    (_READS, re.compile(r"/props|/health|/v1/health|/slots")),  # llama.cpp: settings, health
    (frozenset({"POST"}), re.compile(r"/tokenize|/detokenize")),  # llama.cpp: the tokenizer only
)


def computes_nothing(method: str, path: str) -> bool:
    """Whether a request only reads the upstream's state: passed through ungated, unmetered."""
    verb = method.upper()
    return any(verb in verbs and pattern.fullmatch(path) for verbs, pattern in _COMPUTE_NOTHING)
