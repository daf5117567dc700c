"""The gate at the proxy: refusal, deferral with a deadline, queue bounds, concurrency limit."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from tests.agent.fakes.llm_answers import SHAPES
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent, wait_for

CHAT = next(s for s in SHAPES if s.name == "llama.cpp /v1/chat/completions json")
STREAM = next(s for s in SHAPES if s.name == "Ollama /api/chat ndjson")
DEFER = "X-Joulegate-Defer-Until"


async def open_gate(agent: Agent, client: TestClient[Any, Any], lease_s: float = 60) -> None:
    response = await client.put(
        "/api/v1/gate",
        json={"open": True, "lease_s": lease_s, "reason": "surplus"},
        headers=auth(agent),
    )
    assert response.status == 200


async def test_closed_gate_refuses_with_503_retry_after_and_the_reason(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, client),
    ):
        response = await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        assert response.status == 503
        assert int(response.headers["Retry-After"]) > 0
        body = await response.json()
        [row] = await rows(agent)
    assert body["error"] == "gate_closed"
    assert body["message"]
    assert "no lease" in body["reason"]
    assert fake.seen == []
    assert (row["outcome"], row["http_status"], row["gate_open"]) == ("refused", 503, False)
    assert row["energy_j"] == 0
    assert row["model"] == "llama-3.2-3b-instruct"


async def test_refused_requests_do_not_count_as_inferences(tmp_path: Path) -> None:
    async with running_agent(
        proxy_config(tmp_path, "http://127.0.0.1:9", gate_fallback_open=False)
    ) as (agent, client):
        await client.post(CHAT.path, json=CHAT.request, headers=auth(agent))
        await rows(agent)
        assert agent.inference.ledger.totals().inferences == 0


async def test_a_deferred_request_waits_and_runs_when_the_gate_opens(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, client),
    ):
        pending = asyncio.ensure_future(
            client.post(CHAT.path, json=CHAT.request, headers={**auth(agent), DEFER: "10"})
        )
        await wait_for(lambda: len(agent.inference.queue) == 1)
        assert fake.seen == []
        await open_gate(agent, client)
        response = await pending
        assert response.status == 200
        assert await response.read() == CHAT.body
        [row] = await rows(agent)
    assert (row["outcome"], row["gate_open"]) == ("ok", True)


async def test_a_deferred_request_gets_503_at_its_deadline(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, client),
    ):
        deadline = datetime.now(timezone.utc) + timedelta(seconds=0.4)
        started = time.monotonic()
        response = await client.post(
            CHAT.path, json=CHAT.request, headers={**auth(agent), DEFER: deadline.isoformat()}
        )
        waited = time.monotonic() - started
        assert response.status == 503
        assert (await response.json())["error"] == "gate_closed"
        assert "Retry-After" in response.headers
        [row] = await rows(agent)
    assert 0.3 < waited < 2.0
    assert row["outcome"] == "refused"
    assert row["duration_s"] == pytest.approx(waited, abs=0.1)
    assert fake.seen == []


async def test_the_deferral_queue_is_bounded(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False, queue_capacity=2)) as (
            agent,
            client,
        ),
    ):
        waiting = [
            asyncio.ensure_future(
                client.post(CHAT.path, json=CHAT.request, headers={**auth(agent), DEFER: "10"})
            )
            for _ in range(2)
        ]
        await wait_for(lambda: len(agent.inference.queue) == 2)
        response = await client.post(
            CHAT.path, json=CHAT.request, headers={**auth(agent), DEFER: "10"}
        )
        assert response.status == 503
        assert (await response.json())["error"] == "queue_full"
        await open_gate(agent, client)
        assert [r.status for r in await asyncio.gather(*waiting)] == [200, 200]


async def test_status_shows_queue_length_and_oldest_wait(tmp_path: Path) -> None:
    fake = FakeUpstream()
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False, queue_capacity=5)) as (
            agent,
            client,
        ),
    ):
        pending = asyncio.ensure_future(
            client.post(CHAT.path, json=CHAT.request, headers={**auth(agent), DEFER: "10"})
        )
        await wait_for(lambda: len(agent.inference.queue) == 1)
        await asyncio.sleep(0.2)
        status = await (await client.get("/api/v1/status", headers=auth(agent))).json()
        await open_gate(agent, client)
        await pending
    assert status["queue"]["length"] == 1
    assert status["queue"]["capacity"] == 5
    assert status["queue"]["oldest_wait_s"] >= 0.2
    assert status["gate"]["open"] is False


async def test_a_malformed_defer_header_is_a_400(tmp_path: Path) -> None:
    async with running_agent(
        proxy_config(tmp_path, "http://127.0.0.1:9", gate_fallback_open=False)
    ) as (agent, client):
        response = await client.post(
            CHAT.path, json=CHAT.request, headers={**auth(agent), DEFER: "tomorrow-ish"}
        )
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_defer_until"


async def test_more_than_max_concurrent_inferences_get_429(tmp_path: Path) -> None:
    fake = FakeUpstream(shapes=(STREAM,), chunk_delay_s=0.05)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, max_concurrent_inferences=1)) as (agent, client),
    ):
        first = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
        second = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
        assert second.status == 429
        assert (await second.json())["error"] == "too_many_inferences"
        assert await first.read() == STREAM.body
        third = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
        assert third.status == 200
        await third.read()
        outcomes = [(r["outcome"], r["http_status"]) for r in await rows(agent)]
    assert sorted(outcomes) == [("ok", 200), ("ok", 200), ("refused", 429)]


async def test_a_deferred_request_waits_for_a_free_slot_instead_of_429(tmp_path: Path) -> None:
    fake = FakeUpstream(shapes=(STREAM,), chunk_delay_s=0.05)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, max_concurrent_inferences=1)) as (agent, client),
    ):
        first = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
        second = asyncio.ensure_future(
            client.post(STREAM.path, json=STREAM.request, headers={**auth(agent), DEFER: "10"})
        )
        await first.read()
        response = await second
        assert response.status == 200
        assert await response.read() == STREAM.body


async def test_concurrent_windows_share_the_energy_of_their_overlap(tmp_path: Path) -> None:
    fake = FakeUpstream(shapes=(STREAM,), chunk_delay_s=0.1)
    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url)) as (
            agent,
            client,
        ),
    ):
        await asyncio.sleep(0.3)
        board_before = agent.meter.total_j

        async def one() -> None:
            response = await client.post(STREAM.path, json=STREAM.request, headers=auth(agent))
            assert await response.read() == STREAM.body

        await asyncio.gather(one(), one())
        both = await rows(agent)
        await asyncio.sleep(0.05)
        board_during = agent.meter.total_j - board_before
    first, second = both
    assert first["started_at"] < second["ended_at"]
    assert second["started_at"] < first["ended_at"]  # they overlapped
    # Each overlapping second is split, not counted twice: together the windows never cost more
    # than the board drew while they ran.
    assert first["energy_j"] + second["energy_j"] <= board_during
    assert first["energy_j"] + second["energy_j"] == pytest.approx(board_during, rel=0.15)
