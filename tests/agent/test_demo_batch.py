"""The demo's batch at start: plain HTTP to the agent's Files and Batches APIs, as the official
client sends it, and one batch per demo however often it starts."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from demo import batch as demo_batch
from tests.agent.batch_helpers import batch_agent, lines_of, wait_for_status


async def test_the_demo_batch_runs_on_the_agent_with_one_answer_per_request(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path) as (agent, http, client), aiohttp.ClientSession() as session:
        url = str(http.make_url("")).rstrip("/")
        submitted, new = await demo_batch.submit(session, url, agent.token, requests=4)
        done = await wait_for_status(client, submitted["id"], ("completed",))
        assert done.output_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
    assert new
    assert submitted["request_counts"]["total"] == 4
    assert submitted["metadata"] == {"source": "joulegate-demo", "joulegate_when_sun_fails": "grid"}
    assert sorted(line["custom_id"] for line in output) == [f"demo-{n}" for n in (1, 2, 3, 4)]
    assert all(line["response"]["status_code"] == 200 for line in output)


async def test_a_second_start_of_the_demo_finds_its_batch_still_waiting_for_the_sun(
    tmp_path: Path,
) -> None:
    async with (
        batch_agent(tmp_path, gate_fallback_open=False) as (agent, http, _),
        aiohttp.ClientSession() as session,
    ):
        url = str(http.make_url("")).rstrip("/")
        first, _ = await demo_batch.submit(session, url, agent.token)
        again, new = await demo_batch.submit(session, url, agent.token)
    assert first["status"] == "in_progress"
    assert (again["id"], new) == (first["id"], False)
