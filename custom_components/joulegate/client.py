"""Asynchronous client for the Joulegate agent's HTTP API (v1), with its event stream.

Self-contained: it depends on aiohttp and yarl only (no Home Assistant imports), with its errors
in `exceptions` and its documents in `models`, so the three can be lifted into a library of their
own. The caller injects the aiohttp session and owns it.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
from yarl import URL

from .exceptions import (
    JoulegateAuthenticationError,
    JoulegateConnectionError,
    JoulegateNotAgentError,
    JoulegateResponseError,
)
from .models import (
    Batch,
    BatchPage,
    Gate,
    Health,
    Inference,
    InferencePage,
    Info,
    JoulegateEvent,
    PowerLevels,
    Status,
)

API_PREFIX = "/api/v1"
OPENAI_PREFIX = "/v1"  # the agent's OpenAI-compatible routes (the batch queue)
ACTIVE_BATCH_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
BATCH_PAGE = 100
AGENT_SERVICE = "joulegate-agent"
DEFAULT_REQUEST_TIMEOUT = 10.0
# The agent sends a keep-alive comment every 15 s; twice that without a byte
# means the connection is dead.
EVENT_STREAM_READ_TIMEOUT = 45.0


def _parse[M](parser: Callable[[Any], M], data: Any) -> M:
    """Run a model parser and turn a malformed body into a client error."""
    try:
        return parser(data)
    except (ValueError, TypeError) as err:
        raise JoulegateResponseError(f"Unexpected response from the agent: {err}") from err


class JoulegateClient:
    """Talks to one Joulegate agent."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str | None,
        session: aiohttp.ClientSession,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        """Create a client; the session is the caller's and is never closed here."""
        self.host = host
        self.port = port
        self._token = token
        self._session = session
        self._request_timeout = request_timeout

    @property
    def base_url(self) -> URL:
        """The agent's base URL (what a browser opens)."""
        return URL.build(scheme="http", host=self.host, port=self.port)

    def _url(self, path: str, prefix: str = API_PREFIX) -> URL:
        return self.base_url.with_path(f"{prefix}{path}")

    def _headers(self, *, auth: bool, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        if auth:
            if not self._token:
                raise JoulegateAuthenticationError("No token configured")
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    @staticmethod
    async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
        if response.status < 400:
            return
        code: str | None = None
        message = response.reason or f"HTTP {response.status}"
        try:
            body = await response.json(content_type=None)
        except (ValueError, aiohttp.ClientError):
            body = None
        if isinstance(body, Mapping):
            error = body.get("error")
            if isinstance(error, Mapping):  # OpenAI's shape, on the batch routes
                body = error
                error = error.get("code")
            if isinstance(error, str):
                code = error
            if isinstance(body.get("message"), str):
                message = body["message"]
        if response.status in (401, 403):
            raise JoulegateAuthenticationError(message)
        raise JoulegateResponseError(
            f"The agent answered HTTP {response.status}: {message}",
            status=response.status,
            code=code,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        prefix: str = API_PREFIX,
    ) -> Any:
        headers = self._headers(auth=auth)
        try:
            async with asyncio.timeout(self._request_timeout):
                async with self._session.request(
                    method, self._url(path, prefix), headers=headers, params=params, json=body
                ) as response:
                    await self._raise_for_status(response)
                    if response.content_type != "application/json":
                        raise JoulegateNotAgentError(
                            f"{path} answered {response.content_type!r}, not JSON"
                        )
                    try:
                        return await response.json()
                    except ValueError as err:
                        raise JoulegateNotAgentError(f"{path} did not answer valid JSON") from err
        except TimeoutError as err:
            raise JoulegateConnectionError(
                f"Timed out talking to the agent at {self.host}"
            ) from err
        except (aiohttp.ClientError, socket.gaierror) as err:
            raise JoulegateConnectionError(
                f"Could not talk to the agent at {self.host}:{self.port}: {err}"
            ) from err

    async def health(self) -> Health:
        """Check that a Joulegate agent answers (no token needed)."""
        try:
            data = await self._request("GET", "/health", auth=False)
        except JoulegateResponseError as err:
            raise JoulegateNotAgentError(
                f"{self.host}:{self.port} has no Joulegate health route"
            ) from err
        try:
            health = Health.from_dict(data)
        except (ValueError, TypeError) as err:
            raise JoulegateNotAgentError(f"Not a Joulegate health document: {err}") from err
        if health.service != AGENT_SERVICE:
            raise JoulegateNotAgentError(f"The service there is {health.service!r}")
        return health

    async def info(self) -> Info:
        """Fetch the agent's identity and what it measures."""
        return _parse(Info.from_dict, await self._request("GET", "/info"))

    async def status(self) -> Status:
        """Fetch the rig's live status."""
        return _parse(Status.from_dict, await self._request("GET", "/status"))

    async def inferences(self, after: int = 0, limit: int = 100) -> InferencePage:
        """Fetch ledger rows with an id greater than `after`, oldest first."""
        params = {"after": str(after), "limit": str(limit)}
        return _parse(
            InferencePage.from_dict,
            await self._request("GET", "/inferences", params=params),
        )

    async def get_gate(self) -> Gate:
        """Fetch the gate."""
        return _parse(Gate.from_dict, await self._request("GET", "/gate"))

    async def set_gate(
        self, *, open: bool, lease_s: int, reason: str, batch_only: bool = False
    ) -> Gate:
        """Open or close the gate for a lease; the agent reverts when it runs out. `batch_only`:
        the lease admits batch work only (scope `batch`), interactive traffic stays out."""
        body: dict[str, Any] = {"open": open, "lease_s": lease_s, "reason": reason}
        if batch_only:
            body["scope"] = "batch"
        return _parse(Gate.from_dict, await self._request("PUT", "/gate", body=body))

    async def get_power(self) -> PowerLevels:
        """Fetch the power levels, the level in force and the cost table."""
        return _parse(PowerLevels.from_dict, await self._request("GET", "/power"))

    async def set_power(self, *, level: str, lease_s: int, reason: str) -> PowerLevels:
        """Hold a power level for a lease; the agent falls back to its default when it runs out.

        A change sooner than the agent's dwell time after the last is refused (a
        JoulegateResponseError with code "dwell"); renewing the level in force never is.
        """
        body = {"level": level, "lease_s": lease_s, "reason": reason}
        return _parse(PowerLevels.from_dict, await self._request("PUT", "/power", body=body))

    async def active_batches(self, expected: int) -> list[Batch]:
        """The batches still to run, with their metadata and `joulegate` blocks: the agent's list
        (newest first) read page by page until `expected` active ones are found (the count
        /status gives) or the list ends; finished batches are kept for days, so this stops early."""
        found: list[Batch] = []
        after: str | None = None
        while len(found) < expected:
            params = {"limit": str(BATCH_PAGE)} | ({} if after is None else {"after": after})
            page = _parse(
                BatchPage.from_dict,
                await self._request("GET", "/batches", params=params, prefix=OPENAI_PREFIX),
            )
            found.extend(b for b in page.data if b.status in ACTIVE_BATCH_STATUSES)
            if not page.has_more or not page.data:
                break
            after = page.data[-1].id
        return found

    async def events(self) -> AsyncIterator[JoulegateEvent]:
        """Yield the agent's server-sent events as they come.

        `inference` events yield an Inference, `gate` events a Gate, `batch` events (a batch
        reached its end) a Batch; other events and keep-alive comments are skipped. The iterator
        ends when the agent closes the stream, and raises a JoulegateError when it breaks.
        """
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self._request_timeout,
            sock_read=EVENT_STREAM_READ_TIMEOUT,
        )
        headers = self._headers(auth=True, accept="text/event-stream")
        try:
            async with self._session.get(
                self._url("/events"), headers=headers, timeout=timeout
            ) as response:
                await self._raise_for_status(response)
                if response.content_type != "text/event-stream":
                    raise JoulegateNotAgentError(
                        f"/events answered {response.content_type!r}, not an event stream"
                    )
                event_type = "message"
                data_lines: list[str] = []
                async for raw_line in response.content:
                    line = raw_line.decode("utf-8", errors="replace").rstrip("\r\n")
                    if not line:
                        if data_lines and (
                            event := _parse_event(event_type, "\n".join(data_lines))
                        ):
                            yield event
                        event_type, data_lines = "message", []
                        continue
                    if line.startswith(":"):
                        continue
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        event_type = value
                    elif name == "data":
                        data_lines.append(value)
        except TimeoutError as err:
            raise JoulegateConnectionError("The event stream went quiet") from err
        except aiohttp.ClientError as err:
            raise JoulegateConnectionError(f"The event stream broke: {err}") from err
        except ValueError as err:  # aiohttp's reader refuses a line over its limit (128 KiB)
            raise JoulegateResponseError(f"Unreadable event stream: {err}") from err


_EVENTS: dict[str, Callable[[Any], JoulegateEvent]] = {
    "inference": Inference.from_dict,
    "gate": Gate.from_dict,
    "batch": Batch.from_dict,
}


def _parse_event(event_type: str, data: str) -> JoulegateEvent | None:
    parser = _EVENTS.get(event_type)
    if parser is None:
        return None
    try:
        payload = json.loads(data)
    except ValueError as err:
        raise JoulegateResponseError(f"Unreadable {event_type} event: {err}") from err
    return _parse(parser, payload)
