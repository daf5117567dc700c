"""The inference API: ledger pages, the gate, explicit windows, events, restarts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.api.routes_core import openapi_document
from joulegate_agent.proxy.dialects import MAX_COUNT
from tests.agent.helpers import auth, proxy_config, running_agent, wait_for

DOCUMENT = openapi_document()


def valid(body: Any, schema_name: str) -> None:
    jsonschema.validate(
        body,
        {"$ref": f"#/components/schemas/{schema_name}", "components": DOCUMENT["components"]},
    )


async def start_window(agent: Agent, client: TestClient[Any, Any], **body: Any) -> str:
    response = await client.post("/api/v1/windows", json=body, headers=auth(agent))
    assert response.status == 201
    started = await response.json()
    valid(started, "WindowStarted")
    return str(started["window_id"])


async def end_window(
    agent: Agent, client: TestClient[Any, Any], window_id: str, **body: Any
) -> aiohttp.ClientResponse:
    return await client.post(f"/api/v1/windows/{window_id}/end", json=body, headers=auth(agent))


# -- explicit windows ----------------------------------------------------------------------------


async def test_an_explicit_window_becomes_a_row_with_its_token_counts(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        window_id = await start_window(agent, client, model="trt-llm/llama3", label="batch 7")
        await asyncio.sleep(0.3)
        response = await end_window(agent, client, window_id, output_tokens=96, prompt_tokens=52)
        assert response.status == 200
        row = await response.json()
    valid(row, "InferenceRow")
    assert (row["window_id"], row["model"], row["label"], row["route"]) == (
        window_id,
        "trt-llm/llama3",
        "batch 7",
        "window",
    )
    assert (row["output_tokens"], row["prompt_tokens"], row["outcome"]) == (96, 52, "ok")
    assert row["duration_s"] == pytest.approx(0.3, abs=0.1)
    assert row["j_per_token"] == pytest.approx(row["energy_j"] / 96, rel=0.01)


async def test_an_explicit_window_loads_the_simulated_board(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        await asyncio.sleep(0.2)
        idle_w = agent.meter.latest_w
        window_id = await start_window(agent, client)
        assert agent.meter.in_flight == 1
        await asyncio.sleep(1.0)
        busy_w = agent.meter.latest_w
        row = await (await end_window(agent, client, window_id)).json()
    assert idle_w is not None
    assert busy_w is not None
    assert idle_w < 6.0
    assert busy_w > 9.0
    assert row["avg_w"] > 7


async def test_a_row_carries_an_error_bound_that_covers_its_edges(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        await asyncio.sleep(0.3)
        window_id = await start_window(agent, client)
        await asyncio.sleep(0.5)
        row = await (await end_window(agent, client, window_id)).json()
        page = await (await client.get("/api/v1/inferences", headers=auth(agent))).json()
    # The simulated board steps from ~4.5 W to ~10 W at the edges, sampled every 0.1 s.
    assert 0.0 < row["energy_error_j"] < 0.5 * row["energy_j"]
    assert page["items"][-1]["energy_error_j"] == row["energy_error_j"]


async def test_ending_an_unknown_or_ended_window_is_404(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        window_id = await start_window(agent, client)
        assert (await end_window(agent, client, window_id)).status == 200
        again = await end_window(agent, client, window_id)
        assert again.status == 404
        assert (await again.json())["error"] == "window_not_found"
        assert (await end_window(agent, client, "nope")).status == 404


@pytest.mark.parametrize(
    "body",
    [{"output_tokens": -1}, {"output_tokens": "96"}, {"outcome": "refused"}, {"outcome": "great"}],
)
async def test_an_invalid_window_end_is_400(tmp_path: Path, body: dict[str, Any]) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        window_id = await start_window(agent, client)
        response = await end_window(agent, client, window_id, **body)
        assert response.status == 400
        assert (await end_window(agent, client, window_id)).status == 200  # still open


async def test_overlapping_windows_split_the_overlap_instead_of_counting_it_twice(
    tmp_path: Path,
) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        await asyncio.sleep(0.5)
        board_before = agent.meter.total_j
        first = await start_window(agent, client)
        await asyncio.sleep(0.4)
        second = await start_window(agent, client)
        await asyncio.sleep(0.6)  # both in flight
        a = await (await end_window(agent, client, first)).json()
        await asyncio.sleep(0.4)
        b = await (await end_window(agent, client, second)).json()
        board = agent.meter.total_j - board_before
    together = a["energy_j"] + b["energy_j"]
    # Counting the ~0.6 s overlap twice would add ~6 J (10 W) to a ~14 J total: far outside 10 %.
    assert together <= board
    assert together == pytest.approx(board, rel=0.1)


# -- ledger --------------------------------------------------------------------------------------


async def test_inferences_are_paged_with_a_cursor(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        for _ in range(3):
            await end_window(agent, client, await start_window(agent, client), output_tokens=1)
        page1 = await (await client.get("/api/v1/inferences?limit=2", headers=auth(agent))).json()
        page2 = await (
            await client.get(
                f"/api/v1/inferences?after={page1['cursor']}&limit=2", headers=auth(agent)
            )
        ).json()
    valid(page1, "InferencePage")
    assert (len(page1["items"]), page1["has_more"]) == (2, True)
    assert (len(page2["items"]), page2["has_more"]) == (1, False)
    assert page1["cursor"] == page1["items"][-1]["id"]
    assert page2["items"][0]["id"] > page1["cursor"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "after=-1", "after=x"])
async def test_bad_paging_parameters_are_400(tmp_path: Path, query: str) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        response = await client.get(f"/api/v1/inferences?{query}", headers=auth(agent))
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_parameter"


async def test_status_reports_inference_counters_last_row_gate_and_queue(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        window_id = await start_window(agent, client)
        await asyncio.sleep(0.1)
        await end_window(agent, client, window_id, output_tokens=40)
        status = await (await client.get("/api/v1/status", headers=auth(agent))).json()
    valid(status, "Status")
    assert status["inference"]["count"] == 1
    assert status["inference"]["output_tokens"] == 40
    assert status["inference"]["last"]["window_id"] == window_id
    assert status["energy"]["inference_wh"] > 0
    assert status["queue"] == {"length": 0, "capacity": 32, "oldest_wait_s": None}
    assert status["gate"]["source"] == "fallback"


async def test_counters_survive_a_restart_and_never_decrease(tmp_path: Path) -> None:
    config = proxy_config(tmp_path, None)
    async with running_agent(config) as (agent, client):
        await end_window(agent, client, await start_window(agent, client), output_tokens=10)
        before = await (await client.get("/api/v1/status", headers=auth(agent))).json()
    async with running_agent(config) as (agent, client):
        after = await (await client.get("/api/v1/status", headers=auth(agent))).json()
        rows = await (await client.get("/api/v1/inferences", headers=auth(agent))).json()
    assert after["inference"]["count"] == before["inference"]["count"] == 1
    assert after["inference"]["output_tokens"] >= before["inference"]["output_tokens"]
    assert after["energy"]["inference_wh"] >= before["energy"]["inference_wh"]
    assert len(rows["items"]) == 1


@pytest.mark.timeout(30)
async def test_drain_returns_when_a_row_was_committed_in_the_same_loop_turn(
    tmp_path: Path,
) -> None:
    """A window's task can be done while its bookkeeping callback still waits its turn; drain
    must yield to it instead of spinning on the event loop (a shutdown hung once this way)."""
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _):
        task = agent.inference.finish_later(agent.inference.open(), outcome="ok")
        while not task.done():  # noqa: ASYNC110 - must look on the very turn it finishes
            await asyncio.sleep(0)
        await asyncio.wait_for(agent.inference.drain(), 5)
    assert task.result().outcome == "ok"


async def test_a_cancelled_drain_leaves_the_rows_being_committed(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, _):
        task = agent.inference.finish_later(agent.inference.open(), outcome="ok")
        drain = asyncio.ensure_future(agent.inference.drain())
        await asyncio.sleep(0)
        drain.cancel()
        row = await task
    assert row.outcome == "ok"
    assert row.id is not None


# -- gate ----------------------------------------------------------------------------------------


async def test_put_gate_opens_it_for_a_lease(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None, gate_fallback_open=False)) as (
        agent,
        client,
    ):
        put = await client.put(
            "/api/v1/gate",
            json={"open": True, "lease_s": 60, "reason": "surplus 300 W"},
            headers=auth(agent),
        )
        assert put.status == 200
        gate = await (await client.get("/api/v1/gate", headers=auth(agent))).json()
    valid(gate, "Gate")
    assert (gate["open"], gate["source"], gate["reason"]) == (True, "lease", "surplus 300 W")
    assert 59 < gate["lease_remaining_s"] <= 60


async def test_a_lease_that_runs_out_closes_the_gate_and_says_why(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None, gate_fallback_open=False)) as (
        agent,
        client,
    ):
        await client.put("/api/v1/gate", json={"open": True, "lease_s": 1}, headers=auth(agent))
        await asyncio.sleep(1.1)
        gate = await (await client.get("/api/v1/gate", headers=auth(agent))).json()
    assert (gate["open"], gate["source"]) == (False, "fallback")
    assert "lease ran out" in gate["reason"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"open": "yes"},
        {"open": True, "lease_s": 0},
        {"open": True, "lease_s": 86401},
        {"open": True, "lease_s": True},
        {"open": True, "reason": "x" * 201},
        [True],
    ],
)
async def test_an_invalid_gate_body_is_400(tmp_path: Path, body: Any) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        response = await client.put("/api/v1/gate", json=body, headers=auth(agent))
        assert response.status == 400


async def test_a_restarted_agent_never_keeps_an_open_gate(tmp_path: Path) -> None:
    config = proxy_config(tmp_path, None, gate_fallback_open=False)
    async with running_agent(config) as (agent, client):
        await client.put("/api/v1/gate", json={"open": True, "lease_s": 3600}, headers=auth(agent))
    async with running_agent(config) as (agent, client):
        gate = await (await client.get("/api/v1/gate", headers=auth(agent))).json()
    assert (gate["open"], gate["source"], gate["lease_expires_at"]) == (False, "fallback", None)


# -- events --------------------------------------------------------------------------------------


async def next_event(response: aiohttp.ClientResponse) -> tuple[str, Any]:
    """The next `event:`/`data:` pair, skipping keepalive comments."""
    event, data = "", ""
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            return event, json.loads(data)


async def test_events_stream_gate_changes_and_finished_windows(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None, gate_fallback_open=False)) as (
        agent,
        client,
    ):
        stream = await client.get("/api/v1/events", headers=auth(agent))
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await next_event(stream))[0] == "gate"  # the current state first
        await client.put("/api/v1/gate", json={"open": True, "lease_s": 60}, headers=auth(agent))
        event, gate = await next_event(stream)
        assert (event, gate["open"]) == ("gate", True)
        window_id = await start_window(agent, client)
        row = await (await end_window(agent, client, window_id, output_tokens=3)).json()
        event, data = await next_event(stream)
        assert (event, data) == ("inference", row)
        stream.close()


async def test_events_send_keepalive_comments(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        agent.inference.keepalive_s = 0.05
        stream = await client.get("/api/v1/events", headers=auth(agent))
        await next_event(stream)
        lines = [await asyncio.wait_for(stream.content.readline(), 2) for _ in range(2)]
        assert b": keepalive\n" in lines
        stream.close()


async def test_event_streams_end_when_the_agent_shuts_down(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        stream = await client.get("/api/v1/events", headers=auth(agent))
        await next_event(stream)
        await wait_for(lambda: agent.inference.events.subscribers == 1)
        await client.server.runner.shutdown()  # type: ignore[union-attr]
        assert await asyncio.wait_for(stream.content.read(), 5) == b""


async def test_a_body_of_only_whitespace_is_not_json_and_opens_no_window(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        response = await client.post(
            "/api/v1/windows",
            data=b"\n",
            headers={**auth(agent), "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_json"
        assert agent.inference.explicit_open == 0
        empty = await client.post("/api/v1/windows", headers=auth(agent))
        assert empty.status == 201  # no body at all is still an empty object


JSON = {"Content-Type": "application/json"}


async def test_token_counts_beyond_an_integer_column_are_a_400(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        for body, status in [
            ({"output_tokens": 2**63}, 400),
            ({"prompt_tokens": 10**30}, 400),
            ({"output_tokens": MAX_COUNT + 1}, 400),
            ({"output_tokens": 1e30}, 400),
            ({"output_tokens": 7.0}, 200),  # an integer, in JSON Schema's sense
            ({"output_tokens": MAX_COUNT}, 200),
        ]:
            started = await client.post("/api/v1/windows", json={}, headers=auth(agent))
            window = (await started.json())["window_id"]
            ended = await client.post(
                f"/api/v1/windows/{window}/end", data=json.dumps(body), headers=auth(agent) | JSON
            )
            assert ended.status == status, body
            if status == 400:
                assert (await ended.json())["error"] == "invalid_body"


async def test_ledger_query_is_strict(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        for query in ("after=", "limit=", "afer=5", "after=1&cursor=2"):
            response = await client.get(f"/api/v1/inferences?{query}", headers=auth(agent))
            assert response.status == 400, query
            assert (await response.json())["error"] == "invalid_parameter"
        good = await client.get("/api/v1/inferences?after=0&limit=5", headers=auth(agent))
        assert good.status == 200
