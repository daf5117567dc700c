"""The batch queue as the agent holds it: files, batches, the runner, and what they will need.

Each batch object gains a `joulegate` block: its energy so far (from the ledger rows of its
requests, every attempt), what is left, an estimate of the energy and run time still needed
(from this batch's own rows, else the model's recent rows) and `latest_start`, the latest time
it must start at full speed to finish by its deadline. A batch past that time says so in the
block, in `/api/v1/status` (`batches`) and, once, in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulegate_agent.batch.batch_store import ACTIVE, BatchRecord, BatchStore
from joulegate_agent.batch.file_store import FileStore
from joulegate_agent.batch.runner import BatchRunner
from joulegate_agent.inference.service import InferenceService
from joulegate_agent.storage.ledger import iso

if TYPE_CHECKING:
    from joulegate_agent.proxy.routes import Proxy

_LOGGER = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 3600.0


def _iso_ts(ts: float | None) -> str | None:
    return None if ts is None else iso(datetime.fromtimestamp(ts, timezone.utc))


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a batch has used and will need."""

    attempts: int
    energy_j: float
    longest_request_s: float | None
    """The longest attempt of the estimate's rows (a planner's safety margin)."""
    requests_done: int
    requests_left: int
    basis: str | None
    energy_needed_j: float | None
    run_time_needed_s: float | None
    latest_start: float | None
    on_time: bool | None

    def to_json(self, deadline: float) -> dict[str, Any]:
        done = self.requests_done
        needed = self.energy_needed_j
        late = self.on_time is False
        return {
            "deadline": _iso_ts(deadline),
            "energy_j": round(self.energy_j, 3),
            "energy_wh": round(self.energy_j / 3600.0, 6),
            "attempts": self.attempts,
            "requests_done": done,
            "requests_left": self.requests_left,
            "avg_wh_per_request": (round(self.energy_j / 3600.0 / done, 6) if done else None),
            "estimate_basis": self.basis,
            "energy_needed_wh": None if needed is None else round(needed / 3600.0, 6),
            "run_time_needed_s": (
                None if self.run_time_needed_s is None else round(self.run_time_needed_s, 1)
            ),
            "longest_request_s": (
                None if self.longest_request_s is None else round(self.longest_request_s, 3)
            ),
            "latest_start": _iso_ts(self.latest_start),
            "on_time": self.on_time,
            "warning": (
                "cannot finish by its deadline even at full speed from now" if late else None
            ),
        }


class BatchService:
    def __init__(
        self,
        inference: InferenceService,
        data_dir: Path,
        *,
        concurrency: int,
        retention_days: int,
        quota_bytes: int,
        max_upload_bytes: int,
    ) -> None:
        store = inference.store
        self.files = FileStore(
            store,
            data_dir,
            retention_days=retention_days,
            quota_bytes=quota_bytes,
            max_upload_bytes=max_upload_bytes,
        )
        self.batches = BatchStore(store)
        self.retention_s = retention_days * 86400.0
        self.runner = BatchRunner(
            inference,
            self.batches,
            self.files,
            concurrency=concurrency,
            on_tick=self._warn_late,
            on_finished=self._publish_finished,
        )
        self._events = inference.events
        self.create_lock = asyncio.Lock()
        self._warned: set[str] = set()
        self._housekeeping: asyncio.Task[None] | None = None

    def attach(self, proxy: Proxy) -> None:
        """Run batch requests through this proxy's upstream and session."""
        self.runner.proxy = proxy
        self.runner.wake()

    async def start(self) -> None:
        self.files.sweep_partials()
        await self.runner.start()
        if self._housekeeping is None:
            self._housekeeping = asyncio.create_task(self._housekeep())

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        await self.runner.stop()

    # -- outlook -------------------------------------------------------------------------------

    def outlook(self, batch: BatchRecord, now: float | None = None) -> Outlook:
        moment = time.time() if now is None else now
        own = self.batches.ledger_use(batch.id)
        left = batch.counts.left if batch.status in ACTIVE else 0
        basis: str | None = None
        basis_use = None
        if own.rows:
            basis, basis_use = "batch", own
        elif batch.model is not None:
            model = self.batches.model_use(batch.model)
            if model.rows:
                basis, basis_use = "model", model
        per_j = None if basis_use is None else basis_use.energy_j / basis_use.rows
        per_s = None if basis_use is None else basis_use.run_s / basis_use.rows
        needed_j = None if per_j is None else per_j * left
        needed_s = None if per_s is None else per_s * left / self.runner.concurrency
        latest = None if needed_s is None or not left else batch.deadline - needed_s
        on_time = None if latest is None else moment <= latest
        return Outlook(
            attempts=own.rows,
            energy_j=own.energy_j,
            longest_request_s=None if basis_use is None else basis_use.longest_s,
            requests_done=batch.counts.done,
            requests_left=left,
            basis=basis,
            energy_needed_j=needed_j,
            run_time_needed_s=needed_s,
            latest_start=latest,
            on_time=on_time,
        )

    def to_json(self, batch: BatchRecord) -> dict[str, Any]:
        """OpenAI's Batch object with the `joulegate` block."""
        return {**batch.to_json(), "joulegate": self.outlook(batch).to_json(batch.deadline)}

    def status(self) -> dict[str, Any]:
        """The `batches` object of /api/v1/status (what Home Assistant's sensors read)."""
        active = self.batches.active()
        now = time.time()
        outlooks = [(b, self.outlook(b, now)) for b in active]
        starts = [o.latest_start for _, o in outlooks if o.latest_start is not None]
        needed = [o.energy_needed_j for _, o in outlooks if o.energy_needed_j is not None]
        # A batch with requests left and nothing to go by would make the sum too low: unknown.
        unknown = any(o.energy_needed_j is None and o.requests_left for _, o in outlooks)
        longest = [
            o.longest_request_s
            for _, o in outlooks
            if o.longest_request_s is not None and o.requests_left
        ]
        return {
            "requests_waiting": sum(o.requests_left for _, o in outlooks),
            "requests_running": self.runner.in_flight,
            "batches_in_progress": len(active),
            "energy_needed_wh": None if unknown else round(sum(needed) / 3600.0, 6),
            "next_deadline": _iso_ts(min((b.deadline for b in active), default=None)),
            "latest_start": _iso_ts(min(starts, default=None)),
            "longest_request_s": round(max(longest), 3) if longest else None,
            "late": sum(1 for _, o in outlooks if o.on_time is False),
            "concurrency": self.runner.concurrency,
            "admitted": self.runner.admits(),
        }

    def _publish_finished(self, batch_id: str) -> None:
        """A `batch` event on the SSE stream: the finished batch with its `joulegate` block."""
        batch = self.batches.get(batch_id)
        if batch is not None:
            self._events.publish("batch", self.to_json(batch))

    def _warn_late(self, active: list[BatchRecord]) -> None:
        for batch in active:
            if batch.id in self._warned or batch.status != "in_progress":
                continue
            outlook = self.outlook(batch)
            if outlook.on_time is False:
                self._warned.add(batch.id)
                _LOGGER.warning(
                    "Batch %s cannot finish by its deadline %s: %d requests need about %.0f s "
                    "at full speed; it runs whenever the gate admits batch work",
                    batch.id,
                    _iso_ts(batch.deadline),
                    outlook.requests_left,
                    outlook.run_time_needed_s or 0.0,
                )

    # -- housekeeping ----------------------------------------------------------------------------

    async def _housekeep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                before = time.time() - self.retention_s
                batches = await loop.run_in_executor(None, self.batches.prune, before)
                files = await loop.run_in_executor(None, self.files.prune)
                if batches or files:
                    _LOGGER.info("Removed %d expired batches and %d expired files", batches, files)
            except Exception:
                _LOGGER.exception("Batch housekeeping failed")
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
