"""GET|PUT /api/v1/power: the power levels, the one in force, its lease, and what each costs."""

from __future__ import annotations

import asyncio
import functools
import json
import math
from typing import Any

from aiohttp import web

from joulegate_agent.agent import Agent
from joulegate_agent.api.errors import ApiError, json_error
from joulegate_agent.api.keys import AGENT_KEY
from joulegate_agent.api.server import read_in_time
from joulegate_agent.inference.gate import LEASE_MAX_S, LEASE_MIN_S
from joulegate_agent.power.controller import (
    REASON_MAX_CHARS,
    DwellError,
    ReadOnlyError,
    UnknownLevelError,
)
from joulegate_agent.power.knobs import KnobError

DEFAULT_LEASE_S = 60.0


def _bad(message: str, code: str = "invalid_body") -> ApiError:
    return ApiError(400, code, message)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await read_in_time(request, request.read()) or b"{}")
    except (ValueError, RecursionError):
        raise _bad("The request body is not valid JSON.", "invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    return body


async def power_payload(agent: Agent, *, fresh: bool) -> dict[str, Any]:
    """The controller's state and the learned cost table (`fresh`: read from the ledger now;
    else as read at most a minute ago, for the lease answers every 10 s)."""
    controller = agent.power
    names = [level.name for level in controller.levels]
    loop = asyncio.get_running_loop()
    read = functools.partial(agent.cost_tables.read, names, fresh=fresh)
    table = await loop.run_in_executor(None, read)
    return {**controller.to_json(), "table": table}


async def get_power(request: web.Request) -> web.Response:
    return web.json_response(await power_payload(request.app[AGENT_KEY], fresh=True))


async def put_power(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    body = await _body(request)
    unknown = sorted(set(body) - {"level", "lease_s", "reason"})
    if unknown:
        raise _bad(f"Unknown field(s): {', '.join(unknown)}; send level, lease_s and reason.")
    key = body.get("level")
    if isinstance(key, float) and key.is_integer():
        key = int(key)  # 2.0 is an integer, as in JSON Schema
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise _bad("level must be a level's name (a string) or its index (an integer).")
    lease = body.get("lease_s", DEFAULT_LEASE_S)
    if (
        isinstance(lease, bool)
        or not isinstance(lease, (int, float))
        or not math.isfinite(lease)
        or not LEASE_MIN_S <= lease <= LEASE_MAX_S
    ):
        raise _bad(f"lease_s must be a number from {LEASE_MIN_S:g} to {LEASE_MAX_S:g} seconds.")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > REASON_MAX_CHARS:
        raise _bad(f"reason must be a string of at most {REASON_MAX_CHARS} characters.")
    controller = agent.power
    try:
        level = controller.level(key)
    except UnknownLevelError as err:  # well-formed, but no such level on this box
        raise ApiError(404, "unknown_level", str(err)) from None
    try:
        controller.set(level, lease_s=float(lease), reason=reason)
    except DwellError as err:
        wait = math.ceil(err.retry_after_s)
        return json_error(
            409,
            "dwell",
            str(err),
            headers={"Retry-After": str(wait)},
            retry_after_s=round(err.retry_after_s, 3),
        )
    except ReadOnlyError as err:
        raise ApiError(403, "read_only", str(err)) from None
    except KnobError as err:
        raise ApiError(403, "cannot_set", f"{err}; the box keeps its own settings.") from None
    return web.json_response(await power_payload(agent, fresh=False))
