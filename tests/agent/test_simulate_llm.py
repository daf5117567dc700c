"""The simulated LLM server speaks all three dialects in their real shapes, at a set pace."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from joulegate_agent.proxy.dialects import Dialect, reader_for
from joulegate_agent.simulation.llm import SimulatedLLM, SimulatorSettings

FAST = SimulatorSettings(tokens_per_s=0.0, prefill_tokens_per_s=0.0)


@pytest.fixture
async def sim() -> AsyncIterator[TestClient[Any, Any]]:
    client: TestClient[Any, Any] = TestClient(TestServer(SimulatedLLM(FAST).app()))
    await client.start_server()
    yield client
    await client.close()


def sse_events(body: bytes) -> list[bytes]:
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]


async def test_llama_completion_stream_ends_with_timings(sim: TestClient[Any, Any]) -> None:
    response = await sim.post("/completion", json={"prompt": "hi", "n_predict": 5, "stream": True})
    assert response.headers["Content-Type"] == "text/event-stream"
    events = [json.loads(e) for e in sse_events(await response.read())]
    assert [e["stop"] for e in events] == [False] * 5 + [True]
    assert all(set(e) == {"index", "content", "tokens", "stop"} for e in events[:-1])
    final = events[-1]
    assert final["tokens_predicted"] == final["timings"]["predicted_n"] == 5
    assert final["stop_type"] == "limit"


async def test_llama_completion_json_carries_counts(sim: TestClient[Any, Any]) -> None:
    body = await (await sim.post("/completion", json={"prompt": "hi", "n_predict": 3})).json()
    assert body["tokens_predicted"] == 3
    assert body["tokens_evaluated"] >= 1
    assert len(body["content"].split()) == 3


async def test_openai_chat_stream_has_role_content_final_usage_and_done(
    sim: TestClient[Any, Any],
) -> None:
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body = await (await sim.post("/v1/chat/completions", json=request)).read()
    events = sse_events(body)
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(c["choices"][0]["delta"]["content"] for c in chunks[1:5])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert "timings" in chunks[-2]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4


async def test_openai_stream_without_include_usage_has_no_usage(sim: TestClient[Any, Any]) -> None:
    request = {"model": "m", "prompt": "hi", "max_tokens": 2, "stream": True}
    body = await (await sim.post("/v1/completions", json=request)).read()
    assert b'"usage"' not in body
    assert sse_events(body)[-1] == b"[DONE]"


async def test_openai_json_has_usage_and_timings(sim: TestClient[Any, Any]) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    body = await (await sim.post("/v1/chat/completions", json=request)).json()
    assert body["object"] == "chat.completion"
    assert body["usage"]["completion_tokens"] == 2
    assert body["timings"]["predicted_n"] == 2


async def test_ollama_streams_ndjson_by_default_with_a_done_object(
    sim: TestClient[Any, Any],
) -> None:
    request = {"model": "llama3.2:3b", "prompt": "hi", "options": {"num_predict": 3}}
    response = await sim.post("/api/generate", json=request)
    assert response.headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in (await response.read()).splitlines()]
    assert [line["done"] for line in lines] == [False, False, False, True]
    assert lines[-1]["eval_count"] == 3
    assert lines[-1]["done_reason"] == "length"
    assert isinstance(lines[-1]["eval_duration"], int)


async def test_ollama_chat_without_streaming_is_one_object(sim: TestClient[Any, Any]) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    body = await (await sim.post("/api/chat", json=request)).json()
    assert body["done"] is True
    assert body["message"]["role"] == "assistant"
    assert body["eval_count"] == FAST.default_max_tokens


async def test_model_lists_answer(sim: TestClient[Any, Any]) -> None:
    tags = await (await sim.get("/api/tags")).json()
    models = await (await sim.get("/v1/models")).json()
    assert tags["models"][0]["name"] == models["data"][0]["id"] == FAST.model


@pytest.mark.parametrize(
    ("path", "request_body", "dialect"),
    [
        ("/completion", {"prompt": "x", "n_predict": 6, "stream": True}, Dialect.LLAMA_CPP),
        ("/v1/completions", {"prompt": "x", "max_tokens": 6, "stream": True}, Dialect.OPENAI),
        ("/api/chat", {"messages": [], "options": {"num_predict": 6}}, Dialect.OLLAMA),
    ],
)
async def test_the_proxys_readers_count_what_the_simulator_sends(
    sim: TestClient[Any, Any], path: str, request_body: dict[str, Any], dialect: Dialect
) -> None:
    response = await sim.post(path, json=request_body)
    reader = reader_for(dialect, response.headers["Content-Type"])
    reader.feed(await response.read())
    counts = reader.finish()
    assert (counts.output_tokens, counts.estimated) == (6, False)


async def test_tokens_arrive_at_the_configured_rate() -> None:
    settings = SimulatorSettings(tokens_per_s=100.0, prefill_tokens_per_s=0.0)
    client: TestClient[Any, Any] = TestClient(TestServer(SimulatedLLM(settings).app()))
    await client.start_server()
    try:
        started = time.monotonic()
        response = await client.post(
            "/api/generate", json={"prompt": "x", "options": {"num_predict": 20}}
        )
        await response.read()
        elapsed = time.monotonic() - started
    finally:
        await client.close()
    assert elapsed == pytest.approx(0.2, abs=0.08)


def test_the_default_pace_is_jetson_like() -> None:
    assert 15 <= SimulatorSettings().tokens_per_s <= 40


async def timed_streams(settings: SimulatorSettings, *rates: float | None) -> list[float]:
    """Send one 10-token stream per rate at once; return when each one ended (s from the start)."""
    client: TestClient[Any, Any] = TestClient(TestServer(SimulatedLLM(settings).app()))
    await client.start_server()
    started = time.monotonic()

    async def one(rate: float | None) -> float:
        body: dict[str, Any] = {"prompt": "x", "n_predict": 10, "stream": True}
        if rate is not None:
            body["simulate_tokens_per_s"] = rate
        await (await client.post("/completion", json=body)).read()
        return time.monotonic() - started

    try:
        return list(await asyncio.gather(*(one(rate) for rate in rates)))
    finally:
        await client.close()


async def test_one_slot_serves_requests_one_at_a_time() -> None:
    settings = SimulatorSettings(tokens_per_s=100.0, prefill_tokens_per_s=0.0, slots=1)
    ended = sorted(await timed_streams(settings, None, None, None))
    assert ended == pytest.approx([0.1, 0.2, 0.3], abs=0.05)


async def test_batched_slots_decode_side_by_side_and_queue_the_rest() -> None:
    settings = SimulatorSettings(tokens_per_s=100.0, prefill_tokens_per_s=0.0, slots=2)
    ended = sorted(await timed_streams(settings, None, None, None))
    assert ended == pytest.approx([0.1, 0.1, 0.2], abs=0.05)


async def test_a_request_may_ask_for_its_own_decode_rate() -> None:
    settings = SimulatorSettings(tokens_per_s=100.0, prefill_tokens_per_s=0.0, slots=4)
    fast, slow = await timed_streams(settings, None, 50.0)
    assert (fast, slow) == (pytest.approx(0.1, abs=0.05), pytest.approx(0.2, abs=0.05))


async def test_a_bad_decode_rate_is_refused(sim: TestClient[Any, Any]) -> None:
    response = await sim.post("/completion", json={"prompt": "x", "simulate_tokens_per_s": "fast"})
    assert response.status == 400
    assert "simulate_tokens_per_s" in (await response.json())["error"]


def test_negative_slots_are_refused() -> None:
    with pytest.raises(ValueError, match="slots"):
        SimulatorSettings(slots=-1)


async def test_the_decode_rate_follows_the_simulated_board_s_power_mode(tmp_path: Path) -> None:
    mode_file = tmp_path / "simulated-power-mode"
    settings = SimulatorSettings(tokens_per_s=25.0, power_mode_file=mode_file)
    assert settings.decode_rate() == 25.0  # no file yet: the set rate
    mode_file.write_text("7W\n")
    assert settings.decode_rate() == pytest.approx(11.0)
    mode_file.write_text("MAXN_SUPER\n")
    assert settings.decode_rate() == pytest.approx(30.0)
