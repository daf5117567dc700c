"""The official `openai` client submits a batch to the agent and collects its results: the
requests run on the upstream while the gate admits batch work, each metered as a ledger row."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.agent.batch_helpers import (
    CHAT,
    MODEL,
    batch_agent,
    chat_line,
    jsonl,
    lines_of,
    submit,
    wait_for_status,
)
from tests.agent.helpers import auth, rows

IDS = [f"photo-{n}" for n in range(6)]


async def test_a_batch_from_the_openai_client_runs_and_its_output_has_one_line_per_custom_id(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path) as (agent, _http, client):
        uploaded = await client.files.create(
            file=("photos.jsonl", jsonl([chat_line(i) for i in IDS])), purpose="batch"
        )
        created = await client.batches.create(
            input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
        )
        done = await wait_for_status(client, created.id, ("completed",))
        assert done.output_file_id is not None
        content = await client.files.content(done.output_file_id)
        output = lines_of(content.content)
        output_file = await client.files.retrieve(done.output_file_id)
        ledger = await rows(agent)
    assert uploaded.purpose == "batch"
    assert uploaded.bytes > 0
    assert created.status == "in_progress"
    assert created.request_counts is not None
    assert created.request_counts.total == len(IDS)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (len(IDS), 0)
    assert done.error_file_id is None
    assert done.completed_at is not None
    assert done.finalizing_at is not None
    assert output_file.purpose == "batch_output"
    assert [line["custom_id"] for line in output] == IDS
    for line in output:
        assert line["error"] is None
        assert line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["choices"][0]["message"]["content"]
        assert line["response"]["body"]["usage"]["completion_tokens"] == 5
    batch_rows = [row for row in ledger if row["batch_id"] == created.id]
    assert sorted(row["custom_id"] for row in batch_rows) == sorted(IDS)
    assert all(row["outcome"] == "ok" and row["output_tokens"] == 5 for row in batch_rows)
    assert all(row["route"] == CHAT and row["model"] == MODEL for row in batch_rows)


async def test_a_batch_waits_while_the_gate_is_closed_and_runs_under_a_batch_only_lease(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path, gate_fallback_open=False) as (agent, http, client):
        created = await submit(client, jsonl([chat_line(i) for i in IDS]))
        await asyncio.sleep(1.5)
        waiting = await client.batches.retrieve(created.id)
        lease = await http.put(
            "/api/v1/gate",
            json={"open": True, "lease_s": 60, "reason": "deadline", "scope": "batch"},
            headers=auth(agent),
        )
        gate = await lease.json()
        interactive = await http.post(CHAT, json=chat_line("x")["body"], headers=auth(agent))
        done = await wait_for_status(client, created.id, ("completed",))
    assert waiting.status == "in_progress"
    assert waiting.request_counts is not None
    assert waiting.request_counts.completed == 0
    assert (gate["open"], gate["batch_open"], gate["scope"]) == (False, True, "batch")
    assert interactive.status == 503  # interactive traffic still waits for the sun
    assert done.request_counts is not None
    assert done.request_counts.completed == len(IDS)


async def test_the_batch_object_carries_its_energy_and_what_it_still_needs(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path) as (agent, http, client):
        created = await submit(
            client, jsonl([chat_line(i) for i in IDS]), metadata={"joulegate_window": "7d"}
        )
        await wait_for_status(client, created.id, ("completed",))
        raw = await http.get(f"/v1/batches/{created.id}", headers=auth(agent))
        block = (await raw.json())["joulegate"]
        ledger = await rows(agent)
    energy_j = sum(row["energy_j"] for row in ledger if row["batch_id"] == created.id)
    assert created.expires_at == created.created_at + 7 * 86400
    assert block["requests_done"] == len(IDS)
    assert block["requests_left"] == 0
    assert block["energy_j"] == pytest.approx(energy_j, abs=0.01)  # rows are rounded to mJ
    assert block["energy_j"] > 0
    assert block["avg_wh_per_request"] == pytest.approx(energy_j / 3600 / len(IDS), abs=1e-6)
    assert block["energy_needed_wh"] == 0
    assert block["estimate_basis"] == "batch"
    longest = max(row["duration_s"] for row in ledger if row["batch_id"] == created.id)
    assert block["longest_request_s"] == pytest.approx(longest, abs=0.002)


async def test_list_and_delete_files_and_list_batches_with_the_openai_client(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path, gate_fallback_open=False) as (_agent, _http, client):
        first = await client.files.create(
            file=("1.jsonl", jsonl([chat_line("a")])), purpose="batch"
        )
        second = await client.files.create(
            file=("2.jsonl", jsonl([chat_line("b")])), purpose="batch"
        )
        listed = [f.id async for f in client.files.list()]
        batches = []
        for file_id in (first.id, second.id):
            batch = await client.batches.create(
                input_file_id=file_id, endpoint=CHAT, completion_window="24h"
            )
            batches.append(batch.id)
        page = await client.batches.list(limit=1)
        every = [b.id async for b in client.batches.list(limit=1)]
        deleted = await client.files.delete(first.id)
        after = [f.id async for f in client.files.list()]
    assert listed == [second.id, first.id]  # newest first, as OpenAI lists them
    assert page.has_more is True
    assert [b.id for b in page.data] == [batches[1]]
    assert every == batches[::-1]
    assert deleted.deleted is True
    assert after == [second.id]
