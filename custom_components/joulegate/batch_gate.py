"""The deadline rule's place in the gate's cycle: the agent's batches in, a batch-only lease out.

Where the surplus controller keeps the gate closed, the gate asks this each cycle whether batch
work must run anyway for a deadline (`deadline.DeadlineRule`). It reads the agent's active batches
(`GET /v1/batches`) only while `/status` says some are in progress, again when their number
changes and otherwise once a minute: the estimates move slowly, and a list of batches is larger
than a status. The user's choices never give way: a gate forced off runs no deadline work, and
the thermal limit (or throttling) wins over a deadline.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .batch_plan import LoadProfile, Plan, PlanSettings, WhenSunFails
from .client import JoulegateClient
from .const import LOGGER
from .deadline import DeadlineRule, World, queue_of
from .exceptions import JoulegateError
from .models import Batch, BatchQueue
from .surplus import Decision, Reason, Settings

if TYPE_CHECKING:
    from .inputs import Flows

BATCH_LIST_EVERY_S = 60.0
"""How often the list of active batches is read while their number stays the same."""


class BatchGate:
    """One agent's deadline rule, with the batches it last read."""

    def __init__(self, client: JoulegateClient, title: str, when_sun_fails: WhenSunFails) -> None:
        """Nothing read yet; `when_sun_fails` is the options' default for batches."""
        self.client = client
        self.title = title
        self.when_sun_fails = when_sun_fails
        self.rule = DeadlineRule(PlanSettings(when_sun_fails=when_sun_fails))
        self.batches: list[Batch] = []
        self._read_at: float | None = None
        self._read_count = -1
        self._warned: set[str] = set()

    async def async_plan(
        self,
        queue: BatchQueue | None,
        *,
        now: float,
        today_end: float,
        tomorrow_end: float,
        flows: Flows,
        decision: Decision,
        rig_now_w: float | None,
        controller: Settings,
        cycle_s: float,
        load: LoadProfile | None = None,
        today_daylight: tuple[float, float] | None = None,
        tomorrow_daylight: tuple[float, float] | None = None,
    ) -> Plan | None:
        """This cycle's plan; None while the agent has no batch in progress (or no queue), and
        while the gate is forced off. `rig_now_w`: the rig's power above idle now; `today_end`
        and `tomorrow_end`: the coming two local midnights; `load`: the house's load profile;
        `today_daylight` and `tomorrow_daylight`: those days' sunrise and sunset (None: not
        known, the sun does not set or rise)."""
        if queue is None or queue.batches_in_progress == 0 or decision.reason is Reason.FORCED_OFF:
            self.batches, self._read_count, self.rule.plan = [], 0, None
            return None
        await self._async_read(queue, now)
        need_w = controller.need_w
        surplus = (
            None
            if flows.grid_w is None
            else -flows.grid_w - (flows.battery_w or 0.0) + max(0.0, rig_now_w or 0.0)
        )
        world = World(
            now=now,
            today_end=today_end,
            forecast_remaining_wh=flows.forecast_remaining_wh,
            battery_soc=flows.battery_soc,
            too_hot=decision.reason in (Reason.TOO_HOT, Reason.THROTTLING),
            sun_now=surplus is not None and surplus >= need_w,
            tomorrow_wh=flows.forecast_tomorrow_wh,
            tomorrow_end=tomorrow_end,
            hourly=flows.forecast_detail,
            load=load,
            today_daylight=today_daylight,
            tomorrow_daylight=tomorrow_daylight,
        )
        self.rule.settings = replace(
            self.rule.settings,
            policy=controller.policy,
            battery_capacity_wh=controller.battery_capacity_wh,
            full_soc=controller.full_soc,
            reserve_soc=controller.reserve_soc,
            cycle_s=cycle_s,
        )
        planned = queue_of(self.batches, concurrency=queue.concurrency, rig_w=need_w)
        for batch_id, value in planned.unreadable:
            if batch_id not in self._warned:
                self._warned.add(batch_id)
                LOGGER.warning(
                    "Batch %s on Joulegate agent %s has metadata joulegate_when_sun_fails %r, "
                    "not one of grid, battery, expire: it gets the default, %s",
                    batch_id,
                    self.title,
                    value,
                    self.when_sun_fails.value,
                )
        return self.rule.step(world, planned)

    async def _async_read(self, queue: BatchQueue, now: float) -> None:
        """Read the active batches when their number changed or the last read is a minute old;
        a failed read keeps the last list (the next cycle tries again)."""
        fresh = self._read_at is not None and now - self._read_at < BATCH_LIST_EVERY_S
        if fresh and queue.batches_in_progress == self._read_count:
            return
        try:
            self.batches = await self.client.active_batches(queue.batches_in_progress)
        except JoulegateError as err:
            LOGGER.debug("Could not read the batches of Joulegate agent %s: %s", self.title, err)
            return
        self._read_at, self._read_count = now, queue.batches_in_progress
