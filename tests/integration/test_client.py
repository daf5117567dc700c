"""Tests of the agent client (client.py, models.py, exceptions.py) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from custom_components.joulegate.client import JoulegateClient
from custom_components.joulegate.exceptions import (
    JoulegateAuthenticationError,
    JoulegateConnectionError,
    JoulegateError,
    JoulegateNotAgentError,
    JoulegateResponseError,
)
from custom_components.joulegate.models import Batch, Gate, Inference, JoulegateEvent, Status
from demo.procs import free_port

from .fakes.agent import TOKEN, FakeAgent, load_json

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _drain(client: JoulegateClient) -> None:
    async for _ in client.events():
        pass


@pytest.fixture
async def client(hass: HomeAssistant, mock_agent: FakeAgent) -> JoulegateClient:
    """A client for the test agent, on Home Assistant's shared session."""
    return JoulegateClient(mock_agent.host, mock_agent.port, TOKEN, async_get_clientsession(hass))


@pytest.fixture
async def serve(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncGenerator[Callable[[str, Handler], Awaitable[JoulegateClient]]]:
    """Serve one hand-written route on 127.0.0.1 and return a client for it."""
    servers: list[TestServer] = []

    async def start(path: str, handler: Handler) -> JoulegateClient:
        app = web.Application()
        app.router.add_route("*", path, handler)
        server = TestServer(app, host="127.0.0.1", shutdown_timeout=0.5)
        await server.start_server()
        servers.append(server)
        assert server.port is not None
        return JoulegateClient(
            "127.0.0.1", server.port, TOKEN, async_get_clientsession(hass), request_timeout=0.5
        )

    yield start
    for server in servers:
        await server.close()


async def test_reads_every_document(client: JoulegateClient, mock_agent: FakeAgent) -> None:
    """Health, info, status, ledger pages and the gate parse into typed models."""
    health = await client.health()
    assert health.device_id == "3f2a9c0d1e7b4a51"
    assert health.api_version == 1

    info = await client.info()
    assert info.board.model == "NVIDIA Jetson Orin Nano"
    assert info.sources[0].rails[0].whole_board is True
    assert info.sample_rate_hz == 10.0

    status = await client.status()
    assert isinstance(status, Status)
    assert status.power.board_w == 4.52
    assert status.power.rail("VDD_SOC") is not None
    assert status.power.rail("nope") is None
    assert status.energy.board_wh == 123.456
    assert status.thermal.zones == {"cpu-thermal": 45.2, "gpu-thermal": 44.0}
    assert status.power_mode is not None
    assert status.power_mode.name == "MAXN_SUPER"
    assert status.inference.last is not None
    assert status.inference.last.id == 17
    assert status.inference.last.ended_at == datetime(2026, 11, 26, 13, 40, 3, 200000, tzinfo=UTC)
    assert status.gate.open is False
    assert status.queue.capacity == 32

    page = await client.inferences(after=15, limit=1)
    assert [row.id for row in page.items] == [16]
    assert page.has_more is True
    assert page.cursor == 16
    assert mock_agent.inference_queries == [(15, 1)]

    gate = await client.get_gate()
    assert gate.reason == "no surplus"


async def test_set_gate(client: JoulegateClient, mock_agent: FakeAgent) -> None:
    """PUT /gate sends open, lease and reason, and returns the new gate."""
    gate = await client.set_gate(open=True, lease_s=60, reason="surplus")
    assert mock_agent.gate_puts == [{"open": True, "lease_s": 60, "reason": "surplus"}]
    assert gate.open is True
    assert gate.source == "lease"
    assert gate.lease_remaining_s == 60.0
    assert gate.lease_expires_at == datetime(2026, 11, 26, 13, 46, tzinfo=UTC)


async def test_a_batch_only_lease_says_its_scope(
    client: JoulegateClient, mock_agent: FakeAgent
) -> None:
    """A deadline run leases the gate for batch work only; interactive traffic stays out."""
    gate = await client.set_gate(open=True, lease_s=60, reason="deadline", batch_only=True)
    assert mock_agent.gate_puts == [
        {"open": True, "lease_s": 60, "reason": "deadline", "scope": "batch"}
    ]
    assert gate.open is False


async def test_active_batches_are_read_until_all_are_found(
    client: JoulegateClient, mock_agent: FakeAgent
) -> None:
    """The list is newest first and keeps finished batches for days: paging stops as soon as
    the batches /status counts are found."""
    deadline = datetime(2026, 12, 6, 18, tzinfo=UTC)
    for n in range(150):
        mock_agent.add_batch(f"batch_{n}", deadline=deadline)
        mock_agent.batches[0]["status"] = "completed"
    mock_agent.add_batch("batch_old", deadline=deadline)
    mock_agent.batches.append(mock_agent.batches.pop(0))  # older than every finished one
    mock_agent.add_batch(
        "batch_new", deadline=deadline, metadata={"joulegate_when_sun_fails": "grid"}
    )
    found = await client.active_batches(expected=2)
    assert [b.id for b in found] == ["batch_new", "batch_old"]
    assert found[0].metadata == {"joulegate_when_sun_fails": "grid"}
    assert found[0].joulegate is not None
    assert found[0].joulegate.deadline == deadline
    assert [q.get("after") for q in mock_agent.batch_queries] == [None, "batch_51"]
    mock_agent.batch_queries.clear()
    assert await client.active_batches(expected=0) == []
    assert mock_agent.batch_queries == []


async def test_events(client: JoulegateClient, mock_agent: FakeAgent) -> None:
    """The event stream yields inference and gate events as models."""
    received: list[Inference | Gate] = []

    async def follow() -> None:
        async for event in client.events():
            received.append(event)

    task = asyncio.create_task(follow())
    await mock_agent.stream_connected.wait()
    mock_agent.finish_inference(output_tokens=10, energy_j=3.6)
    await client.set_gate(open=True, lease_s=30, reason="surplus")
    mock_agent.close_streams()
    await asyncio.wait_for(task, 5)
    assert isinstance(received[0], Inference)
    assert received[0].id == 18
    assert received[0].wh == pytest.approx(0.001)
    assert isinstance(received[1], Gate)
    assert received[1].open is True


async def test_a_finished_batch_arrives_as_a_batch_event(
    client: JoulegateClient, mock_agent: FakeAgent
) -> None:
    received: list[JoulegateEvent] = []

    async def follow() -> None:
        async for event in client.events():
            received.append(event)

    mock_agent.add_batch("batch_17", deadline=datetime(2026, 12, 6, 18, tzinfo=UTC))
    task = asyncio.create_task(follow())
    await mock_agent.stream_connected.wait()
    mock_agent.finish_batch("batch_17")
    mock_agent.close_streams()
    await asyncio.wait_for(task, 5)
    (event,) = received
    assert isinstance(event, Batch)
    assert (event.id, event.status) == ("batch_17", "completed")


async def test_event_stream_format(serve: Callable[..., Awaitable[JoulegateClient]]) -> None:
    """Comments, unknown events, CRLF line ends and multi-line data are handled."""
    row = load_json("inferences.json")["items"][0]

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": hello\r\n\r\n")
        await response.write(b"event: heartbeat\ndata: {}\n\n")
        await response.write(b"data: no event name\n\n")
        text = json.dumps(row, indent=1).replace("\n", "\ndata: ")
        await response.write(f"event: inference\r\ndata: {text}\r\n\r\n".encode())
        await response.write(b"retry: 1000\n\n")
        return response

    client = await serve("/api/v1/events", handler)
    events = [event async for event in client.events()]
    assert len(events) == 1
    assert isinstance(events[0], Inference)
    assert events[0].id == 15


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"event: inference\ndata: {not json\n\n", JoulegateResponseError),
        (b'event: gate\ndata: {"open": "yes"}\n\n', JoulegateResponseError),
    ],
)
async def test_event_stream_bad_event(
    serve: Callable[..., Awaitable[JoulegateClient]], body: bytes, error: type[Exception]
) -> None:
    """An unreadable event raises a client error."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(body)
        return response

    client = await serve("/api/v1/events", handler)
    with pytest.raises(error):
        async for _ in client.events():
            pass


async def test_event_stream_wrong_content_type(
    serve: Callable[..., Awaitable[JoulegateClient]],
) -> None:
    """Something that is not an event stream at /events."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response({})

    client = await serve("/api/v1/events", handler)
    with pytest.raises(JoulegateNotAgentError):
        async for _ in client.events():
            pass


async def test_event_stream_errors(hass: HomeAssistant, mock_agent: FakeAgent) -> None:
    """Refused token, missing route and dead agent, on the stream."""
    session = async_get_clientsession(hass)
    with pytest.raises(JoulegateAuthenticationError):
        async for _ in JoulegateClient(mock_agent.host, mock_agent.port, "bad", session).events():
            pass
    mock_agent.events_enabled = False
    with pytest.raises(JoulegateResponseError) as err:
        async for _ in JoulegateClient(mock_agent.host, mock_agent.port, TOKEN, session).events():
            pass
    assert err.value.status == 404
    assert err.value.code == "not_found"
    with pytest.raises(JoulegateConnectionError):
        async for _ in JoulegateClient(mock_agent.host, free_port(), TOKEN, session).events():
            pass


async def test_event_stream_goes_quiet(serve: Callable[..., Awaitable[JoulegateClient]]) -> None:
    """No byte for longer than the read timeout: a connection error."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(5)
        return response

    client = await serve("/api/v1/events", handler)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr("custom_components.joulegate.client.EVENT_STREAM_READ_TIMEOUT", 0.1)
        with pytest.raises(JoulegateConnectionError, match="quiet"):
            await _drain(client)


async def test_authentication_errors(hass: HomeAssistant, mock_agent: FakeAgent) -> None:
    """A wrong or missing token."""
    session = async_get_clientsession(hass)
    with pytest.raises(JoulegateAuthenticationError, match="Missing or wrong bearer token"):
        await JoulegateClient(mock_agent.host, mock_agent.port, "bad", session).info()
    with pytest.raises(JoulegateAuthenticationError, match="No token"):
        await JoulegateClient(mock_agent.host, mock_agent.port, None, session).status()
    # The health route needs no token.
    assert (
        await JoulegateClient(mock_agent.host, mock_agent.port, None, session).health()
    ).status == "ok"


async def test_connection_error(hass: HomeAssistant, socket_enabled: None) -> None:
    """Nothing listens."""
    client = JoulegateClient("127.0.0.1", free_port(), TOKEN, async_get_clientsession(hass))
    with pytest.raises(JoulegateConnectionError):
        await client.info()


async def test_timeout(serve: Callable[..., Awaitable[JoulegateClient]]) -> None:
    """The agent does not answer in time."""

    async def handler(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    client = await serve("/api/v1/status", handler)
    with pytest.raises(JoulegateConnectionError, match="Timed out"):
        await client.status()


@pytest.mark.parametrize(
    ("response", "error", "match"),
    [
        (
            lambda: web.json_response({"error": "boom", "message": "Exploded"}, status=500),
            JoulegateResponseError,
            "Exploded",
        ),
        (lambda: web.Response(status=502, text="Bad gateway"), JoulegateResponseError, "HTTP 502"),
        (
            lambda: web.json_response({"error": 7, "message": None}, status=503),
            JoulegateResponseError,
            "HTTP 503: Service Unavailable",
        ),
        (
            lambda: web.Response(text="<html></html>", content_type="text/html"),
            JoulegateNotAgentError,
            "not JSON",
        ),
        (
            lambda: web.Response(text="{oops", content_type="application/json"),
            JoulegateNotAgentError,
            "valid JSON",
        ),
        (
            lambda: web.json_response({"device_id": 5}),
            JoulegateResponseError,
            "Unexpected response",
        ),
        (lambda: web.json_response([1, 2]), JoulegateResponseError, "expected an object"),
    ],
)
async def test_bad_answers(
    serve: Callable[..., Awaitable[JoulegateClient]],
    response: Callable[[], web.Response],
    error: type[JoulegateError],
    match: str,
) -> None:
    """Error statuses, non-JSON and malformed documents."""

    async def handler(_: web.Request) -> web.Response:
        return response()

    client = await serve("/api/v1/info", handler)
    with pytest.raises(error, match=match):
        await client.info()


@pytest.mark.parametrize(
    "response",
    [
        lambda: web.Response(status=404, text="nope"),
        lambda: web.json_response({"status": "ok"}),
        lambda: web.json_response(
            {"status": "ok", "service": "nginx", "api_version": 1, "device_id": "x"}
        ),
    ],
)
async def test_health_of_something_else(
    serve: Callable[..., Awaitable[JoulegateClient]], response: Callable[[], web.Response]
) -> None:
    """A server without the agent's health document is not a Joulegate agent."""

    async def handler(_: web.Request) -> web.Response:
        return response()

    client = await serve("/api/v1/health", handler)
    with pytest.raises(JoulegateNotAgentError):
        await client.health()


async def test_base_url_brackets_ipv6(hass: HomeAssistant) -> None:
    """An IPv6 address gets its brackets in URLs."""
    client = JoulegateClient("fe80::1", 8787, TOKEN, async_get_clientsession(hass))
    assert str(client.base_url) == "http://[fe80::1]:8787"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "17"),
        ("id", True),
        ("energy_j", "a lot"),
        ("model", 3),
        ("outcome", None),
        ("tokens_estimated", "no"),
        ("prompt_tokens", 1.5),
        ("ended_at", "yesterday"),
    ],
)
def test_inference_row_validation(field: str, value: object) -> None:
    """Mistyped fields in a ledger row are refused."""
    row = load_json("inferences.json")["items"][0] | {field: value}
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the field
        Inference.from_dict(row)


def test_inference_row_defaults() -> None:
    """Optional fields may be missing; Wh is derived from J when absent."""
    row = {"id": 1, "duration_s": 1, "energy_j": 7.2, "outcome": "ok", "gate_open": "?"}
    inference = Inference.from_dict(row)
    assert inference.wh == pytest.approx(0.002)
    assert inference.output_tokens == 0
    assert inference.gate_open is None
    assert inference.started_at is None


def test_a_row_time_without_an_offset_is_utc() -> None:
    row = load_json("inferences.json")["items"][0] | {"ended_at": "2026-05-21T12:00:00"}
    assert Inference.from_dict(row).ended_at == datetime(2026, 5, 21, 12, tzinfo=UTC)


def test_status_with_optional_parts_missing() -> None:
    """Idle, thermal, throttling and queue are optional in a status document."""
    status = load_json("status.json")
    for key in ("idle", "thermal", "throttling", "queue", "power_mode"):
        status.pop(key)
    parsed = Status.from_dict(status)
    assert parsed.idle_baseline_w is None
    assert parsed.thermal.zones == {}
    assert parsed.throttling.active is False
    assert parsed.queue.length == 0
    assert parsed.power_mode is None
    with pytest.raises(ValueError, match="not a list"):
        Status.from_dict(load_json("status.json") | {"power": {"rails": {}}})


def test_an_inference_row_carries_the_agents_error_bound_when_it_has_one() -> None:
    row = load_json("inferences.json")["items"][0]
    assert Inference.from_dict(row).energy_error_j == 1.08
    del row["energy_error_j"]  # an agent older than the bound
    assert Inference.from_dict(row).energy_error_j is None
