"""The aiohttp application: its routes and hooks (build_app), bearer auth and JSON errors around
every route."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

from aiohttp import web

from joulegate_agent.agent import Agent
from joulegate_agent.api import routes_core, routes_power
from joulegate_agent.api.errors import ApiError, json_error
from joulegate_agent.api.keys import AGENT_KEY
from joulegate_agent.api.routes_core import HEALTH_PATH
from joulegate_agent.api.routes_inference import InferenceRoutes
from joulegate_agent.api.server import connection_middleware
from joulegate_agent.api.token import token_matches
from joulegate_agent.batch.routes import PATH_PREFIXES as BATCH_PATHS
from joulegate_agent.batch.routes import BatchRoutes, add_openai_resource
from joulegate_agent.proxy.routes import PROXY_PATHS, Proxy, ProxySettings
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
    """The agent's HTTP application, as its map: every route and every start-up and shutdown
    hook. The agent itself starts before the application and stops after it (api/serve.py)."""
    app = web.Application(
        middlewares=[connection_middleware, error_middleware, auth_middleware],
        client_max_size=agent.config.max_body_bytes,
    )
    app[AGENT_KEY] = agent
    router = app.router
    inference = InferenceRoutes(agent.inference)
    batches = BatchRoutes(agent.batches)
    proxy = Proxy(ProxySettings.from_config(agent.config), agent.inference)
    agent.batches.attach(proxy)  # batch requests share the proxy's upstream session

    # The agent's own API (api/openapi.json).
    router.add_get(HEALTH_PATH, routes_core.health)
    router.add_get("/api/v1/info", routes_core.info)
    router.add_get("/api/v1/status", routes_core.status)
    router.add_get("/api/v1/openapi.json", routes_core.openapi)
    router.add_get("/api/v1/inferences", inference.inferences)
    router.add_get("/api/v1/gate", inference.get_gate)
    router.add_put("/api/v1/gate", inference.put_gate)
    router.add_post("/api/v1/windows", inference.post_window)
    router.add_post("/api/v1/windows/{window_id}/end", inference.post_window_end)
    router.add_get("/api/v1/events", inference.events)
    router.add_get("/api/v1/power", routes_power.get_power)
    router.add_put("/api/v1/power", routes_power.put_power)

    # OpenAI's Files and Batches APIs, answered here: before the proxy's catch-all /v1/{tail}.
    add_openai_resource(router, "/v1/files", POST=batches.create_file, GET=batches.list_files)
    add_openai_resource(
        router, "/v1/files/{file_id}", GET=batches.get_file, DELETE=batches.delete_file
    )
    add_openai_resource(router, "/v1/files/{file_id}/content", GET=batches.file_content)
    add_openai_resource(router, "/v1/batches", POST=batches.create_batch, GET=batches.list_batches)
    add_openai_resource(router, "/v1/batches/{batch_id}", GET=batches.get_batch)
    add_openai_resource(router, "/v1/batches/{batch_id}/cancel", POST=batches.cancel_batch)

    # Everything else an LLM client sends: relayed to the upstream by the metering proxy.
    for path in PROXY_PATHS:
        router.add_route("*", path, proxy.handle)

    # Deferred requests and event streams end at once: the server's shutdown would otherwise
    # wait for them until its timeout.
    async def release_deferred(_app: web.Application) -> None:
        agent.inference.queue.release_waiting()

    async def end_event_streams(_app: web.Application) -> None:
        agent.inference.events.close()

    async def stop_batch_runner(_app: web.Application) -> None:
        await agent.batches.stop()  # before the proxy's session closes under running requests

    app.on_startup.append(proxy.start)
    app.on_shutdown.append(release_deferred)
    app.on_shutdown.append(end_event_streams)
    app.on_shutdown.append(stop_batch_runner)
    app.on_cleanup.append(proxy.close)
    return app
