"""Token-count readers: fed bytes as they pass, in any split, they find the server's counts."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joulegate_agent.proxy.dialects import (
    MAX_BUFFER_BYTES,
    MAX_COUNT,
    Dialect,
    TokenCounts,
    dialect_for,
    model_from_request,
    read_request,
    reader_for,
)
from tests.agent.fakes.llm_answers import OLLAMA_DONE, SHAPES, Shape, ndjson, sse

DIALECT_OF = {
    "/completion": Dialect.LLAMA_CPP,
    "/v1/chat/completions": Dialect.OPENAI,
    "/v1/completions": Dialect.OPENAI,
    "/api/generate": Dialect.OLLAMA,
    "/api/chat": Dialect.OLLAMA,
}


def read(
    dialect: Dialect,
    chunks: list[bytes] | tuple[bytes, ...],
    content_type: str,
    encoding: str | None = None,
) -> TokenCounts:
    reader = reader_for(dialect, content_type, encoding)
    for chunk in chunks:
        reader.feed(chunk)
    return reader.finish()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_each_recorded_shape_yields_its_counts(shape: Shape) -> None:
    counts = read(DIALECT_OF[shape.path], shape.chunks, shape.content_type)
    assert counts.output_tokens == shape.output_tokens
    assert counts.prompt_tokens == shape.prompt_tokens
    assert counts.estimated is shape.estimated
    assert counts.model == shape.model


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_counts_do_not_depend_on_how_the_bytes_are_split(shape: Shape, cuts: list[int]) -> None:
    body = shape.body
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    assert read(DIALECT_OF[shape.path], pieces, shape.content_type) == read(
        DIALECT_OF[shape.path], shape.chunks, shape.content_type
    )


def test_llama_timings_predicted_n_wins_over_tokens_predicted() -> None:
    final = {"content": "", "stop": True, "tokens_predicted": 9, "timings": {"predicted_n": 7}}
    counts = read(Dialect.LLAMA_CPP, [sse(final)], "text/event-stream")
    assert counts.output_tokens == 7


def test_llama_timings_win_over_usage_on_openai_routes() -> None:
    body = {"choices": [], "usage": {"completion_tokens": 12}, "timings": {"predicted_n": 10}}
    assert read(Dialect.OPENAI, [json.dumps(body).encode()], "application/json").output_tokens == 10


def test_ollama_done_object_without_counts_means_zero() -> None:
    done = {"model": "m", "created_at": "2026-01-01T00:00:00Z", "response": "", "done": True}
    counts = read(Dialect.OLLAMA, [ndjson(done)], "application/x-ndjson")
    assert (counts.output_tokens, counts.prompt_tokens, counts.estimated) == (0, 0, False)


def test_stream_without_counts_is_estimated_from_content_chunks() -> None:
    chunks = [sse({"choices": [{"index": 0, "delta": {"content": w}}]}) for w in ("a", "b", "c")]
    chunks += [
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        b"data: [DONE]\n\n",
    ]
    counts = read(Dialect.OPENAI, chunks, "text/event-stream")
    assert (counts.output_tokens, counts.estimated) == (3, True)


def test_json_body_without_counts_is_estimated_from_its_text() -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 40}}]}
    counts = read(Dialect.OPENAI, [json.dumps(body).encode()], "application/json")
    assert (counts.output_tokens, counts.estimated) == (10, True)


def test_feed_reports_content_events_so_the_proxy_can_time_the_first_token() -> None:
    reader = reader_for(Dialect.OLLAMA, "application/x-ndjson")
    line = ndjson({"response": "Hi", "done": False})
    assert reader.feed(line[:5]) == 0  # half a line is not a token yet
    assert reader.feed(line[5:]) == 1
    assert reader.feed(ndjson({"response": "", **OLLAMA_DONE})) == 0


def test_gzip_bodies_are_read_through_the_compression() -> None:
    body = json.dumps({"model": "m", "done": True, "eval_count": 5}).encode()
    packed = gzip.compress(body)
    counts = read(Dialect.OLLAMA, [packed[:7], packed[7:]], "application/json", "gzip")
    assert counts.output_tokens == 5


def test_a_compressed_stream_is_inflated_in_bounded_pieces_and_read_whole() -> None:
    line = ndjson({"model": "m", "response": "Hi", "done": False})
    copies = 20 * 1024 * 1024 // len(line)
    packed = gzip.compress(line * copies + ndjson({"response": "", **OLLAMA_DONE}))
    reader = reader_for(Dialect.OLLAMA, "application/x-ndjson", "gzip")
    tracemalloc.start()
    try:
        events = reader.feed(packed)  # one small chunk that inflates to 20 MiB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events == copies
    assert peak < 4 * 1024 * 1024
    assert reader.finish().output_tokens == OLLAMA_DONE["eval_count"]


def test_a_cut_off_compressed_stream_is_read_up_to_its_last_inflatable_line() -> None:
    line = ndjson({"model": "m", "response": "Hi", "done": False})
    packed = gzip.compress(line * (3 * 1024 * 1024 // len(line)))
    for cut in range(len(packed) // 2, len(packed) - 8, 997):  # the trailer never arrives
        whole = zlib.decompressobj(wbits=47).decompress(packed[:cut])
        reader = reader_for(Dialect.OLLAMA, "application/x-ndjson", "gzip")
        assert reader.feed(packed[:cut]) == whole.count(b"\n"), cut


def test_a_compressed_stream_past_32_mib_is_relayed_but_not_read() -> None:
    line = ndjson({"model": "m", "response": "Hi", "done": False})
    body = line * (40 * 1024 * 1024 // len(line)) + ndjson({"response": "", **OLLAMA_DONE})
    reader = reader_for(Dialect.OLLAMA, "application/x-ndjson", "gzip")
    reader.feed(gzip.compress(body))
    counts = reader.finish()
    assert counts.estimated
    assert counts.output_tokens != OLLAMA_DONE["eval_count"]


def test_a_compressed_body_that_inflates_past_the_limit_is_not_read() -> None:
    packed = gzip.compress(b'{"model": "m", "eval_count": 5, "pad": "' + b" " * (64 << 20) + b'"}')
    reader = reader_for(Dialect.OLLAMA, "application/json", "gzip")
    tracemalloc.start()
    try:
        reader.feed(packed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_BUFFER_BYTES
    assert (reader.finish().output_tokens, len(packed) < 100_000) == (None, True)


def test_a_corrupt_compressed_body_gives_no_count() -> None:
    packed = bytearray(gzip.compress(json.dumps({"done": True, "eval_count": 5}).encode()))
    packed[12:20] = b"\xff" * 8  # the deflate stream, past the gzip header
    counts = read(Dialect.OLLAMA, [bytes(packed)], "application/json", "gzip")
    assert (counts.output_tokens, counts.estimated) == (None, True)


def test_an_encoding_it_cannot_read_gives_no_count() -> None:
    counts = read(Dialect.OLLAMA, [b"\x8b\x00garbage"], "application/json", "br")
    assert (counts.output_tokens, counts.estimated) == (None, True)


def test_sse_events_split_over_several_data_lines_are_joined() -> None:
    event = b'data: {"choices": [],\ndata: "usage": {"completion_tokens": 4}}\n\n'
    assert read(Dialect.OPENAI, [event], "text/event-stream").output_tokens == 4


def test_crlf_line_endings_are_understood() -> None:
    event = b'data: {"usage": {"completion_tokens": 4}}\r\n\r\ndata: [DONE]\r\n\r\n'
    assert read(Dialect.OPENAI, [event], "text/event-stream").output_tokens == 4


def test_upstream_reported_ttft_is_kept_for_non_streamed_answers() -> None:
    body = {
        "done": True,
        "eval_count": 3,
        "load_duration": 20_000_000,
        "prompt_eval_duration": 180_000_000,
    }
    counts = read(Dialect.OLLAMA, [json.dumps(body).encode()], "application/json")
    assert counts.upstream_ttft_s == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("method", "path", "dialect"),
    [
        ("POST", "/completion", Dialect.LLAMA_CPP),
        ("POST", "/completions", Dialect.LLAMA_CPP),
        ("POST", "/v1/chat/completions", Dialect.OPENAI),
        ("POST", "/v1/completions", Dialect.OPENAI),
        ("POST", "/api/generate", Dialect.OLLAMA),
        ("POST", "/api/chat", Dialect.OLLAMA),
        ("GET", "/api/tags", None),
        ("GET", "/v1/models", None),
        ("POST", "/api/show", None),
        ("GET", "/api/chat", None),
    ],
)
def test_only_inference_routes_are_metered(method: str, path: str, dialect: Dialect | None) -> None:
    assert dialect_for(method, path) is dialect


def test_the_request_model_is_read_from_a_json_body() -> None:
    assert model_from_request(b'{"model": "llama3.2:3b", "prompt": "hi"}') == "llama3.2:3b"
    assert model_from_request(b"not json") is None
    assert model_from_request(b"[1, 2]") is None


@pytest.mark.parametrize(
    ("dialect", "body", "streamed"),
    [
        (Dialect.OLLAMA, b'{"prompt": "hi"}', True),
        (Dialect.OLLAMA, b'{"prompt": "hi", "stream": false}', False),
        (Dialect.OPENAI, b'{"messages": [], "stream": true}', True),
        (Dialect.OPENAI, b'{"messages": []}', False),
        (Dialect.LLAMA_CPP, b'{"prompt": "hi", "stream": "yes"}', False),
        (Dialect.OLLAMA, b"not json", False),
    ],
)
def test_a_request_streams_when_it_asks_to_and_ollama_unless_told_not_to(
    dialect: Dialect, body: bytes, streamed: bool
) -> None:
    assert read_request(dialect, body).streamed is streamed


def test_a_long_stream_counts_the_same_in_large_blocks_as_event_by_event() -> None:
    env = {"object": "chat.completion.chunk", "model": "m"}
    events = [
        sse({"choices": [{"index": 0, "delta": {"content": f" t{i}"}}], **env}) for i in range(3000)
    ]
    events += [
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], **env}),
        b"data: [DONE]\n\n",
    ]
    body = b"".join(events)
    blocks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    by_event = read(Dialect.OPENAI, events, "text/event-stream")
    by_block = read(Dialect.OPENAI, blocks, "text/event-stream")
    assert by_event == by_block
    assert (by_block.output_tokens, by_block.estimated, by_block.model) == (3000, True, "m")


def test_tool_call_and_thinking_chunks_count_as_content() -> None:
    lines = [
        ndjson(
            {
                "model": "m",
                "message": {"role": "assistant", "content": "", "thinking": "hmm"},
                "done": False,
            }
        ),
        ndjson(
            {
                "model": "m",
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f"}}],
                },
                "done": False,
            }
        ),
        ndjson({"model": "m", "message": {"role": "assistant", "content": ""}, "done": False}),
    ]
    counts = read(Dialect.OLLAMA, lines, "application/x-ndjson")
    assert (counts.output_tokens, counts.estimated) == (2, True)


def test_absurd_counts_in_a_response_are_not_counts() -> None:
    for value in (2**63, 10**30, MAX_COUNT + 1, -1, float("nan")):
        done = {"done": True, "eval_count": value, "prompt_eval_count": value}
        reader = reader_for(Dialect.OLLAMA, "application/x-ndjson")
        reader.feed(json.dumps(done).encode() + b"\n")
        counts = reader.finish()
        assert counts.output_tokens == 0  # Ollama: a done object without a usable count is 0
        assert counts.prompt_tokens == 0
