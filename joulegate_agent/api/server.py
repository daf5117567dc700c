"""The agent's HTTP server: aiohttp's, with the limits a service that anyone on the LAN can reach
needs before it checks a token.

aiohttp waits for a request head as long as a client likes and accepts connections until the
process runs out of file descriptors. About 1,100 half-open connections (slowloris) then stopped
the agent answering everyone, and its sampler from opening the rail files (metering lost), under
the 1,024 descriptors a systemd service gets by default. So:

- A request head must arrive within HEAD_TIMEOUT_S of its first byte, and a connection without
  a request in progress is closed after IDLE_TIMEOUT_S; a request body must arrive within
  BODY_TIMEOUT_S (`read_in_time`, 408).
- At most `connection_cap()` connections are open, sized from the descriptor limit so that each
  can have its upstream connection and FD_RESERVE descriptors stay free for the sampler, SQLite
  and the logs. A connection past the cap closes the connection that has waited longest without
  a request being worked on (a half-open head, a trickling body, an idle keep-alive), or itself
  when every other one is working.
- A client that leaves cancels its handler (`handler_cancellation`): a deferred request gives up
  its queue slot and a proxied one its upstream request; rows are written in tasks of their own.
- aiohttp's own errors (a malformed request: 400) are JSON like every other error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from joulegate_agent.api.errors import ApiError, json_error

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

HEAD_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0
"""Longer than HTTP clients keep an idle connection for reuse (aiohttp's 15 s, browsers' 60 s
at most), so the agent is rarely the side that closes one a client is about to reuse."""
BODY_TIMEOUT_S = 30.0
SWEEP_INTERVAL_S = 1.0
FD_RESERVE = 96
"""Descriptors kept free of client and upstream connections: the sampler's rail files, SQLite's
database, WAL and shared memory, thermal zones, logs, the event loop's own, mDNS sockets."""
MIN_CONNECTIONS = 8
MAX_CONNECTIONS = 8192


def fd_limit() -> int:
    """The process's soft RLIMIT_NOFILE (a very large number when unlimited)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(nofile: int | None = None) -> int:
    """Client connections the agent keeps open at most: half of what the reserve leaves, since
    each proxied request holds one client and one upstream connection."""
    available = (fd_limit() if nofile is None else nofile) - FD_RESERVE
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, available // 2))


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_connections: int
    head_timeout_s: float = HEAD_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S

    @classmethod
    def for_this_process(cls) -> ServerLimits:
        return cls(max_connections=connection_cap())


class _Connection:
    """What the guard knows of one connection."""

    __slots__ = ("head_started", "quiet_since", "receiving_body", "working")

    def __init__(self, now: float) -> None:
        self.quiet_since = now
        """Since when nothing has been worked on for it (opened, last request done, body begun)."""
        self.head_started: float | None = None
        self.working = 0
        self.receiving_body = False

    @property
    def evictable(self) -> bool:
        return self.working == 0 or self.receiving_body


class ConnectionGuard:
    """Counts connections, closes those that stall, and keeps their number under the cap."""

    def __init__(self, limits: ServerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._connections: dict[GuardedRequestHandler, _Connection] = {}
        self._closing: set[GuardedRequestHandler] = set()
        self._room = asyncio.Event()
        self._sweeper: asyncio.TimerHandle | None = None
        self.accepting = 0
        """Sockets accepted whose connection is not made yet: they hold descriptors too."""
        self.evicted = 0
        self.timed_out = 0

    def __len__(self) -> int:
        return len(self._connections)

    @property
    def full(self) -> bool:
        return len(self._connections) + self.accepting >= self.limits.max_connections

    async def wait_for_room(self) -> None:
        """Return once one more connection fits: close the one that has waited longest without
        a request being worked on, or, when every one is working, wait until one is not."""
        while self.full:
            self._room.clear()
            if not self._closing:
                self._evict_one()
            await self._room.wait()

    def opened(self, handler: GuardedRequestHandler) -> None:
        if len(self._connections) >= self.limits.max_connections:
            handler.force_close()  # not accepted through wait_for_room (a test's own site)
            return
        self._connections[handler] = _Connection(self._clock())
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL_S, self._sweep)

    def received(self, handler: GuardedRequestHandler) -> None:
        state = self._connections.get(handler)
        if state is not None and state.working == 0 and state.head_started is None:
            state.head_started = self._clock()

    def closed(self, handler: GuardedRequestHandler) -> None:
        self._connections.pop(handler, None)
        self._closing.discard(handler)
        self._room.set()

    def _evict_one(self) -> None:
        candidates = [(c.quiet_since, h) for h, c in self._connections.items() if c.evictable]
        if candidates:
            handler = min(candidates, key=lambda item: item[0])[1]
            self.evicted += 1
            self._closing.add(handler)
            handler.force_close()

    @contextlib.contextmanager
    def working(self, handler: GuardedRequestHandler) -> Iterator[None]:
        """A request of this connection is being worked on: it is neither stalled nor idle."""
        state = self._connections.get(handler)
        if state is None:
            yield
            return
        state.working += 1
        state.head_started = None
        try:
            yield
        finally:
            state.working -= 1
            state.quiet_since = self._clock()
            self._room.set()  # it may be evicted now

    @contextlib.contextmanager
    def receiving_body(self, handler: GuardedRequestHandler) -> Iterator[None]:
        """A handler waits for the body: the connection may be evicted meanwhile."""
        state = self._connections.get(handler)
        if state is None:
            yield
            return
        state.receiving_body = True
        state.quiet_since = self._clock()
        self._room.set()
        try:
            yield
        finally:
            state.receiving_body = False

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._clock()
        limits = self.limits
        for handler, state in list(self._connections.items()):
            if state.working:
                continue
            stalled = state.head_started is not None and (
                now - state.head_started > limits.head_timeout_s
            )
            if stalled or now - state.quiet_since > limits.idle_timeout_s:
                self.timed_out += 1
                handler.force_close()
        if self._connections:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL_S, self._sweep)


_REASONS = {400: "bad_request", 408: "request_timeout", 413: "request_too_large"}


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol, reporting to the guard, with JSON errors of its own."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.guard.opened(self)

    def data_received(self, data: bytes) -> None:
        self.guard.received(self)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.closed(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp itself refused (malformed: 400), or a handler's unexpected error."""
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:  # a client's mistake, not the agent's: no traceback in the log
            _LOGGER.debug("Refused a malformed request from %s: %s", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun; the error cannot be sent")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        if status >= 500:
            text = f"{phrase}: the agent failed on this request; its log says why."
        else:
            detail = (message or phrase or "malformed request").splitlines()[0]
            text = f"The request is not valid HTTP ({detail})."
        response = json_error(status, _REASONS.get(status, "internal_error"), text)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's protocol factory, making guarded connections that cancel their handler when the
    client leaves."""

    def __init__(self, base: web.Server, guard: ConnectionGuard, **handler_args: Any) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=True,
            **handler_args,
        )
        self.guard = guard
        self._handler_args = handler_args

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(
            self, self.guard, loop=asyncio.get_running_loop(), **self._handler_args
        )


class AgentRunner(web.AppRunner):
    """An AppRunner whose server is a GuardedServer (aiohttp offers no other way to choose the
    connection protocol than its runner's `_make_server`)."""

    def __init__(self, app: web.Application, limits: ServerLimits) -> None:
        super().__init__(app, access_log=None)
        self.guard = ConnectionGuard(limits)

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return GuardedServer(base, self.guard, access_log=None)

    async def cleanup(self) -> None:
        self.guard.stop()
        await super().cleanup()


class _Acceptor(asyncio.AbstractServer):
    """Accepts connections on listening sockets, one at a time and only while the guard has
    room: past the cap, newcomers wait in the kernel's backlog instead of taking descriptors
    (asyncio's own server accepts a whole backlog at once, and ran the agent out of them)."""

    def __init__(
        self,
        sockets: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        guard: ConnectionGuard,
    ) -> None:
        self._sockets = sockets
        self._factory = factory
        self._guard = guard
        self._loop = asyncio.get_running_loop()
        self._connecting: set[asyncio.Task[None]] = set()
        self._tasks = [self._loop.create_task(self._accept(sock)) for sock in sockets]

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for sock in self._sockets:
            sock.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def start_serving(self) -> None:
        """Serving from the start."""

    async def serve_forever(self) -> None:
        await self.wait_closed()

    def close_clients(self) -> None:
        """The runner's shutdown closes the connections."""

    def abort_clients(self) -> None:
        """The runner's shutdown closes the connections."""

    async def _accept(self, sock: socket.socket) -> None:
        while True:
            await self._guard.wait_for_room()
            try:
                conn, _address = await self._loop.sock_accept(sock)
            except OSError as err:  # EMFILE from something else, ECONNABORTED, ...
                _LOGGER.warning("Could not accept a connection (%s); retrying in a second", err)
                await asyncio.sleep(1.0)
                continue
            self._guard.accepting += 1
            task = self._loop.create_task(self._connect(conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()
        finally:
            self._guard.accepting -= 1


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass the runner's guard before they are accepted."""

    __slots__ = ("_host", "_port")

    def __init__(self, runner: AgentRunner, host: str, port: int, backlog: int = 1024) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        runner = self._runner
        assert isinstance(runner, AgentRunner)
        assert runner.server is not None
        self._server = _Acceptor(self._listen(), runner.server, runner.guard)

    def _listen(self) -> list[socket.socket]:
        addresses = {
            (family, address[:2])
            for family, _type, _proto, _name, address in socket.getaddrinfo(
                self._host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        }
        listening = []
        try:
            for family, address in sorted(addresses):
                sock = socket.create_server(address, family=family, backlog=self._backlog)
                sock.setblocking(False)
                listening.append(sock)
        except OSError:
            for sock in listening:
                sock.close()
            raise
        return listening


@web.middleware
async def connection_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Tell the guard a request of this connection is being worked on."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):
        return await handler(request)
    with protocol.guard.working(protocol):
        return await handler(request)


async def read_in_time(request: web.Request, reading: Awaitable[T]) -> T:
    """Await `reading` (of the request's body) within the body timeout: a trickling body would
    otherwise hold its connection, and a descriptor, for as long as its sender likes."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):
        return await reading
    guard = protocol.guard
    with guard.receiving_body(protocol):
        try:
            return await asyncio.wait_for(reading, guard.limits.body_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(
                408,
                "request_timeout",
                f"The request body did not arrive within {guard.limits.body_timeout_s:g} s.",
            ) from None
