"""The batch API's rules: input validation as OpenAI does it, cancel, a retried create, the
deadline in metadata, the token always required, OpenAI-shaped errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openai
import pytest

from joulegate_agent.simulation.llm import SimulatedLLM
from tests.agent.batch_helpers import (
    CHAT,
    FAST,
    batch_agent,
    chat_line,
    jsonl,
    lines_of,
    submit,
    wait_for_status,
)
from tests.agent.fakes.upstream import upstream_server
from tests.agent.helpers import auth, proxy_config, running_agent


async def test_a_file_with_bad_lines_makes_a_failed_batch_naming_each_line_and_code(
    tmp_path: Path,
) -> None:
    bad = [
        chat_line("ok-1"),
        b"{not json",
        {**chat_line("wrong-url"), "url": "/v1/embeddings"},
        chat_line("ok-1"),
        {"custom_id": "no-body", "method": "POST", "url": CHAT},
        {**chat_line("other-model"), "body": {"model": "qwen", "messages": []}},
        [1, 2],
    ]
    async with batch_agent(tmp_path) as (_agent, _http, client):
        batch = await submit(client, jsonl(bad), "bad.jsonl")
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.errors is not None
    assert batch.errors.data is not None
    found = [(e.line, e.code) for e in batch.errors.data]
    assert found == [
        (2, "invalid_json_line"),
        (3, "url_mismatch"),
        (4, "duplicate_custom_id"),
        (5, "missing_required_parameter"),
        (6, "model_mismatch"),
        (7, "invalid_json_line"),
    ]
    assert all(e.message for e in batch.errors.data)
    assert batch.request_counts is not None
    assert batch.request_counts.total == 0


async def test_an_empty_file_makes_a_failed_batch(tmp_path: Path) -> None:
    async with batch_agent(tmp_path) as (_agent, _http, client):
        batch = await submit(client, b"\n\n", "e.jsonl")
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [e.code for e in batch.errors.data] == ["empty_file"]


async def test_creating_a_batch_again_for_the_same_file_returns_the_active_batch(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path, gate_fallback_open=False) as (_agent, _http, client):
        uploaded = await client.files.create(
            file=("a.jsonl", jsonl([chat_line("a"), chat_line("b")])), purpose="batch"
        )
        first = await client.batches.create(
            input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
        )
        retry = await client.batches.create(
            input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
        )
        listed = await client.batches.list()
    assert retry.id == first.id
    assert [b.id for b in listed.data] == [first.id]


async def test_cancel_goes_through_cancelling_to_cancelled_and_reports_what_did_not_run(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path, gate_fallback_open=False) as (_agent, _http, client):
        batch = await submit(client, jsonl([chat_line("a"), chat_line("b")]))
        cancelling = await client.batches.cancel(batch.id)
        cancelled = await wait_for_status(client, batch.id, ("cancelled",))
        assert cancelled.error_file_id is not None
        errors = lines_of((await client.files.content(cancelled.error_file_id)).content)
        with pytest.raises(openai.ConflictError):
            await client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert cancelled.cancelled_at is not None
    assert cancelled.output_file_id is None
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        ("a", "batch_cancelled"),
        ("b", "batch_cancelled"),
    ]
    assert all(e["response"] is None for e in errors)


async def test_an_upstream_error_answer_goes_to_the_error_file_with_its_status(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path) as (_agent, _http, client):
        lines = [chat_line("good"), chat_line("bad", simulate_tokens_per_s=-1)]
        batch = await submit(client, jsonl(lines))
        done = await wait_for_status(client, batch.id, ("completed",))
        assert done.output_file_id is not None
        assert done.error_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
        errors = lines_of((await client.files.content(done.error_file_id)).content)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
    assert [line["custom_id"] for line in output] == ["good"]
    [error] = errors
    assert error["custom_id"] == "bad"
    assert error["error"] is None
    assert error["response"]["status_code"] == 400


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"joulegate_window": "soon"}, "duration"),
        ({"joulegate_deadline": "2001-01-01T00:00:00Z"}, "already passed"),
        ({"joulegate_window": "60d"}, "at most 30 days"),
        ({"joulegate_window": "1d", "joulegate_deadline": "2100-01-01"}, "not both"),
    ],
)
async def test_a_deadline_in_metadata_that_cannot_be_used_is_refused(
    tmp_path: Path, metadata: dict[str, str], message: str
) -> None:
    async with batch_agent(tmp_path) as (_agent, _http, client):
        uploaded = await client.files.create(
            file=("a.jsonl", jsonl([chat_line("a")])), purpose="batch"
        )
        with pytest.raises(openai.BadRequestError) as raised:
            await client.batches.create(
                input_file_id=uploaded.id,
                endpoint=CHAT,
                completion_window="24h",
                metadata=metadata,
            )
    assert message in str(raised.value)


async def test_an_absolute_deadline_in_metadata_wins_over_the_completion_window(
    tmp_path: Path,
) -> None:
    deadline = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3, hours=2)
    async with batch_agent(tmp_path, gate_fallback_open=False) as (_agent, _http, client):
        batch = await submit(
            client, jsonl([chat_line("a")]), metadata={"joulegate_deadline": deadline.isoformat()}
        )
    assert batch.expires_at == int(deadline.timestamp())
    assert batch.metadata == {"joulegate_deadline": deadline.isoformat()}


async def test_no_proxy_auth_never_opens_the_batch_api(tmp_path: Path) -> None:
    async with (
        upstream_server(SimulatedLLM(FAST).app()) as url,
        running_agent(proxy_config(tmp_path, url, proxy_auth=False)) as (_agent, http),
    ):
        files = await http.get("/v1/files")
        batches = await http.post("/v1/batches", json={})
        proxied = await http.get("/v1/models")
    assert files.status == 401
    assert batches.status == 401
    assert proxied.status == 200


async def test_an_upload_with_another_purpose_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    async with batch_agent(tmp_path) as (agent, _http, client):
        with pytest.raises(openai.BadRequestError) as raised:
            await client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
        listed = await client.files.list()
    assert "purpose" in str(raised.value)
    assert listed.data == []
    assert list((agent.config.data_dir / "batch-files").iterdir()) == []


async def test_unknown_ids_are_404_in_openai_shape(tmp_path: Path) -> None:
    async with (
        upstream_server(SimulatedLLM(FAST).app()) as url,
        running_agent(proxy_config(tmp_path, url)) as (agent, http),
    ):
        response = await http.get("/v1/batches/batch_nope", headers=auth(agent))
        body = await response.json()
        put = await http.put("/v1/files", headers=auth(agent))
    assert response.status == 404
    assert body["error"]["code"] == "batch_not_found"
    assert body["error"]["type"] == "invalid_request_error"
    assert put.status == 405


async def test_a_batch_needs_an_upstream(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, http):
        response = await http.post(
            "/v1/batches",
            data=json.dumps(
                {"input_file_id": "file-x", "endpoint": CHAT, "completion_window": "24h"}
            ),
            headers=auth(agent),
        )
        body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "upstream_not_configured"


async def test_a_file_of_more_than_50000_requests_makes_a_failed_batch(tmp_path: Path) -> None:
    line = '{"custom_id": "r%d", "method": "POST", "url": "%s", "body": {}}\n'
    content = "".join(line % (n, CHAT) for n in range(50_001)).encode()
    async with batch_agent(tmp_path) as (_agent, _http, client):
        batch = await submit(client, content, "many.jsonl")
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.line, e.code) for e in batch.errors.data] == [(50_001, "too_many_tasks")]


@pytest.mark.parametrize(
    "body",
    [
        b"--b\r\n@\xfd\xf1\xa7\x86--b--\r\n",
        b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nno closing boundary",
        b"not multipart at all",
    ],
)
async def test_a_malformed_multipart_upload_is_a_400_and_leaves_nothing(
    tmp_path: Path, body: bytes
) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, http):
        response = await http.post(
            "/v1/files",
            data=body,
            headers={**auth(agent), "Content-Type": "multipart/form-data; boundary=b"},
        )
        payload = await response.json()
        left = list((agent.config.data_dir / "batch-files").iterdir())
    assert response.status == 400
    assert payload["error"]["code"] == "invalid_multipart"
    assert left == []
