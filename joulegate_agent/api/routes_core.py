"""health, info, status and the OpenAPI document."""

from __future__ import annotations

import json
import platform
from functools import lru_cache
from importlib import resources
from typing import Any

from aiohttp import web

from joulegate_agent.agent import Agent
from joulegate_agent.api.keys import AGENT_KEY
from joulegate_agent.api.status import status_payload

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
