"""The documents of the agent's API (v1), read by the types of their fields.

Each model is a frozen dataclass, and `Model.from_dict` reads a JSON object into it field by
field, choosing the reader from the field's annotation: a new field is one line. A field with a
default may be left out (agents older than it); `when_absent` gives a nested document to assume
when the agent leaves it out, `read_with` a reader of its own for the few fields derived from
others. Every reader raises ValueError on a missing or mistyped field (the client turns that into
a JoulegateResponseError). Each model that keeps the JSON object it came from has it in `raw`
(for diagnostics and for persisting ledger rows). No Home Assistant imports.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, get_args, get_origin, get_type_hints

type Reader = Callable[[Mapping[str, Any]], Any]

# --------------------------------------------------------------------------- #
# Readers of one field: every one raises ValueError on a missing or mistyped field.


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


_REQUIRED: dict[Any, Callable[[Mapping[str, Any], str], Any]] = {
    str: _str,
    int: _int,
    float: _float,
}
_OPTIONAL: dict[Any, Callable[[Mapping[str, Any], str], Any]] = {
    str: _opt_str,
    int: _opt_int,
    float: _opt_float,
    datetime: _opt_time,
}


def read_with(read: Reader) -> dict[str, Any]:
    """Field metadata: the field is read from the whole object (a figure derived from others)."""
    return {"read": read}


def when_absent(document: Mapping[str, Any]) -> dict[str, Any]:
    """Field metadata: the nested document assumed when the agent leaves it out or sends null."""
    return {"absent": document}


# Field metadata: the field holds the JSON object the model was read from.
RAW = {"raw": True}


class Model:
    """A document of the agent's API; subclasses name it (`what`) for the error messages."""

    what: ClassVar[str]

    def __init_subclass__(cls, *, what: str, **kwargs: Any) -> None:
        """Remember the document's name."""
        super().__init_subclass__(**kwargs)
        cls.what = what

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Read the document; ValueError names the first field that is missing or mistyped."""
        obj = _obj(data, cls.what)
        return cls(**{name: read(obj) for name, read in _readers(cls)})


_READERS: dict[type[Model], tuple[tuple[str, Reader], ...]] = {}


def _readers(model: type[Model]) -> tuple[tuple[str, Reader], ...]:
    """Each field's reader, worked out from the annotations once per model."""
    if (readers := _READERS.get(model)) is not None:
        return readers
    hints = get_type_hints(model)
    readers = _READERS[model] = tuple(
        (item.name, _reader(model, item, hints[item.name]))
        for item in dataclasses.fields(model)  # type: ignore[arg-type]
    )
    return readers


def _reader(model: type[Model], item: dataclasses.Field[Any], hint: Any) -> Reader:
    """The reader of one field, chosen by its annotation (and its default, if it has one)."""
    if item.metadata.get("raw"):
        return lambda obj: obj
    if (read := item.metadata.get("read")) is not None:
        return read  # type: ignore[no-any-return]
    key = item.name
    optional = get_origin(hint) is types.UnionType and type(None) in get_args(hint)
    if optional:
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
    if isinstance(hint, type) and issubclass(hint, Model):
        return _document_reader(hint, key, optional, item.metadata.get("absent"))
    if get_origin(hint) is tuple and isinstance(item_type := get_args(hint)[0], type):
        if issubclass(item_type, Model):
            return lambda obj: tuple(item_type.from_dict(each) for each in _list(obj, key))
        if item_type is str:
            return lambda obj: tuple(str(each) for each in _list(obj, key))
    default = item.default
    if hint is bool:
        if optional:
            return lambda obj: None if obj.get(key) is None else _bool(obj, key)
        fallback = None if default is dataclasses.MISSING else default
        return lambda obj: _bool(obj, key, fallback)
    if optional and hint in _OPTIONAL:
        read_optional = _OPTIONAL[hint]
        return lambda obj: read_optional(obj, key)
    if default is not dataclasses.MISSING and hint in _OPTIONAL:
        # A count that agents older than it leave out or send as null.
        read_count = _OPTIONAL[hint]
        return lambda obj: default if (value := read_count(obj, key)) is None else value
    if hint in _REQUIRED:
        read_required = _REQUIRED[hint]
        return lambda obj: read_required(obj, key)
    raise TypeError(f"{model.__name__}.{key}: no reader for {hint!r}")


def _document_reader(
    model: type[Model], key: str, optional: bool, absent: Mapping[str, Any] | None
) -> Reader:
    if optional:
        return lambda obj: None if obj.get(key) is None else model.from_dict(obj[key])
    if absent is not None:
        return lambda obj: model.from_dict(obj.get(key) or absent)
    return lambda obj: model.from_dict(_req(obj, key))


# --------------------------------------------------------------------------- #
# The documents.


@dataclass(frozen=True, kw_only=True)
class Health(Model, what="health"):
    """GET /api/v1/health."""

    status: str
    service: str
    api_version: int
    device_id: str


@dataclass(frozen=True, kw_only=True)
class Board(Model, what="board"):
    """The board the agent runs on."""

    manufacturer: str
    model: str
    simulated: bool = False
    power_modes: bool | None = None  # None: an agent from before it said whether it has any


@dataclass(frozen=True, kw_only=True)
class RailInfo(Model, what="rail"):
    """A rail a power source measures."""

    name: str
    whole_board: bool = False


@dataclass(frozen=True, kw_only=True)
class PowerSource(Model, what="source"):
    """A power source the agent reads."""

    kind: str
    path: str | None
    boundary: str | None
    rails: tuple[RailInfo, ...]


@dataclass(frozen=True, kw_only=True)
class Info(Model, what="info"):
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
    raw: Mapping[str, Any] = field(repr=False, compare=False, metadata=RAW)


@dataclass(frozen=True, kw_only=True)
class RailPower(Model, what="rail"):
    """A rail's present reading."""

    name: str
    power_w: float | None
    voltage_v: float | None
    current_a: float | None
    available: bool = True


@dataclass(frozen=True, kw_only=True)
class Power(Model, what="power"):
    """Board power and the rails it comes from."""

    board_w: float | None
    boundary: str | None
    rails: tuple[RailPower, ...]

    def rail(self, name: str) -> RailPower | None:
        """Return the reading of one rail, if the agent reports it."""
        return next((rail for rail in self.rails if rail.name == name), None)


@dataclass(frozen=True, kw_only=True)
class Energy(Model, what="energy"):
    """Lifetime energy counters (never decrease, survive agent restarts)."""

    board_wh: float
    inference_wh: float
    marginal_inference_wh: float


def _zones(obj: Mapping[str, Any]) -> dict[str, float]:
    zones = _obj(obj.get("zones", {}), "thermal.zones")
    return {str(name): _num(value, name) for name, value in zones.items()}


@dataclass(frozen=True, kw_only=True)
class Thermal(Model, what="thermal"):
    """Thermal zones in degrees Celsius."""

    zones: Mapping[str, float] = field(metadata=read_with(_zones))
    max_c: float | None


@dataclass(frozen=True, kw_only=True)
class Throttling(Model, what="throttling"):
    """Whether the board is throttling, and why."""

    active: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PowerMode(Model, what="power_mode"):
    """The nvpmodel power mode."""

    id: int
    name: str


def _wh(obj: Mapping[str, Any]) -> float:
    """The row's Wh, worked out from its joules where an agent does not send it."""
    wh = _opt_float(obj, "wh")
    return _float(obj, "energy_j") / 3600.0 if wh is None else wh


def _gate_open(obj: Mapping[str, Any]) -> bool | None:
    """Whether the gate was open for the row; anything but a boolean is not known."""
    value = obj.get("gate_open")
    return value if isinstance(value, bool) else None


@dataclass(frozen=True, kw_only=True)
class Inference(Model, what="inference"):
    """One ledger row: a finished inference window."""

    id: int
    window_id: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float
    ttft_s: float | None
    prompt_tokens: int | None
    output_tokens: int = 0
    tokens_estimated: bool = False
    energy_j: float
    marginal_j: float | None
    avg_w: float | None
    peak_w: float | None
    j_per_token: float | None
    wh: float = field(metadata=read_with(_wh))
    tokens_per_s: float | None
    model: str | None
    route: str | None
    http_status: int | None
    outcome: str
    gate_open: bool | None = field(metadata=read_with(_gate_open))
    boundary: str | None
    energy_error_j: float | None
    """How far energy_j can be off (J); None from agents older than the bound."""
    batch_id: str | None = None
    """The batch the request belongs to; None for interactive traffic (and older agents)."""
    raw: Mapping[str, Any] = field(repr=False, compare=False, metadata=RAW)


@dataclass(frozen=True, kw_only=True)
class InferenceCounters(Model, what="inference"):
    """Lifetime inference counters and the newest row."""

    in_flight: int = 0
    count: int
    output_tokens: int
    last: Inference | None


@dataclass(frozen=True, kw_only=True)
class Gate(Model, what="gate"):
    """Whether the agent admits inference."""

    open: bool
    source: str | None
    reason: str | None
    lease_expires_at: datetime | None
    lease_remaining_s: float | None
    fallback_open: bool = False
    changed_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False, metadata=RAW)


@dataclass(frozen=True, kw_only=True)
class Queue(Model, what="queue"):
    """Deferred requests waiting for the gate to open."""

    length: int
    capacity: int | None
    oldest_wait_s: float | None


@dataclass(frozen=True, kw_only=True)
class Storage(Model, what="storage"):
    """Whether the agent can write its ledger; rows it cannot write wait in a memory spool."""

    healthy: bool
    pending_rows: int
    spool_capacity: int
    error: str | None


@dataclass(frozen=True, kw_only=True)
class BatchQueue(Model, what="batches"):
    """The agent's batch queue as a whole (/status `batches`): what Home Assistant plans with."""

    requests_waiting: int = 0
    requests_running: int = 0
    batches_in_progress: int = 0
    energy_needed_wh: float | None = None
    next_deadline: datetime | None
    latest_start: datetime | None
    longest_request_s: float | None
    late: int = 0
    concurrency: int = 1
    admitted: bool = False


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """A batch's metadata: OpenAI's string pairs (anything else in it is left out)."""
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError("field 'metadata' is not an object")
    return {str(key): value for key, value in metadata.items() if isinstance(value, str)}


@dataclass(frozen=True, kw_only=True)
class RequestCounts(Model, what="request_counts"):
    """How many of a batch's requests there are, and how many have finished."""

    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, kw_only=True)
class BatchOutlook(Model, what="joulegate"):
    """A batch's `joulegate` block: its energy so far and what it still needs."""

    deadline: datetime | None
    energy_wh: float = 0.0
    requests_done: int = 0
    requests_left: int = 0
    energy_needed_wh: float | None
    run_time_needed_s: float | None
    longest_request_s: float | None
    latest_start: datetime | None
    on_time: bool | None


@dataclass(frozen=True, kw_only=True)
class Batch(Model, what="batch"):
    """An OpenAI Batch object as the agent serves it, with its `joulegate` block."""

    id: str
    status: str
    metadata: Mapping[str, str] = field(metadata=read_with(_metadata))
    request_counts: RequestCounts = field(metadata=when_absent({}))
    joulegate: BatchOutlook | None


@dataclass(frozen=True, kw_only=True)
class BatchPage(Model, what="batch list"):
    """GET /v1/batches: a page of batches, newest first."""

    data: tuple[Batch, ...]
    has_more: bool = False
    last_id: str | None


def _idle_baseline(obj: Mapping[str, Any]) -> float | None:
    return _opt_float(_obj(obj.get("idle") or {}, "idle"), "baseline_w")


@dataclass(frozen=True, kw_only=True)
class Status(Model, what="status"):
    """GET /api/v1/status: the live state of the rig."""

    time: datetime | None
    uptime_s: float | None
    power: Power
    energy: Energy
    idle_baseline_w: float | None = field(metadata=read_with(_idle_baseline))
    thermal: Thermal = field(metadata=when_absent({}))
    throttling: Throttling = field(metadata=when_absent({"active": False}))
    power_mode: PowerMode | None
    inference: InferenceCounters
    gate: Gate
    queue: Queue = field(metadata=when_absent({"length": 0}))
    storage: Storage | None  # None from an agent that does not report it
    batches: BatchQueue | None  # None from an agent without the batch queue
    raw: Mapping[str, Any] = field(repr=False, compare=False, metadata=RAW)


@dataclass(frozen=True, kw_only=True)
class InferencePage(Model, what="inferences"):
    """GET /api/v1/inferences: a page of ledger rows after a cursor."""

    items: tuple[Inference, ...]
    cursor: int
    has_more: bool = False
    ledger_id: str | None = None  # which ledger the rows are of (None: an older agent)


type JoulegateEvent = Inference | Gate | Batch


@dataclass(frozen=True, kw_only=True)
class PowerLevel(Model, what="power level"):
    """One rung of the agent's ladder (index 0 draws least)."""

    index: int
    name: str
    description: str


@dataclass(frozen=True, kw_only=True)
class PowerModelCost(Model, what="model cost"):
    """What a level costs with one model, and how many inferences each figure rests on."""

    model: str | None
    inferences: int
    tokens_per_s: float | None
    avg_w_above_idle: float | None
    j_per_token: float | None
    marginal_inferences: int


@dataclass(frozen=True, kw_only=True)
class PowerCost(Model, what="level cost"):
    """What a level costs, per model; `measured` false while no inference ran at it."""

    level: str
    measured: bool
    inferences: int
    models: tuple[PowerModelCost, ...]


@dataclass(frozen=True, kw_only=True)
class PowerKnob(Model, what="power knob"):
    """A setting the levels change, and why the agent cannot set it (None: it can)."""

    id: str
    in_ladder: bool
    cannot_set: str | None


@dataclass(frozen=True, kw_only=True)
class PowerLevels(Model, what="power"):
    """GET and PUT /api/v1/power: the ladder, the level in force and what each level costs."""

    levels: tuple[PowerLevel, ...]
    current: str | None  # None: the box's own settings
    source: str
    default: str | None
    dwell_s: float
    next_change_in_s: float
    read_only: bool
    knobs: tuple[PowerKnob, ...]
    table: tuple[PowerCost, ...]

    @property
    def settable(self) -> bool:
        """Whether Home Assistant can set the levels (the agent may write every knob they use)."""
        used = [knob for knob in self.knobs if knob.in_ladder]
        return bool(self.levels) and not self.read_only and not any(k.cannot_set for k in used)
