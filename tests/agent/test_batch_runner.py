"""How batch requests run: only while the gate admits batch work, after interactive requests,
until the deadline, across a restart; and what the agent says about a batch that runs late."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.simulation.llm import SimulatedLLM, SimulatorSettings
from tests.agent.batch_helpers import (
    CHAT,
    FAST,
    MODEL,
    batch_agent,
    chat_line,
    jsonl,
    lines_of,
    openai_client,
    submit,
    wait_for_status,
)
from tests.agent.fakes.upstream import FakeUpstream, upstream_server
from tests.agent.helpers import auth, proxy_config, rows, running_agent, wait_for

SLOW = SimulatorSettings(model=MODEL, tokens_per_s=40.0, prefill_tokens_per_s=0.0)


async def lease(agent: Agent, http: TestClient[Any, Any], open_: bool, lease_s: float) -> None:
    response = await http.put(
        "/api/v1/gate",
        json={"open": open_, "lease_s": lease_s, "reason": "test"},
        headers=auth(agent),
    )
    assert response.status == 200, await response.text()


async def submit_lines(
    agent: Agent, http: TestClient[Any, Any], lines: list[Any], **extra: Any
) -> str:
    async with openai_client(agent, http) as client:
        batch = await submit(client, jsonl(lines), "in.jsonl", **extra)
    return batch.id


def completed(agent: Agent, batch_id: str) -> int:
    batch = agent.batches.batches.get(batch_id)
    assert batch is not None
    return batch.counts.done


async def test_a_batch_pauses_when_the_gate_closes_and_resumes_when_it_opens(
    tmp_path: Path,
) -> None:
    lines = [chat_line(f"r{n}", max_tokens=4) for n in range(30)]  # 0.1 s each
    async with (
        upstream_server(SimulatedLLM(SLOW).app()) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, http),
    ):
        batch_id = await submit_lines(agent, http, lines)
        await lease(agent, http, True, 1.0)
        await asyncio.sleep(1.4)  # the lease ran out; the request in flight then finished
        paused_at = completed(agent, batch_id)
        await asyncio.sleep(1.0)
        still = completed(agent, batch_id)
        await lease(agent, http, True, 60)
        await wait_for(lambda: completed(agent, batch_id) == len(lines), timeout=15)
    assert 0 < paused_at < len(lines)
    assert still == paused_at


async def test_an_interactive_request_waiting_for_a_slot_goes_before_the_next_batch_request(
    tmp_path: Path,
) -> None:
    lines = [chat_line(f"r{n}", max_tokens=12) for n in range(4)]  # 0.3 s each
    config = proxy_config(tmp_path, None, max_concurrent_inferences=1)
    async with upstream_server(SimulatedLLM(SLOW).app()) as url:
        config = config.with_overrides(upstream=url)
        async with running_agent(config) as (agent, http):
            batch_id = await submit_lines(agent, http, lines)
            await wait_for(lambda: agent.batches.runner.in_flight == 1)
            response = await http.post(
                CHAT,
                json=chat_line("interactive", max_tokens=2)["body"],
                headers={**auth(agent), "X-Joulegate-Defer-Until": "30"},
            )
            assert response.status == 200
            await wait_for(lambda: completed(agent, batch_id) == len(lines), timeout=15)
            ledger = await rows(agent)
    starts = [(row["started_at"], row["custom_id"]) for row in ledger]
    order = [custom_id for _, custom_id in sorted(starts)]
    assert order == ["r0", None, "r1", "r2", "r3"]


async def test_a_batch_past_its_deadline_expires_and_its_requests_go_to_the_error_file(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path, gate_fallback_open=False) as (agent, http, client):
        batch_id = await submit_lines(
            agent, http, [chat_line("a"), chat_line("b")], metadata={"joulegate_window": "1s"}
        )
        expired = await wait_for_status(client, batch_id, ("expired",), timeout=10)
        assert expired.error_file_id is not None
        errors = lines_of((await client.files.content(expired.error_file_id)).content)
    assert expired.expired_at is not None
    assert expired.request_counts is not None
    assert expired.request_counts.failed == 2
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        ("a", "batch_expired"),
        ("b", "batch_expired"),
    ]


async def test_a_restarted_agent_resumes_the_batch_where_it_stopped(tmp_path: Path) -> None:
    lines = [chat_line(f"r{n}") for n in range(5)]
    async with upstream_server(SimulatedLLM(FAST).app()) as url:
        closed = proxy_config(tmp_path, url, gate_fallback_open=False)
        async with running_agent(closed) as (agent, http):
            batch_id = await submit_lines(agent, http, lines)
        async with (
            running_agent(closed.with_overrides(gate_fallback_open=True)) as (agent, http),
            openai_client(agent, http) as client,
        ):
            done = await wait_for_status(client, batch_id, ("completed",))
            assert done.output_file_id is not None
            output = lines_of((await client.files.content(done.output_file_id)).content)
    assert [line["custom_id"] for line in output] == [f"r{n}" for n in range(5)]


async def test_a_request_the_upstream_never_answers_is_tried_three_times_then_fails(
    tmp_path: Path,
) -> None:
    async with upstream_server(SimulatedLLM(FAST).app()) as url:
        gone = url  # the server closes when this block ends
    async with (
        running_agent(proxy_config(tmp_path, gone)) as (agent, http),
        openai_client(agent, http) as client,
    ):
        batch_id = await submit_lines(agent, http, [chat_line("a")])
        done = await wait_for_status(client, batch_id, ("completed",), timeout=15)
        assert done.error_file_id is not None
        [error] = lines_of((await client.files.content(done.error_file_id)).content)
        ledger = await rows(agent)
    assert error["error"]["code"] == "upstream_unavailable"
    assert error["response"] is None
    assert [(row["custom_id"], row["http_status"]) for row in ledger] == [("a", 502)] * 3


async def test_a_batch_that_cannot_finish_in_time_says_so_in_the_batch_the_status_and_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        upstream_server(SimulatedLLM(SLOW).app()) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, http),
    ):
        await lease(agent, http, True, 60)
        answer = await http.post(
            CHAT, json=chat_line("x", max_tokens=20)["body"], headers=auth(agent)
        )
        assert answer.status == 200  # the model's rows: 0.5 s a request
        await rows(agent)
        await lease(agent, http, False, 60)
        caplog.set_level(logging.WARNING, logger="joulegate_agent.batch.service")
        lines = [chat_line(f"r{n}") for n in range(20)]
        batch_id = await submit_lines(agent, http, lines, metadata={"joulegate_window": "5s"})
        response = await http.get(f"/v1/batches/{batch_id}", headers=auth(agent))
        block = (await response.json())["joulegate"]
        status = await (await http.get("/api/v1/status", headers=auth(agent))).json()
        await wait_for(lambda: any(batch_id in r.message for r in caplog.records), timeout=5)
    assert block["estimate_basis"] == "model"
    assert block["on_time"] is False
    assert block["warning"]
    assert block["run_time_needed_s"] >= 20 * 0.5 * 0.9  # 20 requests like the model's 0.5-s one
    assert time.time() > _ts(block["latest_start"])
    queue = status["batches"]
    assert queue["requests_waiting"] == 20
    assert queue["batches_in_progress"] == 1
    assert queue["late"] == 1
    assert queue["latest_start"] == block["latest_start"]
    assert queue["next_deadline"] == block["deadline"]
    assert queue["longest_request_s"] == block["longest_request_s"]
    assert queue["longest_request_s"] >= 0.45
    assert queue["energy_needed_wh"] > 0
    assert queue["admitted"] is False


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


async def test_a_finished_batch_is_published_as_a_batch_event(tmp_path: Path) -> None:
    async with (
        upstream_server(SimulatedLLM(FAST).app()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, http),
    ):
        subscription = agent.inference.events.subscribe()
        batch_id = await submit_lines(agent, http, [chat_line("a")])
        while True:
            item = await subscription.get(timeout=10)
            assert item is not None
            if item[0] == "batch":
                break
    data = item[1]
    assert data["id"] == batch_id
    assert data["status"] == "completed"
    assert data["joulegate"]["energy_j"] > 0


async def test_a_request_whose_result_could_not_be_written_runs_again_and_keeps_both_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="joulegate_agent.batch.runner")
    async with batch_agent(tmp_path, gate_fallback_open=False) as (agent, http, client):
        batch_id = await submit_lines(agent, http, [chat_line("a")])
        disk = sqlite3.connect(agent.store.path)  # the disk refuses the result, not the row
        disk.execute(
            "CREATE TRIGGER refuse_results BEFORE UPDATE ON batch_requests"
            " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
        disk.commit()
        await lease(agent, http, True, 60)
        await wait_for(lambda: "Could not record batch request a" in caplog.text, timeout=10)
        disk.execute("DROP TRIGGER refuse_results")
        disk.commit()
        disk.close()
        done = await wait_for_status(client, batch_id, ("completed",))
        assert done.output_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
        ledger = await rows(agent)
    assert [line["custom_id"] for line in output] == ["a"]
    assert [(row["custom_id"], row["outcome"]) for row in ledger] == [("a", "ok"), ("a", "ok")]


def query_only(agent: Agent, on: bool) -> None:
    """SQLite's own read-only mode: the disk refusing writes, at the SQLite edge."""
    with agent.store.lock:
        agent.store.connection.execute(f"PRAGMA query_only={'ON' if on else 'OFF'}")


async def test_batch_requests_wait_while_the_ledger_cannot_be_written(tmp_path: Path) -> None:
    fake = FakeUpstream()

    def batch_calls() -> int:
        return sum(1 for seen in fake.seen if b"Say something about" in seen.body)

    async with (
        upstream_server(fake) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, http),
        openai_client(agent, http) as client,
    ):
        batch_id = await submit_lines(agent, http, [chat_line("a"), chat_line("b")])
        query_only(agent, True)
        await lease(agent, http, True, 60)
        interactive = await http.post(CHAT, json={"messages": []}, headers=auth(agent))
        assert interactive.status == 200  # its row waits in the spool
        await wait_for(lambda: not agent.inference.writer.health().healthy)
        await asyncio.sleep(0.2)
        before = batch_calls()
        await asyncio.sleep(2.5)
        during = batch_calls() - before
        held = completed(agent, batch_id)
        query_only(agent, False)
        done = await wait_for_status(client, batch_id, ("completed",), timeout=40)
        ledger = await rows(agent)
    assert (during, held) == (0, 0)
    assert done.request_counts is not None
    assert done.request_counts.completed == 2
    # "a" may have started before the disk's first refusal showed: that attempt's row was held
    # in memory and written later, and "a" ran again; each result has its row on disk.
    assert {row["custom_id"] for row in ledger if row["outcome"] == "ok"} == {None, "a", "b"}


async def test_the_status_leaves_the_energy_needed_unknown_while_a_batch_has_nothing_to_go_by(
    tmp_path: Path,
) -> None:
    """A batch of a model that has not run yet has no estimate: the queue's energy still needed
    is unknown, not 0 Wh beside the requests waiting."""
    async with (
        upstream_server(SimulatedLLM(SLOW).app()) as url,
        running_agent(proxy_config(tmp_path, url, gate_fallback_open=False)) as (agent, http),
    ):
        batch_id = await submit_lines(agent, http, [chat_line(f"r{n}") for n in range(3)])
        response = await http.get(f"/v1/batches/{batch_id}", headers=auth(agent))
        block = (await response.json())["joulegate"]
        status = await (await http.get("/api/v1/status", headers=auth(agent))).json()
    assert block["estimate_basis"] is None
    assert status["batches"]["requests_waiting"] == 3
    assert status["batches"]["energy_needed_wh"] is None
