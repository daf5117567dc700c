"""Ledger, gate, explicit windows and the event stream.

GET /api/v1/inferences, GET|PUT /api/v1/gate, POST /api/v1/windows,
POST /api/v1/windows/{window_id}/end, GET /api/v1/events (SSE).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from joulegate_agent.api.errors import ApiError
from joulegate_agent.api.server import read_in_time
from joulegate_agent.inference.gate import GATE_SCOPES, LEASE_MAX_S, LEASE_MIN_S, REASON_MAX_CHARS
from joulegate_agent.inference.service import (
    InferenceService,
    TooManyWindowsError,
    WindowNotFoundError,
)
from joulegate_agent.proxy.dialects import MAX_COUNT
from joulegate_agent.storage.ledger import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, Outcome, iso

DEFAULT_LEASE_S = 60.0
LABEL_MAX_CHARS = 200
END_OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "cancelled")


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; no body at all is an empty object (whitespace alone is
    not JSON, and is refused like any other body that is not)."""
    raw = await read_in_time(request, request.read())
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise _bad("invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _bad("invalid_body", "The request body must be a JSON object.")
    return body


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad("invalid_parameter", f"{name} must be an integer, got {text!r}.") from None
    if not low <= value <= high:
        raise _bad("invalid_parameter", f"{name} must be between {low} and {high}, got {value}.")
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > LABEL_MAX_CHARS:
        raise _bad("invalid_body", f"{name} must be a string of at most {LABEL_MAX_CHARS} chars.")
    return value or None


def _optional_count(body: dict[str, Any], name: str) -> int | None:
    """A token count: an integer (2.0 is one, as in JSON Schema) from 0 to MAX_COUNT; larger
    would overflow the ledger's INTEGER column."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise _bad("invalid_body", f"{name} must be an integer from 0 to {MAX_COUNT}.")
    return value


class InferenceRoutes:
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    async def inferences(self, request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - {"after", "limit"})
        if unknown:  # a typo such as `?afer=` would otherwise silently read from the start
            raise _bad("invalid_parameter", f"Unknown query parameter(s): {', '.join(unknown)}.")
        after = _query_int(request, "after", 0, 0, 2**63 - 1)
        limit = _query_int(request, "limit", PAGE_LIMIT_DEFAULT, 1, PAGE_LIMIT_MAX)
        loop = asyncio.get_running_loop()
        page = await loop.run_in_executor(None, self.service.ledger.page, after, limit)
        return web.json_response(page.to_json())

    async def get_gate(self, request: web.Request) -> web.Response:
        return web.json_response(self.service.gate.state().to_json())

    async def put_gate(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        is_open = body.get("open")
        if not isinstance(is_open, bool):
            raise _bad("invalid_body", "open must be true or false.")
        lease = body.get("lease_s", DEFAULT_LEASE_S)
        # Compared as it came: an integer of hundreds of digits cannot become a float, and NaN
        # or infinity fail the comparison.
        if (
            isinstance(lease, bool)
            or not isinstance(lease, (int, float))
            or not LEASE_MIN_S <= lease <= LEASE_MAX_S
        ):
            raise _bad(
                "invalid_body",
                f"lease_s must be a number from {LEASE_MIN_S:g} to {LEASE_MAX_S:g} seconds.",
            )
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > REASON_MAX_CHARS:
            raise _bad("invalid_body", f"reason must be a string of at most {REASON_MAX_CHARS}.")
        scope = body.get("scope", "all")
        if scope not in GATE_SCOPES:
            raise _bad("invalid_body", f"scope must be one of {', '.join(GATE_SCOPES)}.")
        state = self.service.gate.set(
            open=is_open, lease_s=float(lease), reason=reason, scope=scope
        )
        return web.json_response(state.to_json())

    async def post_window(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        model = _optional_text(body, "model")
        label = _optional_text(body, "label")
        try:
            window = self.service.open_explicit(model=model, label=label)
        except TooManyWindowsError as err:
            raise ApiError(429, "too_many_windows", str(err)) from None
        return web.json_response(
            {"window_id": window.window_id, "started_at": iso(window.started_at)}, status=201
        )

    async def post_window_end(self, request: web.Request) -> web.Response:
        window_id = request.match_info["window_id"]
        body = await _json_object(request)
        outcome = body.get("outcome", "ok")
        if outcome not in END_OUTCOMES:
            raise _bad("invalid_body", f"outcome must be one of {', '.join(END_OUTCOMES)}.")
        output_tokens = _optional_count(body, "output_tokens")
        prompt_tokens = _optional_count(body, "prompt_tokens")
        try:
            row = await self.service.end_explicit(
                window_id,
                outcome=outcome,
                output_tokens=output_tokens,
                prompt_tokens=prompt_tokens,
            )
        except WindowNotFoundError:
            raise ApiError(
                404, "window_not_found", f"No open window {window_id!r} (ended already?)."
            ) from None
        # 202 while the disk fails: the window is metered and its row held in memory, written (and
        # given its id) when the disk takes it again.
        return web.json_response(row.to_json(), status=200 if row.id is not None else 202)

    async def events(self, request: web.Request) -> web.StreamResponse:
        service = self.service
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        subscription = service.events.subscribe()
        try:
            await response.prepare(request)
            await response.write(_sse("gate", service.gate.state().to_json()))
            while True:
                try:
                    item = await subscription.get(timeout=service.keepalive_s)
                except asyncio.TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if item is None:
                    break
                await response.write(_sse(*item))
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            subscription.close()
        return response


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
