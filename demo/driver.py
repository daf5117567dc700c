"""The simulated house's driver: every tick, one step of the sped-up day, sent to Home Assistant.

The rigs' own draw is part of the house: each tick reads every agent's board power, so the grid
and battery flows that Home Assistant sees include what inference costs, as in a real home.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from demo.ha_client import HomeAssistantClient, HomeAssistantError
from demo.ha_config import HOUSE_EVENT
from demo.sunny_day import Flows, House, SimClock

_LOGGER = logging.getLogger(__name__)

PV_ENERGY_SENSOR = "sensor.demo_pv_energy"


class AgentReader:
    """Reads the agent's status (board power, gate, counters) with its token."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.status: dict[str, Any] | None = None

    async def read(self) -> dict[str, Any] | None:
        try:
            async with self.session.get(
                f"{self.base_url}/api/v1/status",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                if response.status == 200:
                    self.status = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self.status = None
        return self.status

    def board_w(self) -> float:
        if not self.status:
            return 0.0
        return float(self.status.get("power", {}).get("board_w") or 0.0)


class HouseDriver:
    """Steps the house every `tick_s` wall-clock seconds and fires it as an event in HA."""

    def __init__(
        self,
        ha: HomeAssistantClient,
        agents: Sequence[AgentReader],
        house: House,
        clock: SimClock,
        tick_s: float = 2.0,
    ) -> None:
        self.ha = ha
        self.agents = agents
        self.house = house
        self.clock = clock
        self.tick_s = tick_s
        self.latest: Flows | None = None
        self._failing = False

    async def restore(self) -> None:
        """Carry on the PV meter from where the last run left it (a meter never goes back)."""
        try:
            state = await self.ha.state(PV_ENERGY_SENSOR)
        except (HomeAssistantError, aiohttp.ClientError, TimeoutError):
            return
        if state is not None:
            with contextlib.suppress(ValueError):
                self.house.pv_energy_kwh = max(self.house.pv_energy_kwh, float(state["state"]))

    async def step(self, wall_s: float) -> Flows:
        sim_s = self.clock.advance(wall_s)
        await asyncio.gather(*(agent.read() for agent in self.agents))
        rigs_w = sum(agent.board_w() for agent in self.agents)
        flows = self.house.step(self.clock.now, sim_s, rigs_w)
        self.latest = flows
        try:
            await self.ha.fire_event(HOUSE_EVENT, flows.as_event())
            if self._failing:
                _LOGGER.warning("Home Assistant takes the house's readings again")
            self._failing = False
        except (HomeAssistantError, aiohttp.ClientError, TimeoutError) as err:
            if not self._failing:
                _LOGGER.warning("could not send the house's readings to Home Assistant: %s", err)
            self._failing = True
        return flows

    async def run(self) -> None:
        last = time.monotonic()
        await self.step(0.0)
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            await self.step(now - last)
            last = now
