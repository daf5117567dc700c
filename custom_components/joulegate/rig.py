"""A rig with power levels, as its gate runs it: its ladder read from the agent, its level leased.

The gate coordinator owns one `RigPower` and hands it to the house's `site.Site` as that rig.
The levels and what each costs come from the agent (`GET /api/v1/power`, read at start and every
POWER_REFRESH_CYCLES cycles); the level the allotment pays for is leased like the gate
(`PUT /api/v1/power`, three cycles), the lowest one while the gate is closed so that work already
admitted finishes at the least draw. A rig whose options leave the levels off (the default), or
whose agent has none it may set, is a rig of one level: its measured inference power, on or off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .allocation import Allotment, RigConfig, RigReading
from .client import JoulegateClient
from .const import (
    CONF_LEVEL_MODE,
    CONF_PRIORITY,
    DEFAULT_PRIORITY,
    LOGGER,
    POWER_REFRESH_CYCLES,
)
from .exceptions import JoulegateError, JoulegateResponseError
from .levels import Level, LevelCost, LevelMode, ladder_from_costs
from .models import PowerLevels
from .surplus import GateMode, Settings

ON_OFF = "on"  # the one level of a rig without levels


@dataclass(frozen=True, slots=True)
class RigOptions:
    """What the user chose for this rig in the options: its priority and its level mode (None,
    the default: the levels are not used, the rig runs on its own settings, on or off)."""

    priority: int = DEFAULT_PRIORITY
    mode: LevelMode | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RigOptions:
        """The entry's choices; what is missing or unknown takes its default."""
        try:
            mode: LevelMode | None = LevelMode(options[CONF_LEVEL_MODE])
        except (KeyError, ValueError):
            mode = None
        priority = options.get(CONF_PRIORITY, DEFAULT_PRIORITY)
        return cls(int(priority) if isinstance(priority, int | float) else DEFAULT_PRIORITY, mode)


def level_costs(power: PowerLevels) -> list[LevelCost]:
    """Each of the agent's levels (lowest draw first) with what it costs, all models together."""
    table = {cost.level: cost for cost in power.table}
    costs = []
    for level in sorted(power.levels, key=lambda level: level.index):
        cost = table.get(level.name)
        models = [] if cost is None else cost.models
        figures = [
            (m.avg_w_above_idle, m.tokens_per_s, m.inferences, m.marginal_inferences)
            for m in models
        ]
        costs.append(LevelCost.combine(level.name, figures))
    return costs


class RigPower:
    """One rig of a site: its levels, its share's level on the agent, its reading."""

    def __init__(
        self,
        key: str,
        client: JoulegateClient,
        options: RigOptions,
        *,
        settings: Callable[[], Settings],
        reading: Callable[[], RigReading],
        title: str,
    ) -> None:
        """`settings` and `reading` are the gate's: its settings now, its agent's figures now."""
        self._key = key
        self._client = client
        self.options = options
        self._settings = settings
        self._reading = reading
        self._title = title
        self.power: PowerLevels | None = None
        self.gate_mode = GateMode.SOLAR
        self._cycles = 0
        self._last_error: str | None = None
        self._held: str | None = None  # the level of Home Assistant's lease, until _held_until
        self._held_until = 0.0  # monotonic

    # -- the site's view (site.Member) ------------------------------------------------

    @property
    def key(self) -> str:
        """The rig's config entry."""
        return self._key

    @property
    def settings(self) -> Settings:
        """The gate's settings (the house's part counts where this rig leads the site)."""
        return self._settings()

    def reading(self) -> RigReading:
        """What the agent reports now."""
        return self._reading()

    def rig_config(self) -> RigConfig:
        """Its levels, priority and modes now."""
        return RigConfig(
            self._key,
            self.levels(),
            priority=self.options.priority,
            mode=self.options.mode or LevelMode.FASTEST,
            gate=self.gate_mode,
        )

    # -- levels -------------------------------------------------------------------------

    @property
    def has_levels(self) -> bool:
        """Whether the rig follows the sun with levels: chosen in the options, and the agent
        has levels Home Assistant may set."""
        return self.options.mode is not None and self.power is not None and self.power.settable

    def levels(self) -> tuple[Level, ...]:
        """The ladder from the agent's cost table; one level (on) where it has none to set."""
        need_w = self.settings.need_w
        if not self.has_levels or self.power is None:
            return (Level(ON_OFF, need_w),)
        return ladder_from_costs(level_costs(self.power), assumed_w=need_w)

    async def async_refresh(self, *, force: bool = False) -> None:
        """Read the levels and their costs again (at start, then every few minutes)."""
        self._cycles += 1
        if not force and self._cycles % POWER_REFRESH_CYCLES:
            return
        try:
            self.power = await self._client.get_power()
        except JoulegateResponseError as err:
            if err.status == 404:  # an agent from before power levels: a rig of one level
                self.power = None
            else:
                self._warn("read", err)
        except JoulegateError as err:
            self._warn("read", err)

    async def async_lease(self, allotment: Allotment, lease_s: int) -> str | None:
        """Lease the level the allotment pays for (the lowest while closed); the level the agent
        holds under the lease (None: not known). A change refused for the agent's dwell time is
        tried again next cycle, and the level the agent holds meanwhile is renewed: its lease
        would otherwise run out and the box fall back to its own settings until the dwell time
        has passed."""
        if not self.has_levels or self.power is None:
            return None
        level = allotment.level.key if allotment.level else self.power.levels[0].name
        reason = str(allotment.reason)
        held = self._held if time.monotonic() < self._held_until else None
        try:
            return await self._lease(level, lease_s, reason)
        except JoulegateResponseError as err:
            if err.code != "dwell":
                self._warn("set", err)
            elif held is not None and held != level:
                return await self._renew(held, lease_s, reason)
        except JoulegateError as err:
            self._warn("set", err)
        return None

    async def _lease(self, level: str, lease_s: int, reason: str) -> str | None:
        until = time.monotonic() + lease_s  # the agent's lease starts once it has the request
        self.power = await self._client.set_power(level=level, lease_s=lease_s, reason=reason)
        self._held, self._held_until = self.power.current, until
        if self._last_error is not None:
            LOGGER.info("The power level of Joulegate agent %s is set again", self._title)
            self._last_error = None
        return self._held

    async def _renew(self, level: str, lease_s: int, reason: str) -> str | None:
        """Renew the lease Home Assistant holds. Refused for the dwell time, the agent holds
        another level (set on the box, or its lease ran out): nothing to renew, no failure."""
        try:
            return await self._lease(level, lease_s, reason)
        except JoulegateResponseError as err:
            if err.code != "dwell":
                self._warn("renew", err)
        except JoulegateError as err:
            self._warn("renew", err)
        return None

    def _warn(self, what: str, err: JoulegateError) -> None:
        if self._last_error is None:
            LOGGER.warning(
                "Could not %s the power levels of Joulegate agent %s: %s", what, self._title, err
            )
        self._last_error = str(err)
