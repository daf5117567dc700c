"""health, info, status and the OpenAPI document."""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

from aiohttp import web

from joulegate_agent.agent import Agent
from joulegate_agent.api.keys import AGENT_KEY
from joulegate_agent.storage.ledger import iso, round_or_none

API_VERSION = 1
HEALTH_PATH = "/api/v1/health"
FEATURES = ("ledger_id", "storage_health", "clock_synced", "energy_error", "power_levels")
"""What this agent offers beyond API version 1's first answers, for clients that must also work
with older agents (listed in /api/v1/info)."""


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    text = resources.files("joulegate_agent.api").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def info_payload(agent: Agent) -> dict[str, Any]:
    return {
        "device_id": agent.device_id,
        "hostname": platform.node(),
        "board": {
            "manufacturer": agent.board.manufacturer,
            "model": agent.board.model,
            "simulated": agent.board.simulated,
            "power_modes": agent.thermal_reader.power_modes,
        },
        "agent_version": agent.version,
        "api_version": API_VERSION,
        "features": list(FEATURES),
        "ledger_id": agent.ledger_id,
        "python_version": platform.python_version(),
        "sample_rate_hz": agent.sampler.rate_hz,
        "boundary": agent.boundary,
        "power_levels": agent.power.summary(),
        "sources": [
            {
                "kind": source.info.kind,
                "path": source.info.path,
                "boundary": source.info.boundary,
                "resolution_s": source.info.resolution_s,
                "calibration": {
                    "gain": agent.config.calibration.gain,
                    "offset_w": agent.config.calibration.offset_w,
                },
                "rails": [
                    {"name": rail.name, "whole_board": rail.whole_board}
                    for rail in source.info.rails
                ],
            }
            for source in agent.sources
        ],
    }


def status_payload(agent: Agent, board_wh: float) -> dict[str, Any]:
    """The status body; `board_wh` is the persisted lifetime energy (`Agent.board_energy_wh`),
    never a value a crash could take back. Reading it writes nothing."""
    reading = agent.sampler.latest
    thermal = agent.thermal
    rails = [] if reading is None else reading.rails
    board_w = None if reading is None or reading.board_w is None else agent.meter.latest_w
    totals = agent.inference.ledger.totals()
    return {
        "time": iso(datetime.now(timezone.utc)),
        "uptime_s": round(time.monotonic() - agent.started_mono, 3),
        "power": {
            "board_w": round_or_none(board_w),
            "boundary": agent.boundary,
            "rails": [
                {
                    "name": rail.name,
                    "power_w": round_or_none(rail.power_w),
                    "voltage_v": round_or_none(rail.voltage_v),
                    "current_a": round_or_none(rail.current_a),
                    "available": rail.available,
                }
                for rail in rails
            ],
        },
        "energy": {"board_wh": round(board_wh, 6), **agent.inference.status_energy(totals)},
        "idle": {"baseline_w": round_or_none(agent.meter.idle_w)},
        "thermal": {
            "zones": {} if thermal is None else {k: round(v, 2) for k, v in thermal.zones.items()},
            "max_c": None if thermal is None else round_or_none(thermal.max_c, 2),
        },
        "throttling": {
            "active": bool(thermal and thermal.throttling),
            "reasons": [] if thermal is None else list(thermal.throttling),
        },
        "power_mode": (
            None
            if thermal is None or thermal.power_mode is None
            else {"id": thermal.power_mode.id, "name": thermal.power_mode.name}
        ),
        "inference": agent.inference.status_inference(totals),
        "gate": agent.inference.gate.state().to_json(),
        "power_level": agent.power.current_name,
        "queue": agent.inference.queue.snapshot(),
        "storage": agent.inference.writer.health().to_json(),
        "batches": agent.batches.status(),
        "sampler": {
            "rate_hz": agent.sampler.rate_hz,
            "samples": agent.meter.samples,
            "worst_gap_s": round(agent.sampler.worst_gap_s, 4),
        },
    }


async def health(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    return web.json_response(
        {
            "status": "ok",
            "service": "joulegate-agent",
            "api_version": API_VERSION,
            "device_id": agent.device_id,
        }
    )


async def info(request: web.Request) -> web.Response:
    return web.json_response(info_payload(request.app[AGENT_KEY]))


async def status(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    return web.json_response(status_payload(agent, agent.board_energy_wh))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def add_core_routes(app: web.Application) -> None:
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_get("/api/v1/info", info)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/openapi.json", openapi)
