"""Property tests for the proxy's readers of outside data: the three LLM response dialects
(truncated, malformed, huge), the request's model name, and the deferral header.

(Clean responses split at any byte are tested in tests/agent/test_dialects.py.) Whatever an
upstream sends, the token reader must not raise, must not hold more than its bound in memory,
and must give counts the ledger can store: None or an integer from 0 to MAX_COUNT, a finite
non-negative time to first token, a string model name.
"""

from __future__ import annotations

import gzip
import json
import math
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from joulegate_agent.api.errors import ApiError
from joulegate_agent.proxy import dialects
from joulegate_agent.proxy.dialects import (
    MAX_COUNT,
    Dialect,
    TokenCounts,
    model_from_request,
    reader_for,
)
from joulegate_agent.proxy.routes import MAX_DEFER_S, parse_defer_until
from tests.agent.fakes.llm_answers import SHAPES, Shape
from tests.reliability.harness import property_settings

SETTINGS = property_settings(200)
DIALECT_OF = {
    "/completion": Dialect.LLAMA_CPP,
    "/v1/chat/completions": Dialect.OPENAI,
    "/v1/completions": Dialect.OPENAI,
    "/api/generate": Dialect.OLLAMA,
    "/api/chat": Dialect.OLLAMA,
}
CONTENT_TYPES = [
    "text/event-stream",
    "application/x-ndjson",
    "application/json",
    "application/json; charset=utf-8",
    None,
]
COUNT_KEYS = [
    "tokens_predicted",
    "tokens_evaluated",
    "eval_count",
    "prompt_eval_count",
    "load_duration",
    "prompt_eval_duration",
    "done",
    "model",
    "content",
    "response",
]
ODD_VALUES = st.one_of(
    st.integers(),
    st.floats(),  # NaN and infinities too: Python's json reads and writes them
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.just(10**30),
    st.just(-1),
    st.just(2**63),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(
        st.sampled_from(["predicted_n", "prompt_n", "completion_tokens"]), st.integers()
    ),
)
ODD_OBJECTS = st.dictionaries(
    st.sampled_from([*COUNT_KEYS, "timings", "usage", "choices", "message"]),
    ODD_VALUES,
    max_size=6,
)


def read(
    dialect: Dialect, chunks: list[bytes], content_type: str | None, encoding: str | None = None
) -> TokenCounts:
    reader = reader_for(dialect, content_type, encoding)
    for chunk in chunks:
        assert reader.feed(chunk) >= 0
    return reader.finish()


def sound(counts: TokenCounts) -> None:
    for value in (counts.output_tokens, counts.prompt_tokens):
        assert value is None or (type(value) is int and 0 <= value <= MAX_COUNT), counts
    ttft = counts.upstream_ttft_s
    assert ttft is None or (math.isfinite(ttft) and ttft >= 0), counts
    assert counts.model is None or isinstance(counts.model, str)


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


@SETTINGS
@given(st.sampled_from(SHAPES), st.integers(0, 10**6), st.lists(st.integers(0, 10**6), max_size=6))
def test_truncated_responses_give_sound_counts(shape: Shape, cut: int, cuts: list[int]) -> None:
    """A response cut off anywhere (the upstream died): sound counts, never more than the whole."""
    body = shape.body
    prefix = body[: cut % (len(body) + 1)]
    dialect = DIALECT_OF[shape.path]
    counts = read(dialect, split(prefix, cuts), shape.content_type)
    sound(counts)
    whole = read(dialect, [body], shape.content_type)
    if counts.output_tokens is not None and not counts.estimated:
        assert counts.output_tokens == whole.output_tokens  # a count seen is the server's count
    if counts.estimated and counts.output_tokens is not None and shape.stream:
        assert counts.output_tokens <= len(shape.chunks)


@SETTINGS
@given(
    st.sampled_from(list(Dialect)),
    st.sampled_from(CONTENT_TYPES),
    st.lists(st.binary(max_size=64), max_size=8),
)
def test_garbage_bytes_give_sound_counts(
    dialect: Dialect, content_type: str | None, chunks: list[bytes]
) -> None:
    sound(read(dialect, chunks, content_type))


@SETTINGS
@given(
    st.sampled_from(list(Dialect)),
    st.sampled_from(CONTENT_TYPES),
    st.lists(ODD_OBJECTS, max_size=6),
    st.sampled_from(["sse", "ndjson", "json"]),
    st.lists(st.integers(0, 10**6), max_size=6),
    st.booleans(),
)
def test_malformed_objects_give_sound_counts(  # noqa: PLR0917 - one argument per strategy
    dialect: Dialect,
    content_type: str | None,
    objects: list[dict[str, Any]],
    framing: str,
    cuts: list[int],
    gzipped: bool,
) -> None:
    """Well-framed JSON whose count fields hold anything: strings, negatives, NaN, 10**30,
    2**63 (which no SQLite INTEGER holds), lists, objects."""
    if framing == "sse":
        body = b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects)
    elif framing == "ndjson":
        body = b"".join(json.dumps(o).encode() + b"\n" for o in objects)
    else:
        body = json.dumps(objects[0] if objects else {}).encode()
    encoding = None
    if gzipped:
        body, encoding = gzip.compress(body), "gzip"
    sound(read(dialect, split(body, cuts), content_type, encoding))


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize("content_type", ["text/event-stream", "application/json"])
def test_huge_responses_stay_bounded(
    dialect: Dialect, content_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line (or a JSON body) past the reader's bound: it gives up and lets go of the bytes,
    at the real bound (8 MiB) and at a small one."""
    for bound in (dialects.MAX_BUFFER_BYTES, 4096):
        monkeypatch.setattr(dialects, "MAX_BUFFER_BYTES", bound)
        reader = reader_for(dialect, content_type)
        piece = b"data: " + b'{"content": "' + b"x" * 65536
        fed = 0
        while fed <= bound + 2 * len(piece):
            reader.feed(piece)
            fed += len(piece)
            assert len(reader._buffer) <= bound + len(piece)
        sound(reader.finish())
        assert len(reader._buffer) == 0


def test_deeply_nested_json_is_not_a_crash() -> None:
    """JSON nested past Python's recursion limit raises RecursionError, not ValueError."""
    deep = b"[" * 100_000 + b"]" * 100_000
    for dialect in Dialect:
        for content_type in ("text/event-stream", "application/x-ndjson", "application/json"):
            sound(read(dialect, [b"data: " + deep + b"\n\n"], content_type))
            sound(read(dialect, [deep], content_type))
    assert model_from_request(deep) is None


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(["model", "prompt", "x"]), inner, max_size=3)
            ),
            max_leaves=10,
        ).map(lambda o: json.dumps(o).encode()),
    )
)
def test_model_from_any_request_body(body: bytes) -> None:
    model = model_from_request(body)
    assert model is None or (isinstance(model, str) and model)


NOW = datetime(2026, 6, 21, 12, 0, tzinfo=timezone.utc)


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=40),
        st.floats().map(repr),
        st.integers(-(10**6), 10**6).map(str),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.isoformat() + "Z"),
    )
)
def test_defer_header_gives_a_wait_or_a_400(value: str) -> None:
    refused: ApiError | None = None
    try:
        wait = parse_defer_until(value, now=NOW)
    except ApiError as err:
        refused = err
    if refused is not None:
        assert (refused.status, refused.code) == (400, "invalid_defer_until")
    else:
        assert 0.0 <= wait <= MAX_DEFER_S
