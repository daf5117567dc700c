"""The standard-library meter client, against a real agent on a loopback port.

The client is synchronous (urllib), so each test drives it from a worker thread while the agent
runs on the event loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.meter_client import MeterClient, MeterClientError
from tests.agent.helpers import proxy_config, running_agent


def base(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_the_context_manager_records_one_window_with_its_tokens(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        meter = MeterClient(base(client), agent.token)

        def infer() -> Any:
            with meter.window(model="tensorrt-llm/llama3", label="nightly") as window:
                time.sleep(0.2)
                window.output_tokens = 64
                window.prompt_tokens = 12
            return window

        window = await asyncio.to_thread(infer)
        rows = [row.to_json() for row in agent.inference.ledger.rows()]
    assert window.result == rows[0]
    assert len(rows) == 1
    assert (rows[0]["model"], rows[0]["label"], rows[0]["outcome"]) == (
        "tensorrt-llm/llama3",
        "nightly",
        "ok",
    )
    assert (rows[0]["output_tokens"], rows[0]["prompt_tokens"]) == (64, 12)
    assert rows[0]["energy_j"] > 0


async def test_an_exception_in_the_block_ends_the_window_as_error_and_propagates(
    tmp_path: Path,
) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        meter = MeterClient(f"{base(client)}/api/v1/", agent.token)

        def infer() -> None:
            with meter.window(model="m"):
                raise RuntimeError("out of memory")

        with pytest.raises(RuntimeError, match="out of memory"):
            await asyncio.to_thread(infer)
        [row] = list(agent.inference.ledger.rows())
    assert row.outcome == "error"


async def test_start_and_end_can_be_called_separately(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, client):
        meter = MeterClient(base(client), agent.token)
        window = await asyncio.to_thread(meter.start, model="m")
        assert agent.meter.in_flight == 1
        row = await asyncio.to_thread(meter.end, window, outcome="cancelled", output_tokens=5)
    assert (row["outcome"], row["output_tokens"]) == ("cancelled", 5)


async def test_a_wrong_token_raises_with_the_agents_error_code(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (_agent, client):
        meter = MeterClient(base(client), "wrong")
        with pytest.raises(MeterClientError) as caught:
            await asyncio.to_thread(meter.start)
    assert (caught.value.status, caught.value.code) == (401, "invalid_token")


def test_an_unreachable_agent_raises_a_clear_error() -> None:
    meter = MeterClient("http://127.0.0.1:9", "token", timeout=2)
    with pytest.raises(MeterClientError, match="cannot reach the agent"):
        meter.start()


def test_the_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        MeterClient("orin.local:8787", "token")


async def test_the_client_reads_the_gate(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None, gate_fallback_open=False)) as (
        agent,
        client,
    ):
        gate = await asyncio.to_thread(MeterClient(base(client), agent.token).gate)
    assert gate["open"] is False


def test_the_client_module_uses_only_the_standard_library() -> None:
    import ast
    import sys

    import joulegate_agent.meter_client as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
