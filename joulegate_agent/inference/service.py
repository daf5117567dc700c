"""Inference windows end to end: meter window -> ledger row -> event.

Every proxied request and every explicit window (`POST /api/v1/windows`) becomes one
`InferenceRow`. A window opens a meter window (which the simulated source sees as load), and when
it ends the meter is asked for its energy — that waits until the sampler has passed the end time —
then the row is committed to the ledger and only then published as an `inference` event.

The proxy finishes its windows in the background (`finish_later`), after the client has its last
byte, so metering never adds latency to a response; `drain()` waits for those.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from joulegate_agent.errors import JoulegateError
from joulegate_agent.inference.admission import Admission, ConcurrencyLimit, DeferralQueue
from joulegate_agent.inference.events import EventBus
from joulegate_agent.inference.gate import Gate, GateSnapshot
from joulegate_agent.metering.meter import Meter, WindowEnergy
from joulegate_agent.storage import clock
from joulegate_agent.storage.housekeeping import Housekeeping
from joulegate_agent.storage.ledger import InferenceRow, Ledger, Outcome
from joulegate_agent.storage.spool import LedgerWriter, SpoolFullError, UnsavedEnergy
from joulegate_agent.storage.store import Store

_LOGGER = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MAX_EXPLICIT_WINDOWS = 256
EXPLICIT_WINDOW_MAX_AGE_S = 24 * 3600.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# -- windows -----------------------------------------------------------------------------------


@dataclass(slots=True)
class OpenWindow:
    """A window in flight: what the row will say about its request, and its meter key."""

    window_id: str
    key: int
    started_at: datetime
    started_mono: float
    gate_open: bool
    model: str | None = None
    route: str | None = None
    label: str | None = None
    power_level: str | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    finished: bool = field(default=False)


class WindowNotFoundError(JoulegateError, KeyError):
    """No explicit window with that id is open."""


class TooManyWindowsError(JoulegateError):
    """MAX_EXPLICIT_WINDOWS explicit windows are already open."""


class InferenceService:
    """Owns the gate and admission (inference/admission.py), the ledger and the event bus."""

    def __init__(
        self,
        meter: Meter,
        store: Store,
        *,
        boundary: Callable[[], str] | str,
        gate_fallback_open: bool = False,
        queue_capacity: int = 32,
        max_concurrent_inferences: int | None = None,
        retention_days: int = 365,
        keepalive_s: float = KEEPALIVE_S,
        energy: UnsavedEnergy | None = None,
        clock_synced: Callable[[], bool | None] = clock.clock_synced,
    ) -> None:
        self.meter = meter
        self.store = store
        self.ledger = Ledger(store, retention_days=retention_days, synced=clock_synced)
        self.gate = Gate(fallback_open=gate_fallback_open)
        self.queue = DeferralQueue(self.gate, queue_capacity)
        self.limit = ConcurrencyLimit(max_concurrent_inferences)
        self.admission = Admission(self.gate, self.queue, self.limit)
        self.events = EventBus()
        self.keepalive_s = keepalive_s
        self._boundary = boundary
        self._explicit: dict[str, OpenWindow] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self.writer = LedgerWriter(
            self.ledger, publish=self._publish, energy=energy, checkpoint=store.checkpoint
        )
        self.housekeeping = Housekeeping(self.ledger, store, chores=self._end_stale_windows)
        self.power_level: Callable[[], str | None] = lambda: None
        """The power level in force now (the agent sets it when it has levels)."""
        self._remove_gate_listener = self.gate.add_listener(self._on_gate)

    @property
    def boundary(self) -> str:
        return self._boundary() if callable(self._boundary) else self._boundary

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start housekeeping: retention pruning now and hourly, stale explicit windows."""
        self.housekeeping.start()

    async def stop(self) -> None:
        """Finish what is in flight (rows get written), then release waiters and subscribers."""
        await self.housekeeping.stop()
        for window in list(self._explicit.values()):
            self.finish_later(window, outcome="cancelled")
        self._explicit.clear()
        await self.drain()
        await self.writer.close()
        self.queue.close()
        self.gate.close()
        self._remove_gate_listener()
        self.events.close()

    async def drain(self) -> None:
        """Wait until every window finishing in the background has its row committed.

        Only unfinished tasks are awaited: a finished one leaves `_pending` in a callback that
        runs on a later loop turn, and from Python 3.12 awaiting an already-finished gather does
        not yield, so looping on `_pending` itself could spin without letting that callback run.
        `asyncio.wait`, unlike `gather`, leaves the rows' tasks running if the drain is cancelled.
        """
        while unfinished := [task for task in self._pending if not task.done()]:
            await asyncio.wait(unfinished)

    # -- windows --------------------------------------------------------------------------------

    def open(
        self,
        *,
        gate_open: bool | None = None,
        model: str | None = None,
        route: str | None = None,
        label: str | None = None,
        work_visible: bool = False,
    ) -> OpenWindow:
        """Start a window now; `work_visible` when the caller records its tokens as they come
        (`meter.record_work`), so the energy it shares with other windows follows its work."""
        key = self.meter.open_window(work_visible=work_visible)
        return OpenWindow(
            window_id=uuid.uuid4().hex,
            key=key,
            started_at=utc_now(),
            started_mono=time.monotonic(),
            gate_open=self.gate.is_open if gate_open is None else gate_open,
            model=model,
            route=route,
            label=label,
            power_level=self.power_level(),
        )

    async def finish(
        self,
        window: OpenWindow,
        *,
        outcome: Outcome,
        http_status: int | None = None,
        prompt_tokens: int | None = None,
        output_tokens: int | None = None,
        tokens_estimated: bool = False,
        ttft_s: float | None = None,
        model: str | None = None,
        prompt_s: float | None = None,
    ) -> InferenceRow:
        """End the window now, meter it, commit its row, publish it; return the row.

        `prompt_s`: the server's own prompt processing time, placed just before the first token.
        """
        if window.finished:
            raise RuntimeError(f"window {window.window_id} already finished")
        window.finished = True
        ended_at = utc_now()
        if window.power_level != self.power_level():
            window.power_level = None  # the level changed during the window: it ran at neither
        energy = await self.meter.finish_window(window.key, prompt_s=prompt_s)
        row = self._row(
            window,
            energy,
            ended_at=ended_at,
            outcome=outcome,
            http_status=http_status,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            tokens_estimated=tokens_estimated,
            ttft_s=ttft_s,
            model=model,
        )
        return await self._commit(row)

    def finish_later(self, window: OpenWindow, **details: Any) -> asyncio.Task[InferenceRow]:
        """`finish` in the background (kept alive until done; `drain` waits for it)."""
        task = asyncio.ensure_future(self.finish(window, **details))
        self._track(task)
        return task

    def refuse_later(
        self,
        *,
        started_at: datetime,
        started_mono: float,
        http_status: int,
        gate_open: bool,
        model: str | None = None,
        route: str | None = None,
    ) -> asyncio.Task[InferenceRow]:
        """Record a request that was refused: a row with outcome `refused` and no energy
        (it never ran, so no meter window was opened for it)."""
        duration = max(0.0, time.monotonic() - started_mono)
        row = InferenceRow(
            window_id=uuid.uuid4().hex,
            started_at=started_at,
            ended_at=started_at + timedelta(seconds=duration),
            duration_s=duration,
            energy_j=0.0,
            marginal_j=0.0,
            outcome="refused",
            gate_open=gate_open,
            boundary=self.boundary,
            model=model,
            route=route,
            http_status=http_status,
        )
        task = asyncio.ensure_future(self._commit(row))
        self._track(task)
        return task

    # -- explicit windows (non-HTTP runtimes) ---------------------------------------------------

    def open_explicit(self, *, model: str | None = None, label: str | None = None) -> OpenWindow:
        """Start a window that the caller ends; SpoolFullError while the spool is full (its row
        could not be kept)."""
        self.check_storage()
        if len(self._explicit) >= MAX_EXPLICIT_WINDOWS:
            raise TooManyWindowsError(
                f"{MAX_EXPLICIT_WINDOWS} windows are open; end some before starting more"
            )
        window = self.open(model=model, label=label, route="window")
        self._explicit[window.window_id] = window
        return window

    async def end_explicit(
        self,
        window_id: str,
        *,
        outcome: Outcome = "ok",
        prompt_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> InferenceRow:
        window = self._explicit.pop(window_id, None)
        if window is None:
            raise WindowNotFoundError(window_id)
        task = self.finish_later(
            window,
            outcome=outcome,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
        )
        return await asyncio.shield(task)

    def check_storage(self) -> None:
        """Raise SpoolFullError when the disk has failed long enough to fill the spool: new
        metered work is refused then, because its row could not be kept."""
        if self.writer.full:
            health = self.writer.health()
            raise SpoolFullError(
                f"The agent cannot write its ledger ({health.error}) and holds "
                f"{health.pending_rows} unwritten rows, its limit; new metered work is refused "
                "until the disk takes them."
            )

    @property
    def explicit_open(self) -> int:
        return len(self._explicit)

    # -- internals ------------------------------------------------------------------------------

    def _row(
        self,
        window: OpenWindow,
        energy: WindowEnergy,
        *,
        ended_at: datetime,
        outcome: Outcome,
        http_status: int | None,
        prompt_tokens: int | None,
        output_tokens: int | None,
        tokens_estimated: bool,
        ttft_s: float | None,
        model: str | None,
    ) -> InferenceRow:
        return InferenceRow(
            window_id=window.window_id,
            started_at=window.started_at,
            ended_at=max(ended_at, window.started_at),
            duration_s=energy.duration_s,
            energy_j=energy.energy_j,
            energy_error_j=energy.error_j,
            marginal_j=energy.marginal_j,
            avg_w=energy.avg_w,
            peak_w=energy.peak_w,
            idle_w=energy.idle_w,
            ttft_s=ttft_s,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            tokens_estimated=tokens_estimated,
            model=window.model or model,
            route=window.route,
            label=window.label,
            batch_id=window.batch_id,
            custom_id=window.custom_id,
            http_status=http_status,
            outcome=outcome,
            gate_open=window.gate_open,
            boundary=self.boundary,
            power_level=window.power_level,
        )

    async def _commit(self, row: InferenceRow) -> InferenceRow:
        """Hand `row` to the ledger writer; return it once committed (with its id) or, while the
        disk fails, once it is held in the spool (id None)."""
        return await asyncio.shield(self.writer.add(self.ledger.stamp(row)))

    def _publish(self, row: InferenceRow) -> None:
        self.events.publish("inference", row.to_json())

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._pending.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._pending.discard(finished)
            if finished.cancelled():
                return
            error = finished.exception()
            if isinstance(error, (sqlite3.Error, SpoolFullError)):
                _LOGGER.error(
                    "Could not record an inference window in the ledger (%s): its row is lost; "
                    "rows already recorded are kept",
                    error,
                )
            elif error is not None:
                _LOGGER.error("Could not record an inference window", exc_info=error)

        task.add_done_callback(done)

    def _on_gate(self, state: GateSnapshot) -> None:
        self.events.publish("gate", state.to_json())

    def _end_stale_windows(self) -> None:
        now = time.monotonic()
        for window_id, window in list(self._explicit.items()):
            if now - window.started_mono > EXPLICIT_WINDOW_MAX_AGE_S:
                _LOGGER.warning("Window %s was never ended; recording it as cancelled", window_id)
                del self._explicit[window_id]
                self.finish_later(window, outcome="cancelled")
