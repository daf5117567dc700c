"""Batch files on disk: streamed under their own size limit (not the proxy's body limit), within
a quota, in a private folder, and gone after their retention period."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import openai
import pytest

from joulegate_agent.simulation.llm import SimulatedLLM
from tests.agent.batch_helpers import (
    CHAT,
    FAST,
    chat_line,
    jsonl,
    openai_client,
    wait_for_status,
)
from tests.agent.fakes.upstream import upstream_server
from tests.agent.helpers import proxy_config, running_agent

DAY = 86400


async def test_an_upload_far_over_the_proxy_body_limit_is_streamed_to_disk(
    tmp_path: Path,
) -> None:
    content = jsonl([chat_line(f"r{n}") for n in range(400)])
    config = proxy_config(tmp_path, None, max_body_bytes=1024)
    async with running_agent(config) as (agent, http), openai_client(agent, http) as client:
        uploaded = await client.files.create(file=("big.jsonl", content), purpose="batch")
        back = await client.files.content(uploaded.id)
        folder = agent.config.data_dir / "batch-files"
    assert len(content) > 50 * 1024
    assert uploaded.bytes == len(content)
    assert back.content == content
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


async def test_an_upload_over_the_file_limit_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    config = proxy_config(tmp_path, None, batch_max_file_bytes=1000)
    async with running_agent(config) as (agent, http), openai_client(agent, http) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.files.create(file=("big.jsonl", b"x" * 1001), purpose="batch")
        small = await client.files.create(file=("ok.jsonl", b"x" * 1000), purpose="batch")
        on_disk = sorted(p.name for p in (agent.config.data_dir / "batch-files").iterdir())
    assert raised.value.status_code == 413
    assert "1000 bytes" in str(raised.value)
    assert on_disk == [small.id]


async def test_uploads_stop_at_the_quota_until_files_are_deleted(tmp_path: Path) -> None:
    config = proxy_config(tmp_path, None, batch_quota_bytes=1500)
    async with running_agent(config) as (agent, http), openai_client(agent, http) as client:
        first = await client.files.create(file=("1.jsonl", b"x" * 1000), purpose="batch")
        with pytest.raises(openai.APIStatusError) as raised:
            await client.files.create(file=("2.jsonl", b"y" * 1000), purpose="batch")
        await client.files.delete(first.id)
        second = await client.files.create(file=("2.jsonl", b"y" * 1000), purpose="batch")
    assert raised.value.status_code == 413
    assert "quota" in str(raised.value)
    assert second.bytes == 1000


async def test_files_and_finished_batches_go_after_the_retention_period(tmp_path: Path) -> None:
    config = proxy_config(tmp_path, None, batch_retention_days=7)
    async with upstream_server(SimulatedLLM(FAST).app()) as url:
        config = config.with_overrides(upstream=url)
        async with running_agent(config) as (agent, http), openai_client(agent, http) as client:
            uploaded = await client.files.create(
                file=("a.jsonl", jsonl([chat_line("a")])), purpose="batch"
            )
            batch = await client.batches.create(
                input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
            )
            done = await wait_for_status(client, batch.id, ("completed",))
            service = agent.batches
            kept = service.files.prune(now=time.time() + 6 * DAY)
            pruned = service.files.prune(now=time.time() + 7 * DAY + 60)
            forgotten = service.batches.prune(before=time.time() + 1)
            left = await client.files.list()
            with pytest.raises(openai.NotFoundError):
                await client.batches.retrieve(batch.id)
            on_disk = list((agent.config.data_dir / "batch-files").iterdir())
    assert uploaded.expires_at == uploaded.created_at + 7 * DAY
    assert done.output_file_id is not None
    assert (kept, pruned, forgotten) == (0, 2, 1)
    assert left.data == []
    assert on_disk == []
