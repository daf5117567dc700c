"""The house's expected load for the deadline planner, from the recorder's long-term statistics.

The median of each local hour of the day over the last week, from the hourly statistics the
recorder keeps: in a home without a grid meter, the means of the house consumption entity (the
options' *House consumption*); in a home with one, PV + grid import + battery discharge, from the
PV energy meter's hourly change and the grid and battery power entities' hourly means (the grid
meter alone sees only PV less load, so without a PV energy meter there is no profile). Read at
start and once an hour, never in the gate's cycle: the profile moves slowly and a statistics
query is not free. Without those entities, without the recorder or its statistics, or when the
query fails, the profile is None and the planner takes the forecast as surplus as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from homeassistant.components.recorder.statistics import StatisticsRow, statistics_during_period
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import UnitOfEnergy, UnitOfPower
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util

from .batch_plan import LoadProfile
from .const import CONF_LOAD_POWER, CONF_PV_ENERGY, GRID_SOURCE_PV_LOAD, LOGGER
from .forecast import derived_load, load_profile
from .inputs import ROLE_KINDS, GateConfig, Kind

LOAD_HISTORY = timedelta(days=7)
LOAD_REFRESH = timedelta(hours=1)


class HouseLoad:
    """A gate's house load profile, as last read."""

    def __init__(self, hass: HomeAssistant, config: GateConfig, title: str) -> None:
        """Nothing read yet; the statistics read are those of `config`'s entities that give the
        house's load (none: no profile)."""
        self.hass = hass
        self.config = config
        self.title = title
        self.profile: LoadProfile | None = None
        self.entities = _load_entities(config)

    def async_start(self, entry: ConfigEntry[Any]) -> None:
        """Read now, then hourly; each read a task of the entry's (setup does not wait on the
        database)."""
        if not self.entities:
            return

        @callback
        def read(_: datetime | None = None) -> None:
            entry.async_create_task(
                self.hass, self.async_refresh(), f"Joulegate {self.title} house load"
            )

        entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                read,
                LOAD_REFRESH,
                name=f"Joulegate {self.title} house load",
                cancel_on_shutdown=True,
            )
        )
        read()

    async def async_refresh(self) -> None:
        """Read the profile again; a failure leaves None (with a debug log)."""
        self.profile = await self._async_read(dt_util.utcnow())

    async def _async_read(self, now: datetime) -> LoadProfile | None:
        if not self.entities or "recorder" not in self.hass.config.components:
            return None
        try:
            stats = await get_instance(self.hass).async_add_executor_job(
                statistics_during_period,
                self.hass,
                now - LOAD_HISTORY,
                now,
                set(self.entities.values()),
                "hour",
                {"power": UnitOfPower.WATT, "energy": UnitOfEnergy.WATT_HOUR},
                {"mean", "change"},
            )
        except Exception as err:  # the database's errors are many, and none is the gate's
            LOGGER.debug(
                "Could not read the statistics of %s: %s", ", ".join(self.entities.values()), err
            )
            return None
        samples = (
            (dt_util.as_local(dt_util.utc_from_timestamp(start)).hour, watts)
            for start, watts in self._load_w(stats)
        )
        return load_profile(samples, time_zone=self.hass.config.time_zone)

    def _load_w(self, stats: Mapping[str, list[StatisticsRow]]) -> list[tuple[float, float]]:
        """(hour start, the house's mean W) from the entities' hourly statistics."""

        def hourly(role: str, stat: Literal["mean", "change"]) -> dict[float, float]:
            rows = stats.get(self.entities[role], [])
            return {row["start"]: value for row in rows if (value := row.get(stat)) is not None}

        means = {role: hourly(role, "mean") for role in self.entities if role != CONF_PV_ENERGY}
        if CONF_LOAD_POWER in means:
            return list(means[CONF_LOAD_POWER].items())
        pv_wh = hourly(CONF_PV_ENERGY, "change")
        grid_w: dict[float, float] = {}
        battery_w: dict[float, float] = {}
        for start in pv_wh:
            grid, battery = self.config.signed_flows(
                {role: w[start] for role, w in means.items() if start in w}
            )
            if grid is not None:
                grid_w[start] = grid
            if battery is not None:
                battery_w[start] = battery
        return derived_load(pv_wh, grid_w, battery_w if self.config.has_battery else None)


def _load_entities(config: GateConfig) -> dict[str, str]:
    """Role -> entity id of the statistics that give the house's load: the house consumption
    entity, else the PV energy meter with the grid and battery power entities (the grid meter
    alone cannot tell PV from load: without a PV energy meter, none)."""
    entities = config.entities
    if config.grid_source == GRID_SOURCE_PV_LOAD:
        return {CONF_LOAD_POWER: entities[CONF_LOAD_POWER]} if CONF_LOAD_POWER in entities else {}
    if CONF_PV_ENERGY not in entities:
        return {}
    return {
        role: entity_id
        for role, entity_id in entities.items()
        if role == CONF_PV_ENERGY or ROLE_KINDS[role] is Kind.POWER
    }
