"""The metering proxy: LLM clients talk to the agent as if it were their server.

Clients change only their base URL and API key (the agent's token). Each request goes to the
configured upstream and nowhere else: method, path, query, headers (without hop-by-hop headers
and without the client's Authorization, which carries the agent's token) and body. The response
comes back unchanged, chunk by chunk, as it arrives; a copy of each chunk goes to a token reader.

Every route that makes the upstream compute is metered: it runs once admission lets it (the
gate, the deferral queue and the concurrency limit: inference/admission.py; a refused request
leaves a `refused` row) and is recorded as one window; token counts are read where the dialect
is known (`/completion`, `/v1/chat/completions`, `/api/generate`, ...). Only routes that compute
nothing (`/v1/models`, `/api/tags`, `/props`, `/tokenize`, ...: route_classes.py) pass through
unmetered and ungated.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from joulegate_agent.api.errors import ApiError, json_error
from joulegate_agent.api.server import connection_cap, read_in_time
from joulegate_agent.inference.admission import Refusal
from joulegate_agent.inference.service import InferenceService, OpenWindow, utc_now
from joulegate_agent.proxy.bounds import within_window
from joulegate_agent.proxy.dialects import (
    Dialect,
    TokenCounts,
    TokenReader,
    dialect_for,
    read_request,
    reader_for,
)
from joulegate_agent.proxy.route_classes import computes_nothing
from joulegate_agent.storage.ledger import Outcome, parse_iso_time

if TYPE_CHECKING:
    from joulegate_agent.config import AgentConfig

_LOGGER = logging.getLogger(__name__)

DEFER_HEADER = "X-Joulegate-Defer-Until"
MAX_DEFER_S = 86400.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 300.0

# Routes sent on to the upstream. Our own API lives under /api/v1/, which none of these match.
PROXY_PATHS = (
    "/v1/{tail:.*}",  # OpenAI-compatible (llama.cpp, Ollama, vLLM, MLC, LocalAI, ...)
    "/completion",  # llama.cpp native
    "/completions",
    "/infill",
    "/embedding",
    "/embeddings",
    "/tokenize",
    "/detokenize",
    "/apply-template",
    "/props",
    "/slots",
    "/health",
    "/api/{name:[a-z_]+}",  # Ollama: generate, chat, tags, show, ps, version, embed, ...
    "/api/blobs/{digest}",
)

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded upstream: set by the client library for the next hop, or ours.
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length", "authorization", "expect"}
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


@dataclass(frozen=True, slots=True)
class ProxySettings:
    upstream: URL | None
    upstream_api_key: str | None = None
    max_body_bytes: int = 1024 * 1024
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    """Longest silence from the upstream, before its headers or between chunks."""
    max_upstream_connections: int = 100
    """Upstream connections open at once. aiohttp's default of 100 was a hidden cap: the 101st
    request waited, its meter window already open, for a stream to end (1.27 s added at 200
    streams; a model list waited 890 ms). The agent sizes it like its own connection cap, so each
    client connection it accepts can have its upstream connection: nothing queues unseen inside
    the proxy, and a limit on concurrent inferences is the only deliberate one."""

    @classmethod
    def from_config(cls, config: AgentConfig) -> ProxySettings:
        return cls(
            upstream=URL(config.upstream) if config.upstream else None,
            upstream_api_key=config.upstream_api_key or None,
            max_body_bytes=config.max_body_bytes,
            read_timeout_s=config.upstream_timeout_s,
            max_upstream_connections=connection_cap(),
        )


def parse_defer_until(value: str, now: datetime | None = None) -> float:
    """Seconds to wait from now: the header is seconds (`30`, `2.5`) or an ISO 8601 time."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parse_iso_time(text)
        except ValueError:
            raise ApiError(
                400,
                "invalid_defer_until",
                f"{DEFER_HEADER} must be seconds from now or an ISO 8601 time, got {value!r}",
            ) from None
        seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds) or seconds > MAX_DEFER_S:
        raise ApiError(
            400,
            "invalid_defer_until",
            f"{DEFER_HEADER} may defer a request by at most {MAX_DEFER_S:.0f} s",
        )
    return max(0.0, seconds)


def has_dot_segments(raw_path: str) -> bool:
    """Whether a path holds `.` or `..` segments, raw or percent-encoded (`%2e%2e`, `..%2f`).

    The upstream resolves them, so they would lead out of the upstream URL's base path (e.g. from
    `http://host/ollama/` to another application on that host). No LLM API path has them.
    """
    for segment in raw_path.split("/"):
        if "." in unquote(segment) and any(
            part in (".", "..") for part in re.split(r"[/\\]", unquote(segment))
        ):
            return True
    return False


class _Exchange:
    """What happened to one proxied request, for its window's row."""

    __slots__ = ("http_status", "outcome", "reader", "ttft_s")

    def __init__(self) -> None:
        self.reader: TokenReader | None = None
        self.http_status: int | None = None
        self.outcome: Outcome = "error"
        self.ttft_s: float | None = None


class Proxy:
    """The proxy's handlers and its one upstream session."""

    def __init__(self, settings: ProxySettings, service: InferenceService) -> None:
        self.settings = settings
        self.service = service
        self._session: aiohttp.ClientSession | None = None

    async def start(self, _app: web.Application | None = None) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.settings.max_upstream_connections, limit_per_host=0
                ),
                auto_decompress=False,  # relay bytes exactly as the upstream sent them
                cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to another
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.settings.connect_timeout_s,
                    sock_read=self.settings.read_timeout_s,
                ),
                trust_env=False,  # no proxies from the environment: only the upstream
            )

    async def session(self) -> aiohttp.ClientSession:
        """The one upstream session, which batch requests share with proxied traffic."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        return self._session

    async def close(self, _app: web.Application | None = None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- entry point ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.settings.upstream is None:
            raise ApiError(
                502,
                "upstream_not_configured",
                "No upstream LLM server is configured; start the agent with --upstream URL.",
            )
        if has_dot_segments(request.rel_url.raw_path):
            raise ApiError(
                400, "invalid_path", "The path may not hold '.' or '..' segments (even encoded)."
            )
        body = await read_in_time(request, self._read_body(request))
        if computes_nothing(request.method, request.path):
            return await self._relay(request, body, None, None)
        return await self._metered(request, body, dialect_for(request.method, request.path))

    # -- metering -------------------------------------------------------------------------------

    async def _metered(
        self, request: web.Request, body: bytes, dialect: Dialect | None
    ) -> web.StreamResponse:
        service = self.service
        service.check_storage()  # a full spool refuses new metered work: its row had no room
        arrived_at = utc_now()
        arrived_mono = time.monotonic()
        facts = read_request(dialect, body)
        defer_header = request.headers.get(DEFER_HEADER)
        deadline: float | None = None
        if defer_header is not None:
            deadline = arrived_mono + parse_defer_until(defer_header)

        try:
            await service.admission.admit(deadline)
        except Refusal as refusal:
            service.refuse_later(
                started_at=arrived_at,
                started_mono=arrived_mono,
                http_status=refusal.http_status,
                gate_open=refusal.gate_open,
                model=facts.model,
                route=request.path,
            )
            extra = {} if refusal.reason is None else {"reason": refusal.reason}
            return json_error(
                refusal.http_status,
                refusal.code,
                refusal.message,
                headers={"Retry-After": str(refusal.retry_after_s)},
                **extra,
            )
        try:
            window = service.open(
                gate_open=True, model=facts.model, route=request.path, work_visible=facts.streamed
            )
            return await self._relay(request, body, dialect, window)
        finally:
            service.admission.release()

    # -- relaying -------------------------------------------------------------------------------

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            raise self._too_large(limit)
        body = bytearray()
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > limit:
                raise self._too_large(limit)

    @staticmethod
    def _too_large(limit: int) -> ApiError:
        return ApiError(
            413, "request_too_large", f"The request body is larger than the limit of {limit} bytes."
        )

    def _target(self, request: web.Request) -> URL:
        upstream = self.settings.upstream
        assert upstream is not None
        rel = request.rel_url  # relative: scheme and host always come from the settings
        base = upstream.raw_path.rstrip("/")
        return URL.build(
            scheme=upstream.scheme,
            user=upstream.raw_user,
            password=upstream.raw_password,
            host=upstream.raw_host or "",
            port=upstream.explicit_port,
            path=base + rel.raw_path,
            query_string=rel.raw_query_string,
            encoded=True,
        )

    def _forward_headers(self, request: web.Request) -> CIMultiDict[str]:
        named_in_connection = _named_in_connection(request.headers)
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.items():
            lower = name.lower()
            if (
                lower in _NOT_FORWARDED
                or lower in named_in_connection
                or lower.startswith("x-joulegate-")
            ):
                continue
            headers.add(name, value)
        if self.settings.upstream_api_key:
            headers["Authorization"] = f"Bearer {self.settings.upstream_api_key}"
        return headers

    async def _relay(
        self,
        request: web.Request,
        body: bytes,
        dialect: Dialect | None,
        window: OpenWindow | None,
    ) -> web.StreamResponse:
        exchange = _Exchange()
        try:
            return await self._exchange(request, body, dialect, window, exchange)
        except asyncio.CancelledError:
            exchange.outcome = "cancelled"
            raise
        finally:
            if window is not None:
                self._finish(window, exchange)

    async def _exchange(
        self,
        request: web.Request,
        body: bytes,
        dialect: Dialect | None,
        window: OpenWindow | None,
        exchange: _Exchange,
    ) -> web.StreamResponse:
        session = self._session
        if session is None:
            await self.start()
            session = self._session
            assert session is not None
        try:
            upstream = await session.request(
                request.method,
                self._target(request),
                headers=self._forward_headers(request),
                data=body or None,
                allow_redirects=False,
                skip_auto_headers=_SKIP_AUTO,
            )
        except asyncio.TimeoutError:
            exchange.http_status = 504
            return json_error(
                504,
                "upstream_timeout",
                f"The upstream LLM server did not answer within "
                f"{self.settings.read_timeout_s:g} s.",
            )
        except aiohttp.ClientError as err:
            exchange.http_status = 502
            return self._bad_gateway(err)
        try:
            return await self._stream_back(request, upstream, dialect, window, exchange)
        finally:
            upstream.release()

    async def _stream_back(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        dialect: Dialect | None,
        window: OpenWindow | None,
        exchange: _Exchange,
    ) -> web.StreamResponse:
        exchange.http_status = upstream.status
        if dialect is not None:
            exchange.reader = reader_for(
                dialect,
                upstream.headers.get("Content-Type"),
                upstream.headers.get("Content-Encoding"),
            )
        reader = exchange.reader
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        hop_by_hop = _HOP_BY_HOP | _named_in_connection(upstream.headers)
        for name, value in upstream.headers.items():
            if name.lower() not in hop_by_hop:
                response.headers.add(name, value)
        try:
            await response.prepare(request)
        except ConnectionError:
            upstream.close()
            exchange.outcome = "cancelled"
            return response
        started = window.started_mono if window is not None else 0.0
        record_work = self.service.meter.record_work
        while True:
            try:
                chunk = await upstream.content.readany()
            except (asyncio.TimeoutError, aiohttp.ClientError) as err:
                upstream.close()
                return self._abort(request, response, exchange, err)
            if not chunk:
                break
            if reader is not None and window is not None and (tokens := reader.feed(chunk)):
                record_work(window.key, tokens)  # the energy it shares follows its tokens
                if exchange.ttft_s is None:
                    exchange.ttft_s = time.monotonic() - started
            try:
                await response.write(chunk)
            except ConnectionError:  # the client went away: stop the upstream too
                upstream.close()
                exchange.outcome = "cancelled"
                return response
        try:
            await response.write_eof()
        except ConnectionError:
            exchange.outcome = "cancelled"
            return response
        exchange.outcome = "ok" if upstream.status < 400 else "error"
        return response

    def _bad_gateway(self, err: aiohttp.ClientError) -> web.Response:
        """502 for an upstream that gave no usable answer, saying which way it failed."""
        upstream = self.settings.upstream
        shown = upstream.with_user(None) if upstream is not None else None  # no user:password
        if isinstance(err, aiohttp.ClientResponseError):  # the parser refused its answer
            detail = str(err.message).splitlines()[0] if err.message else "unparsable"
            return json_error(
                502,
                "upstream_bad_response",
                f"The upstream LLM server at {shown} answered, but not valid HTTP ({detail}); "
                f"is --upstream the LLM server's HTTP address?",
            )
        if isinstance(err, aiohttp.ServerDisconnectedError):
            what = "closed the connection without answering"
        else:
            what = f"is not reachable: {err.__class__.__name__}"
        return json_error(
            502, "upstream_unavailable", f"The upstream LLM server at {shown} {what}."
        )

    @staticmethod
    def _abort(
        request: web.Request,
        response: web.StreamResponse,
        exchange: _Exchange,
        err: BaseException,
    ) -> web.StreamResponse:
        """The upstream failed mid-response: cut the client's connection so it cannot mistake
        the truncated body for a complete one."""
        _LOGGER.warning("Upstream failed mid-response: %r", err)
        exchange.outcome = "error"
        response.force_close()
        if request.transport is not None:
            request.transport.close()
        return response

    def _finish(self, window: OpenWindow, exchange: _Exchange) -> None:
        counts = exchange.reader.finish() if exchange.reader is not None else TokenCounts()
        counts = within_window(counts, time.monotonic() - window.started_mono)
        ttft = exchange.ttft_s
        if ttft is None and exchange.outcome == "ok":
            ttft = counts.upstream_ttft_s
        self.service.finish_later(
            window,
            outcome=exchange.outcome,
            http_status=exchange.http_status,
            prompt_tokens=counts.prompt_tokens,
            output_tokens=counts.output_tokens,
            tokens_estimated=counts.estimated and counts.output_tokens is not None,
            ttft_s=ttft,
            model=counts.model,
            prompt_s=counts.upstream_ttft_s,
        )


def _named_in_connection(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> frozenset[str]:
    """Header names listed in `Connection`: hop-by-hop for this connection only (RFC 9110 7.6.1)."""
    return frozenset(
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
        if token.strip()
    )
