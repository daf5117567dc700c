"""The aiohttp application: bearer auth and JSON errors around every route."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

from aiohttp import web

from joulegate_agent.agent import Agent
from joulegate_agent.api.errors import ApiError, json_error
from joulegate_agent.api.keys import AGENT_KEY
from joulegate_agent.api.routes_core import HEALTH_PATH, add_core_routes
from joulegate_agent.api.routes_inference import PROXY_KEY, add_inference_routes
from joulegate_agent.api.routes_power import add_power_routes
from joulegate_agent.api.server import connection_middleware
from joulegate_agent.api.token import token_matches
from joulegate_agent.batch.routes import PATH_PREFIXES as BATCH_PATHS
from joulegate_agent.batch.routes import add_batch_routes
from joulegate_agent.storage.spool import SpoolFullError

_LOGGER = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def _needs_token(request: web.Request, agent: Agent) -> bool:
    if request.path == HEALTH_PATH:
        return False
    if request.path.startswith(API_PREFIX) or request.path.startswith(BATCH_PATHS):
        return True  # --no-proxy-auth opens the proxy, never the batch queue
    return agent.config.proxy_auth


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _plausible_token(token: str) -> bool:
    """Bearer tokens are ASCII (RFC 6750); other bytes arrive as lone surrogates, which cannot
    even be compared."""
    return token.isascii()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return json_error(err.status, err.code, err.message)
    except SpoolFullError as err:
        return json_error(503, "storage_full", str(err), headers={"Retry-After": "60"})
    except sqlite3.Error as err:  # disk full, read-only data directory, ...: logged where raised
        reading = request.method in ("GET", "HEAD")  # a damaged file fails reads as well
        message = (
            f"The agent cannot read its ledger right now ({err})."
            if reading
            else f"The agent cannot write its ledger right now ({err}); "
            "rows already recorded are kept."
        )
        return json_error(503, "storage_unavailable", message, headers={"Retry-After": "60"})
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = _STATUS_CODES.get(err.status, "http_error")
        headers = {k: v for k, v in err.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_error(err.status, code, err.reason, headers=headers)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    agent = request.app[AGENT_KEY]
    if _needs_token(request, agent):
        token = presented_token(request)
        if token is None:
            return json_error(
                401,
                "unauthorized",
                "Send the agent's token as 'Authorization: Bearer <token>' "
                "(see `joulegate-agent token`).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not _plausible_token(token) or not token_matches(agent.token, token):
            return json_error(
                401,
                "invalid_token",
                "The token is not this agent's token.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
    return await handler(request)


def build_app(agent: Agent) -> web.Application:
    app = web.Application(
        middlewares=[connection_middleware, error_middleware, auth_middleware],
        client_max_size=agent.config.max_body_bytes,
    )
    app[AGENT_KEY] = agent
    add_core_routes(app)
    add_batch_routes(app, agent.batches)  # before the proxy's catch-all /v1/{tail}
    add_inference_routes(app, agent)
    add_power_routes(app)
    agent.batches.attach(app[PROXY_KEY])
    return app
