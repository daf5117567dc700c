"""Wires the agent together: source -> sampler -> meter -> store, plus heat and identity."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from joulegate_agent import __version__
from joulegate_agent.api.token import TOKEN_ENV, load_or_create_token
from joulegate_agent.batch.service import BatchService
from joulegate_agent.config import AgentConfig
from joulegate_agent.identity import Board, detect_board, load_device_id
from joulegate_agent.inference.service import InferenceService
from joulegate_agent.metering.meter import Meter
from joulegate_agent.metering.sampler import Sampler
from joulegate_agent.metering.sources import CalibratedSource, detect_sources
from joulegate_agent.metering.sources.base import PowerSource
from joulegate_agent.metering.thermal import ThermalReader, ThermalReading
from joulegate_agent.power.agent_power import build_power
from joulegate_agent.power.costs import CostTables
from joulegate_agent.power.ladder import Level
from joulegate_agent.simulation.board import SimulatedOrinNano
from joulegate_agent.storage.atomic_file import make_private_dir
from joulegate_agent.storage.clock import clock_synced
from joulegate_agent.storage.spool import UnsavedEnergy
from joulegate_agent.storage.store import Store

_LOGGER = logging.getLogger(__name__)

BOARD_ENERGY = "board_energy_j"
FLUSH_INTERVAL_S = 300.0
"""The board energy goes to disk with every ledger commit, at shutdown, and otherwise at this
interval: an idle agent commits 288 times a day, however often anyone reads /status."""
THERMAL_INTERVAL_S = 2.0
DATABASE_FILE = "joulegate.db"


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        data_dir = Path(config.data_dir)
        make_private_dir(data_dir)
        self.token = load_or_create_token(data_dir)
        self.token_from_env = bool(os.environ.get(TOKEN_ENV, "").strip())
        self.device_id = load_device_id(data_dir, config.root)
        self.meter = Meter()
        self.sources: list[PowerSource] = detect_sources(
            config.root,
            config.source,
            load=lambda: self.meter.working,
            calibration=config.calibration,
        )
        self.source = self.sources[0]
        self.board: Board = detect_board(config.root, simulated=config.source == "simulated")
        self.sampler = Sampler(self.source, self.meter, config.sample_rate_hz)
        self.store = Store(data_dir / DATABASE_FILE)
        try:
            self._build(config, data_dir)
        except BaseException:
            self.store.close()  # a refused config must not leave the ledger open
            raise
        self.thermal: ThermalReading | None = None
        self.started_mono = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    def _build(self, config: AgentConfig, data_dir: Path) -> None:
        self.inference = InferenceService(
            self.meter,
            self.store,
            energy=UnsavedEnergy(BOARD_ENERGY, lambda: self.meter.total_j),
            clock_synced=lambda: clock_synced(config.root),
            boundary=lambda: self.boundary,
            gate_fallback_open=config.gate_fallback_open,
            queue_capacity=config.queue_capacity,
            max_concurrent_inferences=config.max_concurrent_inferences,
            retention_days=config.retention_days,
        )
        self.batches = BatchService(
            self.inference,
            data_dir,
            concurrency=config.batch_concurrency,
            retention_days=config.batch_retention_days,
            quota_bytes=config.batch_quota_bytes,
            max_upload_bytes=config.batch_max_file_bytes,
        )
        measured = self.source.source if isinstance(self.source, CalibratedSource) else self.source
        simulated = measured if isinstance(measured, SimulatedOrinNano) else None
        self.power = build_power(config, self.inference, simulated, self._power_changed)
        self.cost_tables = CostTables(self.store)
        self.thermal_reader = ThermalReader(config.root, simulated=simulated)

    @property
    def boundary(self) -> str:
        return self.source.info.boundary

    @property
    def ledger_id(self) -> str:
        return self.store.ledger_id

    @property
    def version(self) -> str:
        return __version__

    @property
    def board_energy_wh(self) -> float:
        """Lifetime board energy as on disk: what a restart after a crash would show too, so a
        value once shown never goes back (Home Assistant's total_increasing sensor would read a
        drop as a meter reset). It trails the meter by at most FLUSH_INTERVAL_S."""
        return self.store.counter(BOARD_ENERGY) / 3600.0

    async def start(self) -> None:
        self.power.start()  # first: a crashed run's settings go back before anything is metered
        self.sampler.start()
        await self.inference.start()
        await self.batches.start()
        await self.refresh_thermal()
        self._tasks = [
            asyncio.create_task(self._every(FLUSH_INTERVAL_S, self.flush_energy)),
            asyncio.create_task(self._every(THERMAL_INTERVAL_S, self.refresh_thermal)),
        ]

    async def stop(self) -> None:
        await self.batches.stop()  # its cancelled requests' rows are written by inference.stop
        await self.inference.stop()  # rows of windows in flight need the sampler
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.sampler.stop()
        self.power.close()
        await self.inference.writer.close()  # the energy metered up to the sampler's last read
        self.store.close()
        for source in self.sources:
            source.close()

    async def flush_energy(self) -> None:
        """Write the energy metered since the last ledger write (and any spooled rows)."""
        await self.inference.writer.flush()

    def _power_changed(self, level: Level | None) -> None:
        """Idle power moves with the level: learn it again, so each level gets its own."""
        self.meter.idle.reset()
        self.inference.events.publish("power", self.power.summary())

    async def refresh_thermal(self) -> None:
        loop = asyncio.get_running_loop()
        previous_mode = self.thermal.power_mode if self.thermal else None
        self.thermal = await loop.run_in_executor(
            None, self.thermal_reader.read, self.meter.in_flight > 0
        )
        if previous_mode is not None and self.thermal.power_mode != previous_mode:
            _LOGGER.info(
                "Power mode changed to %s; re-learning idle power", self.thermal.power_mode
            )
            self.meter.idle.reset()

    async def _every(self, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except Exception:
                _LOGGER.exception("Periodic job %s failed", getattr(job, "__name__", job))
