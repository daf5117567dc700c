"""SIGKILL the agent again and again while it runs a batch: every custom_id ends up exactly once
across the output and error files, and the ledger holds a row for every result.

The agent (a real process, `--gate-fallback-open`, two batch requests at a time) runs a batch
of short chat requests on the simulated LLM server (another real process). At seeded random
moments it is killed with SIGKILL, its database copy is checked while it is down, and it is
started again; after the last start the batch must finish by itself. A kill between the
upstream's answer and the result's commit makes that request run again: its earlier attempt
keeps its ledger row, and still only one result line exists for it.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import openai

from tests.reliability.conftest import Processes
from tests.reliability.harness import (
    AgentProcess,
    agent_process,
    check_database_copy,
    simulator_process,
    upstream_url,
)

SEED = 15  # issue 15
KILLS = 5
REQUESTS = 60
FINISH_TIMEOUT_S = 60.0
CHAT: Literal["/v1/chat/completions"] = "/v1/chat/completions"


def client_of(agent: AgentProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{agent.url}/v1", api_key=agent.token, max_retries=0)


def get_json(agent: AgentProcess, path: str) -> Any:
    request = urllib.request.Request(agent.url + path, headers=agent.headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def batch_rows(agent: AgentProcess, batch_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = 0
    while True:
        page = get_json(agent, f"/api/v1/inferences?after={cursor}&limit=1000")
        found += [row for row in page["items"] if row["batch_id"] == batch_id]
        cursor = page["cursor"]
        if not page["has_more"]:
            return found


def input_file() -> bytes:
    lines = [
        {
            "custom_id": f"doc-{n:03d}",
            "method": "POST",
            "url": CHAT,
            "body": {
                "model": "sim",
                "messages": [{"role": "user", "content": f"Summarise document {n}"}],
                "max_tokens": 8,
            },
        }
        for n in range(REQUESTS)
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_sigkill_mid_batch_gives_every_custom_id_exactly_once(
    tmp_path: Path, processes: Processes
) -> None:
    rng = random.Random(SEED)
    llm = processes.add(simulator_process(tmp_path, tokens_per_s=60.0))
    llm.start()
    agent = processes.add(
        agent_process(
            tmp_path,
            upstream=upstream_url(llm),
            extra=("--gate-fallback-open", "--batch-concurrency", "2"),
        )
    )
    agent.start()
    started = time.monotonic()
    with client_of(agent) as client:
        uploaded = client.files.create(file=("docs.jsonl", input_file()), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
        )
    progress: list[int] = []
    for kill in range(KILLS):
        time.sleep(rng.uniform(0.4, 1.2))
        agent.kill()
        check = check_database_copy(agent.database, tmp_path / f"check-{kill}")
        assert check.integrity == "ok", check
        agent.start()
        with client_of(agent) as client:
            counts = client.batches.retrieve(batch.id).request_counts
        assert counts is not None
        progress.append(counts.completed + counts.failed)
    assert progress[-1] < REQUESTS, "the batch finished before the last kill; kill sooner"

    deadline = time.monotonic() + FINISH_TIMEOUT_S
    with client_of(agent) as client:
        while (done := client.batches.retrieve(batch.id)).status != "completed":
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
        assert done.output_file_id is not None
        output = client.files.content(done.output_file_id).content.splitlines()
        errors = (
            client.files.content(done.error_file_id).content.splitlines()
            if done.error_file_id
            else []
        )
    results = [json.loads(line) for line in output + errors]
    seen = Counter(result["custom_id"] for result in results)
    expected = {f"doc-{n:03d}" for n in range(REQUESTS)}
    assert set(seen) == expected
    assert max(seen.values()) == 1, [k for k, v in seen.items() if v > 1]
    assert errors == []

    rows = batch_rows(agent, batch.id)
    answered = {row["custom_id"] for row in rows if row["outcome"] == "ok"}
    assert expected <= answered  # every result has its ledger row
    assert agent.stop() == 0
    assert "Traceback" not in agent.log_path.read_text(errors="replace"), agent.log_tail()
    ok_rows = sum(1 for row in rows if row["outcome"] == "ok")
    print(
        f"\nbatch SIGKILL: {KILLS} kills at {progress} results, {REQUESTS} results once each "
        f"in {time.monotonic() - started:.1f} s; {len(rows)} ledger rows for the batch, "
        f"{ok_rows} answered ({ok_rows - REQUESTS} answered again after a kill)"
    )
