"""Through the proxy, every dialect's response arrives byte for byte and is metered right."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.agent.fakes.llm_answers import SHAPES, Shape
from tests.agent.fakes.upstream import FakeUpstream, upstream_server, with_options
from tests.agent.helpers import auth, proxy_config, rows, running_agent


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
async def test_client_receives_exactly_the_bytes_the_upstream_sent(
    tmp_path: Path, shape: Shape
) -> None:
    fake = FakeUpstream(shapes=(shape,))
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(shape.path, json=shape.request, headers=auth(agent))
        assert response.status == 200
        assert response.headers["Content-Type"] == shape.content_type
        assert await response.read() == shape.body


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
async def test_each_dialect_records_one_row_with_its_token_counts(
    tmp_path: Path, shape: Shape
) -> None:
    fake = FakeUpstream(shapes=(shape,))
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(shape.path, json=shape.request, headers=auth(agent))
        await response.read()
        [row] = await rows(agent)
    assert row["outcome"] == "ok"
    assert row["http_status"] == 200
    assert row["route"] == shape.path
    assert row["output_tokens"] == shape.output_tokens
    assert row["prompt_tokens"] == shape.prompt_tokens
    assert row["tokens_estimated"] is shape.estimated
    assert row["model"] == shape.request.get("model", shape.model)
    assert row["gate_open"] is True


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
async def test_each_window_is_metered_with_energy_and_derived_figures(
    tmp_path: Path, shape: Shape
) -> None:
    fake = FakeUpstream(shapes=(shape,), hang_s=0.1, chunk_delay_s=0.02)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(shape.path, json=shape.request, headers=auth(agent))
        await response.read()
        [row] = await rows(agent)
    assert row["duration_s"] > 0
    assert row["energy_j"] > 0
    assert row["avg_w"] == pytest.approx(row["energy_j"] / row["duration_s"], rel=0.01)
    assert row["peak_w"] >= row["avg_w"]
    assert row["wh"] == pytest.approx(row["energy_j"] / 3600, abs=1e-6)
    assert row["j_per_token"] == pytest.approx(row["energy_j"] / row["output_tokens"], rel=0.01)
    assert row["tokens_per_s"] == pytest.approx(row["output_tokens"] / row["duration_s"], rel=0.01)
    assert row["boundary"] == agent.boundary


async def test_streamed_response_records_time_to_first_token(tmp_path: Path) -> None:
    shape = next(s for s in SHAPES if s.path == "/api/chat" and s.stream)
    fake = FakeUpstream(shapes=(shape,), hang_s=0.15, chunk_delay_s=0.02)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        await (await client.post(shape.path, json=shape.request, headers=auth(agent))).read()
        [row] = await rows(agent)
    assert 0.15 <= row["ttft_s"] < row["duration_s"]


async def test_non_streamed_response_takes_time_to_first_token_from_the_server(
    tmp_path: Path,
) -> None:
    shape = next(s for s in SHAPES if s.name == "llama.cpp /completion json")
    fake = FakeUpstream(shapes=(shape,))
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        await (await client.post(shape.path, json=shape.request, headers=auth(agent))).read()
        [row] = await rows(agent)
    assert row["ttft_s"] == pytest.approx(0.1825, abs=0.001)  # timings.prompt_ms


async def test_compressed_response_is_relayed_compressed_and_still_counted(
    tmp_path: Path,
) -> None:
    plain = next(s for s in SHAPES if s.name == "Ollama /api/chat json")
    shape = with_options(plain, chunks=(gzip.compress(plain.body),))
    fake = FakeUpstream(shapes=(shape,), extra_headers={"Content-Encoding": "gzip"})
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        response = await client.post(
            shape.path,
            json=shape.request,
            headers={**auth(agent), "Accept-Encoding": "gzip"},
            auto_decompress=False,
        )
        assert response.headers["Content-Encoding"] == "gzip"
        assert await response.read() == shape.body
        [row] = await rows(agent)
    assert row["output_tokens"] == 6
