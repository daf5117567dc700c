"""Asynchronous client for the Joulegate agent's HTTP API (v1).

Self-contained: it depends on aiohttp and yarl only (no Home Assistant imports),
so it can be lifted into a library of its own. The caller injects the aiohttp
session and owns it.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

import aiohttp
from yarl import URL

API_PREFIX = "/api/v1"
AGENT_SERVICE = "joulegate-agent"
DEFAULT_REQUEST_TIMEOUT = 10.0
# The agent sends a keep-alive comment every 15 s; twice that without a byte
# means the connection is dead.
EVENT_STREAM_READ_TIMEOUT = 45.0


class JoulegateError(Exception):
    """Base error of the Joulegate client."""


class JoulegateConnectionError(JoulegateError):
    """The agent could not be reached, or the connection broke or timed out."""


class JoulegateAuthenticationError(JoulegateError):
    """The agent refused the bearer token (HTTP 401 or 403)."""


class JoulegateNotAgentError(JoulegateError):
    """Something answered at that address, but it is not a Joulegate agent."""


class JoulegateResponseError(JoulegateError):
    """The agent answered with an error status or a body the client cannot read."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        """Keep the HTTP status and the agent's machine-readable error code."""
        super().__init__(message)
        self.status = status
        self.code = code


# --------------------------------------------------------------------------- #
# Parsing helpers: every one raises ValueError on a missing or mistyped field.


def _obj(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected an object, got {type(data).__name__}")
    return data


def _req(data: Mapping[str, Any], key: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise ValueError(f"missing field {key!r}") from None


def _str(data: Mapping[str, Any], key: str) -> str:
    value = _req(data, key)
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} is not a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} is not a string")
    return value


def _num(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field {key!r} is not a number")
    return float(value)


def _float(data: Mapping[str, Any], key: str) -> float:
    return _num(_req(data, key), key)


def _opt_float(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    return None if value is None else _num(value, key)


def _int(data: Mapping[str, Any], key: str) -> int:
    value = _req(data, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {key!r} is not an integer")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {key!r} is not an integer")
    return value


def _bool(data: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"field {key!r} is not a boolean")
    return value


def _opt_time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = _opt_str(data, key)
    if value is None:
        return None
    # Python 3.11+ reads both "+00:00" and "Z"; a time without an offset is UTC, as on the agent.
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"field {key!r} is not a list")
    return value


def _parse[M](parser: Callable[[Any], M], data: Any) -> M:
    """Run a model parser and turn a malformed body into a client error."""
    try:
        return parser(data)
    except (ValueError, TypeError) as err:
        raise JoulegateResponseError(f"Unexpected response from the agent: {err}") from err


# --------------------------------------------------------------------------- #
# Models. Each keeps the JSON object it came from in `raw` (for diagnostics and
# for persisting ledger rows) and is otherwise immutable and typed.


@dataclass(frozen=True, kw_only=True)
class Health:
    """GET /api/v1/health."""

    status: str
    service: str
    api_version: int
    device_id: str

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the health document."""
        obj = _obj(data, "health")
        return cls(
            status=_str(obj, "status"),
            service=_str(obj, "service"),
            api_version=_int(obj, "api_version"),
            device_id=_str(obj, "device_id"),
        )


@dataclass(frozen=True, kw_only=True)
class Board:
    """The board the agent runs on."""

    manufacturer: str
    model: str
    simulated: bool
    power_modes: bool | None = None  # None: an agent from before it said whether it has any

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a board object."""
        obj = _obj(data, "board")
        return cls(
            manufacturer=_str(obj, "manufacturer"),
            model=_str(obj, "model"),
            simulated=_bool(obj, "simulated", False),
            power_modes=None if obj.get("power_modes") is None else _bool(obj, "power_modes"),
        )


@dataclass(frozen=True, kw_only=True)
class RailInfo:
    """A rail a power source measures."""

    name: str
    whole_board: bool

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a rail description."""
        obj = _obj(data, "rail")
        return cls(name=_str(obj, "name"), whole_board=_bool(obj, "whole_board", False))


@dataclass(frozen=True, kw_only=True)
class PowerSource:
    """A power source the agent reads."""

    kind: str
    path: str | None
    boundary: str | None
    rails: tuple[RailInfo, ...]

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a source description."""
        obj = _obj(data, "source")
        return cls(
            kind=_str(obj, "kind"),
            path=_opt_str(obj, "path"),
            boundary=_opt_str(obj, "boundary"),
            rails=tuple(RailInfo.from_dict(rail) for rail in _list(obj, "rails")),
        )


@dataclass(frozen=True, kw_only=True)
class Info:
    """GET /api/v1/info: identity of the agent and what it measures."""

    device_id: str
    hostname: str
    board: Board
    agent_version: str
    api_version: int
    boundary: str | None
    sample_rate_hz: float | None
    sources: tuple[PowerSource, ...]
    ledger_id: str | None  # None: an agent older than ledger identities
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the info document."""
        obj = _obj(data, "info")
        return cls(
            device_id=_str(obj, "device_id"),
            hostname=_str(obj, "hostname"),
            board=Board.from_dict(_req(obj, "board")),
            agent_version=_str(obj, "agent_version"),
            api_version=_int(obj, "api_version"),
            boundary=_opt_str(obj, "boundary"),
            sample_rate_hz=_opt_float(obj, "sample_rate_hz"),
            sources=tuple(PowerSource.from_dict(src) for src in _list(obj, "sources")),
            ledger_id=_opt_str(obj, "ledger_id"),
            raw=obj,
        )


@dataclass(frozen=True, kw_only=True)
class RailPower:
    """A rail's present reading."""

    name: str
    power_w: float | None
    voltage_v: float | None
    current_a: float | None
    available: bool

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a rail reading."""
        obj = _obj(data, "rail")
        return cls(
            name=_str(obj, "name"),
            power_w=_opt_float(obj, "power_w"),
            voltage_v=_opt_float(obj, "voltage_v"),
            current_a=_opt_float(obj, "current_a"),
            available=_bool(obj, "available", True),
        )


@dataclass(frozen=True, kw_only=True)
class Power:
    """Board power and the rails it comes from."""

    board_w: float | None
    boundary: str | None
    rails: tuple[RailPower, ...]

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the power object."""
        obj = _obj(data, "power")
        return cls(
            board_w=_opt_float(obj, "board_w"),
            boundary=_opt_str(obj, "boundary"),
            rails=tuple(RailPower.from_dict(rail) for rail in _list(obj, "rails")),
        )

    def rail(self, name: str) -> RailPower | None:
        """Return the reading of one rail, if the agent reports it."""
        return next((rail for rail in self.rails if rail.name == name), None)


@dataclass(frozen=True, kw_only=True)
class Energy:
    """Lifetime energy counters (never decrease, survive agent restarts)."""

    board_wh: float
    inference_wh: float
    marginal_inference_wh: float

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the energy object."""
        obj = _obj(data, "energy")
        return cls(
            board_wh=_float(obj, "board_wh"),
            inference_wh=_float(obj, "inference_wh"),
            marginal_inference_wh=_float(obj, "marginal_inference_wh"),
        )


@dataclass(frozen=True, kw_only=True)
class Thermal:
    """Thermal zones in degrees Celsius."""

    zones: Mapping[str, float]
    max_c: float | None

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the thermal object."""
        obj = _obj(data, "thermal")
        zones = _obj(obj.get("zones", {}), "thermal.zones")
        return cls(
            zones={str(name): _num(value, name) for name, value in zones.items()},
            max_c=_opt_float(obj, "max_c"),
        )


@dataclass(frozen=True, kw_only=True)
class Throttling:
    """Whether the board is throttling, and why."""

    active: bool
    reasons: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the throttling object."""
        obj = _obj(data, "throttling")
        return cls(
            active=_bool(obj, "active"),
            reasons=tuple(str(reason) for reason in _list(obj, "reasons")),
        )


@dataclass(frozen=True, kw_only=True)
class PowerMode:
    """The nvpmodel power mode."""

    id: int
    name: str

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the power mode object."""
        obj = _obj(data, "power_mode")
        return cls(id=_int(obj, "id"), name=_str(obj, "name"))


@dataclass(frozen=True, kw_only=True)
class Inference:
    """One ledger row: a finished inference window."""

    id: int
    window_id: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float
    ttft_s: float | None
    prompt_tokens: int | None
    output_tokens: int
    tokens_estimated: bool
    energy_j: float
    marginal_j: float | None
    avg_w: float | None
    peak_w: float | None
    j_per_token: float | None
    wh: float
    tokens_per_s: float | None
    model: str | None
    route: str | None
    http_status: int | None
    outcome: str
    gate_open: bool | None
    boundary: str | None
    energy_error_j: float | None
    """How far energy_j can be off (J); None from agents older than the bound."""
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a ledger row."""
        obj = _obj(data, "inference")
        energy_j = _float(obj, "energy_j")
        wh = _opt_float(obj, "wh")
        gate_open = obj.get("gate_open")
        return cls(
            id=_int(obj, "id"),
            window_id=_opt_str(obj, "window_id"),
            started_at=_opt_time(obj, "started_at"),
            ended_at=_opt_time(obj, "ended_at"),
            duration_s=_float(obj, "duration_s"),
            ttft_s=_opt_float(obj, "ttft_s"),
            prompt_tokens=_opt_int(obj, "prompt_tokens"),
            output_tokens=_opt_int(obj, "output_tokens") or 0,
            tokens_estimated=_bool(obj, "tokens_estimated", False),
            energy_j=energy_j,
            marginal_j=_opt_float(obj, "marginal_j"),
            avg_w=_opt_float(obj, "avg_w"),
            peak_w=_opt_float(obj, "peak_w"),
            j_per_token=_opt_float(obj, "j_per_token"),
            wh=energy_j / 3600.0 if wh is None else wh,
            tokens_per_s=_opt_float(obj, "tokens_per_s"),
            model=_opt_str(obj, "model"),
            route=_opt_str(obj, "route"),
            http_status=_opt_int(obj, "http_status"),
            outcome=_str(obj, "outcome"),
            gate_open=gate_open if isinstance(gate_open, bool) else None,
            boundary=_opt_str(obj, "boundary"),
            energy_error_j=_opt_float(obj, "energy_error_j"),
            raw=obj,
        )


@dataclass(frozen=True, kw_only=True)
class InferenceCounters:
    """Lifetime inference counters and the newest row."""

    in_flight: int
    count: int
    output_tokens: int
    last: Inference | None

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the inference object of the status document."""
        obj = _obj(data, "inference")
        last = obj.get("last")
        return cls(
            in_flight=_opt_int(obj, "in_flight") or 0,
            count=_int(obj, "count"),
            output_tokens=_int(obj, "output_tokens"),
            last=None if last is None else Inference.from_dict(last),
        )


@dataclass(frozen=True, kw_only=True)
class Gate:
    """Whether the agent admits inference."""

    open: bool
    source: str | None
    reason: str | None
    lease_expires_at: datetime | None
    lease_remaining_s: float | None
    fallback_open: bool
    changed_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a gate object."""
        obj = _obj(data, "gate")
        return cls(
            open=_bool(obj, "open"),
            source=_opt_str(obj, "source"),
            reason=_opt_str(obj, "reason"),
            lease_expires_at=_opt_time(obj, "lease_expires_at"),
            lease_remaining_s=_opt_float(obj, "lease_remaining_s"),
            fallback_open=_bool(obj, "fallback_open", False),
            changed_at=_opt_time(obj, "changed_at"),
            raw=obj,
        )


@dataclass(frozen=True, kw_only=True)
class Queue:
    """Deferred requests waiting for the gate to open."""

    length: int
    capacity: int | None
    oldest_wait_s: float | None

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the queue object."""
        obj = _obj(data, "queue")
        return cls(
            length=_int(obj, "length"),
            capacity=_opt_int(obj, "capacity"),
            oldest_wait_s=_opt_float(obj, "oldest_wait_s"),
        )


@dataclass(frozen=True, kw_only=True)
class Storage:
    """Whether the agent can write its ledger; rows it cannot write wait in a memory spool."""

    healthy: bool
    pending_rows: int
    spool_capacity: int
    error: str | None

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the storage object."""
        obj = _obj(data, "storage")
        return cls(
            healthy=_bool(obj, "healthy"),
            pending_rows=_int(obj, "pending_rows"),
            spool_capacity=_int(obj, "spool_capacity"),
            error=_opt_str(obj, "error"),
        )


@dataclass(frozen=True, kw_only=True)
class Status:
    """GET /api/v1/status: the live state of the rig."""

    time: datetime | None
    uptime_s: float | None
    power: Power
    energy: Energy
    idle_baseline_w: float | None
    thermal: Thermal
    throttling: Throttling
    power_mode: PowerMode | None
    inference: InferenceCounters
    gate: Gate
    queue: Queue
    storage: Storage | None  # None from an agent that does not report it
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse the status document."""
        obj = _obj(data, "status")
        idle = _obj(obj.get("idle") or {}, "idle")
        power_mode = obj.get("power_mode")
        storage = obj.get("storage")
        return cls(
            time=_opt_time(obj, "time"),
            uptime_s=_opt_float(obj, "uptime_s"),
            power=Power.from_dict(_req(obj, "power")),
            energy=Energy.from_dict(_req(obj, "energy")),
            idle_baseline_w=_opt_float(idle, "baseline_w"),
            thermal=Thermal.from_dict(obj.get("thermal") or {}),
            throttling=Throttling.from_dict(obj.get("throttling") or {"active": False}),
            power_mode=None if power_mode is None else PowerMode.from_dict(power_mode),
            inference=InferenceCounters.from_dict(_req(obj, "inference")),
            gate=Gate.from_dict(_req(obj, "gate")),
            queue=Queue.from_dict(obj.get("queue") or {"length": 0}),
            storage=None if storage is None else Storage.from_dict(storage),
            raw=obj,
        )


@dataclass(frozen=True, kw_only=True)
class InferencePage:
    """GET /api/v1/inferences: a page of ledger rows after a cursor."""

    items: tuple[Inference, ...]
    cursor: int
    has_more: bool
    ledger_id: str | None = None  # which ledger the rows are of (None: an older agent)

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a page of ledger rows."""
        obj = _obj(data, "inferences")
        return cls(
            items=tuple(Inference.from_dict(row) for row in _list(obj, "items")),
            cursor=_int(obj, "cursor"),
            has_more=_bool(obj, "has_more", False),
            ledger_id=_opt_str(obj, "ledger_id"),
        )


type JoulegateEvent = Inference | Gate


# --------------------------------------------------------------------------- #
# The client.


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

    def _url(self, path: str) -> URL:
        return self.base_url.with_path(f"{API_PREFIX}{path}")

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
            if isinstance(body.get("error"), str):
                code = body["error"]
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
    ) -> Any:
        headers = self._headers(auth=auth)
        try:
            async with asyncio.timeout(self._request_timeout):
                async with self._session.request(
                    method, self._url(path), headers=headers, params=params, json=body
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

    async def set_gate(self, *, open: bool, lease_s: int, reason: str) -> Gate:
        """Open or close the gate for a lease; the agent reverts when it runs out."""
        body = {"open": open, "lease_s": lease_s, "reason": reason}
        return _parse(Gate.from_dict, await self._request("PUT", "/gate", body=body))

    async def events(self) -> AsyncIterator[JoulegateEvent]:
        """Yield the agent's server-sent events as they come.

        `inference` events yield an Inference, `gate` events a Gate; other
        events and keep-alive comments are skipped. The iterator ends when the
        agent closes the stream, and raises a JoulegateError when it breaks.
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


def _parse_event(event_type: str, data: str) -> JoulegateEvent | None:
    if event_type not in ("inference", "gate"):
        return None
    try:
        payload = json.loads(data)
    except ValueError as err:
        raise JoulegateResponseError(f"Unreadable {event_type} event: {err}") from err
    if event_type == "inference":
        return _parse(Inference.from_dict, payload)
    return _parse(Gate.from_dict, payload)
