"""Values an upstream reports are bounded before they reach a row, a counter or the API: an
upstream is outside the agent's control, and one bad answer must not poison the ledger for good."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from joulegate_agent.proxy.dialects import MAX_COUNT, Dialect, reader_for
from tests.agent.fakes.llm_answers import OLLAMA_DONE, SHAPES, ndjson
from tests.agent.fakes.upstream import FakeUpstream, upstream_server, with_options
from tests.agent.helpers import auth, proxy_config, rows, running_agent

OLLAMA_JSON = next(s for s in SHAPES if s.name == "Ollama /api/chat json")
LLAMA_JSON = next(s for s in SHAPES if s.name == "llama.cpp /completion json")


def _ollama_reply(**done: Any) -> bytes:
    body = {
        "model": "llama3.2:3b",
        "message": {"role": "assistant", "content": "The sun pays"},
        **OLLAMA_DONE,
        **done,
    }
    return json.dumps(body).encode()


def test_durations_that_add_up_to_infinity_give_no_time_to_first_token() -> None:
    reader = reader_for(Dialect.OLLAMA, "application/json")
    reader.feed(_ollama_reply(load_duration=1e308, prompt_eval_duration=1e308))
    assert reader.finish().upstream_ttft_s is None


def test_prompt_and_cached_tokens_that_add_up_past_the_largest_count_are_not_a_count() -> None:
    reader = reader_for(Dialect.LLAMA_CPP, "application/json")
    timings = {"prompt_n": MAX_COUNT, "cache_n": MAX_COUNT, "predicted_n": 3}
    reader.feed(json.dumps({"content": "abc", "timings": timings}).encode())
    assert reader.finish().prompt_tokens is None


async def test_an_absurd_time_to_first_token_never_reaches_the_api_as_infinity(
    tmp_path: Path,
) -> None:
    shape = with_options(OLLAMA_JSON, chunks=(_ollama_reply(load_duration=1e308),))
    fake = FakeUpstream(shapes=(shape,))
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        response = await client.post(shape.path, json=shape.request, headers=auth(agent))
        assert response.status == 200
        await rows(agent)
        page = await client.get("/api/v1/inferences", headers=auth(agent))
        text = await page.text()
    assert "Infinity" not in text
    [row] = json.loads(text)["items"]
    assert row["ttft_s"] is None or row["ttft_s"] <= row["duration_s"]


async def test_a_count_no_server_could_have_produced_in_the_window_is_not_counted(
    tmp_path: Path,
) -> None:
    """Three answers each claiming MAX_COUNT output tokens once raised the lifetime token counter
    by 6.4e9, for good."""
    claim = ndjson({"model": "m", "response": "", **OLLAMA_DONE, "eval_count": MAX_COUNT})
    shape = next(s for s in SHAPES if s.name == "Ollama /api/generate ndjson")
    fake = FakeUpstream(shapes=(with_options(shape, chunks=(*shape.chunks[:-1], claim)),))
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, client),
    ):
        for _ in range(3):
            response = await client.post(shape.path, json=shape.request, headers=auth(agent))
            assert response.status == 200
            await response.read()
        recorded = await rows(agent)
        status = await (await client.get("/api/v1/status", headers=auth(agent))).json()
    assert all(row["output_tokens"] != MAX_COUNT for row in recorded)
    assert status["inference"]["output_tokens"] < 1000


async def test_a_lease_with_hundreds_of_digits_is_a_400_not_a_500(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        body = b'{"open": true, "lease_s": ' + b"9" * 400 + b"}"
        response = await client.put(
            "/api/v1/gate",
            data=body,
            headers={**auth(agent), "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_body"
