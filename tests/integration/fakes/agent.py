"""A stand-in for `joulegate-agent`: the v1 API of docs/api-contract.md on 127.0.0.1.

It serves the JSON shapes kept in fixtures/, keeps a ledger that grows when a test
finishes an inference, and streams server-sent events, so the integration talks
real HTTP (and real SSE) through Home Assistant's own aiohttp session. The
end-to-end tests run the real agent instead.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).parents[1] / "fixtures"
TOKEN = "s3cret-token-for-tests"


def load_json(name: str) -> Any:
    """Load one of the JSON fixtures."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class FakeAgent:
    """The agent's API with mutable state and switches for failure modes."""

    def __init__(self) -> None:
        """Start from the fixtures."""
        self.token = TOKEN
        self.health: dict[str, Any] = load_json("health.json")
        self.info: dict[str, Any] = load_json("info.json")
        self.status: dict[str, Any] = load_json("status.json")
        # Whether the agent can write its ledger (agents before 0.2 leave this out).
        self.status["storage"] = {
            "healthy": True,
            "pending_rows": 0,
            "spool_capacity": 10000,
            "error": None,
        }
        self.rows: list[dict[str, Any]] = load_json("inferences.json")["items"]
        self.gate: dict[str, Any] = load_json("gate.json")
        # GET/PUT /api/v1/power's document (power_document); None: an agent without levels.
        self.power: dict[str, Any] | None = None
        self.batches: list[dict[str, Any]] = []  # newest first, as the agent lists them
        # The ledger's identity, in /info and each page; None: an agent from before it had one.
        self.ledger_id: str | None = "ledger-0001"
        self.features: list[str] = ["ledger_id"]
        # Switches a test flips.
        self.fail_status: int | None = None  # authenticated routes answer this status
        self.health_override: Callable[[], web.Response] | None = None
        self.events_enabled = True
        self.max_page = 1000
        self.in_dwell = False  # PUT /power refuses a change of level (409 dwell), renews the same
        # Observations.
        self.inference_queries: list[tuple[int, int]] = []
        self.batch_queries: list[dict[str, str]] = []
        self.gate_puts: list[dict[str, Any]] = []
        self.power_puts: list[dict[str, Any]] = []
        self.stream_connections = 0
        self._streams: list[asyncio.Queue[str | None]] = []
        self.stream_connected = asyncio.Event()
        self.server: TestServer | None = None
        self._stopping = False

    # -- state changes ------------------------------------------------------

    def finish_inference(
        self,
        *,
        output_tokens: int = 64,
        energy_j: float = 20.0,
        marginal_j: float | None = None,
        ended_at: datetime | None = None,
        duration: float = 2.0,
        outcome: str = "ok",
        batch_id: str | None = None,
    ) -> dict[str, Any]:
        """Append a ledger row, update the counters, and announce it on the stream.

        The row's marginal energy and times are the previous row's unless given.
        """
        last = self.rows[-1] if self.rows else None
        row = copy.deepcopy(last) if last else load_json("inferences.json")["items"][-1]
        row_id = (last["id"] if last else 0) + 1
        row.update(
            id=row_id,
            window_id=f"window-{row_id}",
            output_tokens=output_tokens,
            energy_j=energy_j,
            wh=energy_j / 3600,
            duration_s=duration,
            j_per_token=energy_j / output_tokens if output_tokens else None,
            tokens_per_s=output_tokens / duration,
            outcome=outcome,
            batch_id=batch_id,
            custom_id=None if batch_id is None else f"request-{row_id}",
        )
        if marginal_j is not None:
            row["marginal_j"] = marginal_j
        if ended_at is not None:
            row["started_at"] = (ended_at - timedelta(seconds=duration)).isoformat()
            row["ended_at"] = ended_at.isoformat()
        self.rows.append(row)
        inference = self.status["inference"]
        inference["count"] += 1
        inference["output_tokens"] += output_tokens
        inference["last"] = row
        energy = self.status["energy"]
        energy["inference_wh"] = round(energy["inference_wh"] + energy_j / 3600, 6)
        energy["board_wh"] = round(energy["board_wh"] + energy_j / 3600, 6)
        self.publish("inference", row)
        return row

    def add_batch(
        self,
        batch_id: str,
        *,
        deadline: datetime,
        requests: int = 300,
        request_s: float | None = 30.0,
        request_wh: float = 0.08,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A batch in progress, with nothing run yet; `/status` `batches` follows."""
        run_s = None if request_s is None else requests * request_s
        batch: dict[str, Any] = {
            "id": batch_id,
            "object": "batch",
            "status": "in_progress",
            "expires_at": int(deadline.timestamp()),
            "request_counts": {"total": requests, "completed": 0, "failed": 0},
            "metadata": metadata or {},
            "joulegate": {
                "deadline": deadline.isoformat(),
                "energy_j": 0.0,
                "energy_wh": 0.0,
                "attempts": 0,
                "requests_done": 0,
                "requests_left": requests,
                "avg_wh_per_request": None,
                "estimate_basis": None if run_s is None else "model",
                "energy_needed_wh": None if run_s is None else requests * request_wh,
                "run_time_needed_s": run_s,
                "longest_request_s": request_s,
                "latest_start": None
                if run_s is None
                else (deadline - timedelta(seconds=run_s)).isoformat(),
                "on_time": None if run_s is None else True,
                "warning": None,
            },
        }
        self.batches.insert(0, batch)
        self.count_batches()
        return batch

    def finish_batch(self, batch_id: str, status: str = "completed") -> dict[str, Any]:
        """The batch ends: its counts and energy from its ledger rows, the `batch` event sent."""
        batch = next(b for b in self.batches if b["id"] == batch_id)
        rows = [row for row in self.rows if row.get("batch_id") == batch_id]
        energy_j = sum(row["energy_j"] for row in rows)
        batch["status"] = status
        batch["request_counts"]["completed"] = len(rows)
        batch["joulegate"].update(
            energy_j=energy_j,
            energy_wh=energy_j / 3600,
            attempts=len(rows),
            requests_done=len(rows),
            requests_left=0,
            energy_needed_wh=0.0,
            run_time_needed_s=0.0,
        )
        self.count_batches()
        self.publish("batch", batch)
        return batch

    def count_batches(self) -> None:
        """/status `batches` from the batches in progress (an agent with a batch queue)."""
        active = [b for b in self.batches if b["status"] == "in_progress"]
        outlooks = [b["joulegate"] for b in active]
        starts = [o["latest_start"] for o in outlooks if o["latest_start"]]
        longest = [o["longest_request_s"] for o in outlooks if o["longest_request_s"]]
        self.status["batches"] = {
            "requests_waiting": sum(o["requests_left"] for o in outlooks),
            "requests_running": 0,
            "batches_in_progress": len(active),
            "energy_needed_wh": None
            if any(o["energy_needed_wh"] is None and o["requests_left"] for o in outlooks)
            else sum(o["energy_needed_wh"] or 0.0 for o in outlooks),
            "next_deadline": min((o["deadline"] for o in outlooks), default=None),
            "latest_start": min(starts, default=None),
            "longest_request_s": max(longest, default=None),
            "late": 0,
            "concurrency": 1,
            "admitted": bool(self.gate.get("batch_open")),
        }

    def start_ledger_over(self, ledger_id: str | None) -> None:
        """A new, empty ledger (`--fresh`, a deleted data dir): ids start at 1 again."""
        self.ledger_id = ledger_id
        self.rows = []
        inference = self.status["inference"]
        inference.update(count=0, output_tokens=0, last=None)

    def publish(self, event: str, data: Any) -> None:
        """Send an event to every open stream."""
        frame = f"event: {event}\ndata: {json.dumps(data)}\n\n"
        for queue in self._streams:
            queue.put_nowait(frame)

    def close_streams(self) -> None:
        """End every open event stream (the agent restarting, or the test ending)."""
        for queue in self._streams:
            queue.put_nowait(None)

    # -- HTTP ---------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/api/v1/health":
            return await handler(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "unauthorized", "Missing or wrong bearer token")
        if self.fail_status is not None:
            return _error(self.fail_status, "failure", "Injected failure")
        return await handler(request)

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/api/v1/health", self._health)
        app.router.add_get("/api/v1/info", self._info)
        app.router.add_get("/api/v1/status", self._status)
        app.router.add_get("/api/v1/inferences", self._inferences)
        app.router.add_get("/api/v1/gate", self._gate)
        app.router.add_put("/api/v1/gate", self._put_gate)
        app.router.add_get("/api/v1/events", self._events)
        app.router.add_get("/api/v1/power", self._power)
        app.router.add_put("/api/v1/power", self._put_power)
        app.router.add_get("/v1/batches", self._batches)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        if self.health_override is not None:
            return self.health_override()
        return web.json_response(self.health)

    async def _info(self, _: web.Request) -> web.Response:
        if self.ledger_id is None:
            return web.json_response(self.info)
        return web.json_response(
            self.info | {"ledger_id": self.ledger_id, "features": self.features}
        )

    async def _status(self, _: web.Request) -> web.Response:
        return web.json_response(self.status)

    async def _gate(self, _: web.Request) -> web.Response:
        return web.json_response(self.gate)

    async def _inferences(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        limit = min(int(request.query.get("limit", "100")), self.max_page)
        self.inference_queries.append((after, limit))
        newer = [row for row in self.rows if row["id"] > after]
        items = newer[:limit]
        return web.json_response(
            {
                "items": items,
                "cursor": items[-1]["id"] if items else after,
                "has_more": len(newer) > limit,
            }
            | ({} if self.ledger_id is None else {"ledger_id": self.ledger_id})
        )

    async def _batches(self, request: web.Request) -> web.Response:
        self.batch_queries.append(dict(request.query))
        limit = int(request.query.get("limit", "20"))
        after = request.query.get("after")
        ids = [b["id"] for b in self.batches]
        start = ids.index(after) + 1 if after in ids else 0
        page = self.batches[start : start + limit]
        return web.json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + limit < len(self.batches),
            }
        )

    async def _put_gate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.gate_puts.append(body)
        batch_only = body.get("scope") == "batch"
        if "scope" in body:  # what the agent answers since it has the batch queue
            self.gate.update(batch_open=body["open"], scope=body["scope"])
        self.gate.update(
            open=body["open"] and not batch_only,
            source="lease",
            reason=body["reason"],
            lease_remaining_s=float(body["lease_s"]),
            lease_expires_at="2026-11-26T13:46:00+00:00",
        )
        self.publish("gate", self.gate)
        return web.json_response(self.gate)

    async def _power(self, _: web.Request) -> web.Response:
        if self.power is None:
            return _error(404, "not_found", "No such route")
        return web.json_response(self.power)

    async def _put_power(self, request: web.Request) -> web.Response:
        if self.power is None:
            return _error(404, "not_found", "No such route")
        body = await request.json()
        self.power_puts.append(body)
        if self.in_dwell and body["level"] != self.power["current"]:
            return _error(409, "dwell", "the level changed less than the dwell time ago")
        self.power.update(current=body["level"], source="lease", reason=body["reason"])
        return web.json_response(self.power)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not self.events_enabled:
            return _error(404, "not_found", "No such route")
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        if self._stopping:
            queue.put_nowait(None)
        self._streams.append(queue)
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b": keepalive\n\n")
            self.stream_connections += 1
            self.stream_connected.set()
            while (frame := await queue.get()) is not None:
                await response.write(frame.encode())
        finally:
            self._streams.remove(queue)
            if not self._streams:
                self.stream_connected.clear()
        return response

    # -- lifecycle ----------------------------------------------------------

    async def start(self, port: int | None = None) -> None:
        """Serve on 127.0.0.1 (a free port unless one is given)."""
        self.server = TestServer(self.app(), host="127.0.0.1", port=port, shutdown_timeout=1.0)
        await self.server.start_server()

    async def stop(self) -> None:
        """Stop serving (the agent going away)."""
        self._stopping = True
        self.close_streams()
        if self.server is not None:
            await self.server.close()
            self.server = None
        self._stopping = False

    @property
    def host(self) -> str:
        """Where it listens."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self.server is not None
        assert self.server.port is not None
        return self.server.port


def power_document(levels: list[tuple[str, float | None, float | None]]) -> dict[str, Any]:
    """GET /api/v1/power of an agent with these levels (name, W above idle, tokens/s; None:
    not measured yet), lowest draw first, every knob settable."""
    return {
        "levels": [
            {"index": n, "name": name, "settings": {"gpu_max_freq": n}, "description": name}
            for n, (name, _, _) in enumerate(levels)
        ],
        "current": None,
        "source": "original",
        "reason": "start",
        "changed_at": "2026-11-26T13:00:00+00:00",
        "lease_expires_at": None,
        "lease_remaining_s": None,
        "default": None,
        "dwell_s": 0.0,
        "next_change_in_s": 0.0,
        "read_only": False,
        "knobs": [
            {
                "id": "gpu_max_freq",
                "paths": ["/sys/class/devfreq/gpu/max_freq"],
                "values": [name for name, _, _ in levels],
                "current": None,
                "in_ladder": True,
                "cannot_set": None,
            }
        ],
        "notes": [],
        "table": [
            {
                "level": name,
                "measured": watts is not None,
                "inferences": 0 if watts is None else 5,
                "models": []
                if watts is None
                else [
                    {
                        "model": "llama3.2:3b",
                        "inferences": 5,
                        "output_tokens": 500,
                        "tokens_per_s": speed,
                        "avg_w_above_idle": watts,
                        "j_per_token": None,
                        "marginal_j_per_token": None,
                        "idle_w": 5.0,
                        "marginal_inferences": 5,
                    }
                ],
            }
            for name, watts, speed in levels
        ],
    }
