"""The house's expected load for the deadline planner, from the recorder's long-term statistics.

The mean of each local hour of the day over the last week, from the hourly means the recorder
keeps of the house consumption entity (the options' *House consumption*, which only a home
without a grid meter names). Read at start and once an hour, never in the gate's cycle: the
profile moves slowly and a statistics query is not free. Without that entity, without the
recorder or its statistics, or when the query fails, the profile is None and the planner takes
the forecast as surplus as it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import UnitOfPower
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util

from .batch_plan import LoadProfile
from .const import LOGGER
from .forecast import load_profile

LOAD_HISTORY = timedelta(days=7)
LOAD_REFRESH = timedelta(hours=1)


class HouseLoad:
    """One house consumption entity's load profile, as last read."""

    def __init__(self, hass: HomeAssistant, entity_id: str | None, title: str) -> None:
        """Nothing read yet; `entity_id` None: no house consumption entity, no profile."""
        self.hass = hass
        self.entity_id = entity_id
        self.title = title
        self.profile: LoadProfile | None = None

    def async_start(self, entry: ConfigEntry[Any]) -> None:
        """Read now, then hourly; each read a task of the entry's (setup does not wait on the
        database)."""
        if self.entity_id is None:
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
        entity_id = self.entity_id
        if entity_id is None or "recorder" not in self.hass.config.components:
            return None
        try:
            stats = await get_instance(self.hass).async_add_executor_job(
                statistics_during_period,
                self.hass,
                now - LOAD_HISTORY,
                now,
                {entity_id},
                "hour",
                {"power": UnitOfPower.WATT},
                {"mean"},
            )
        except Exception as err:  # the database's errors are many, and none is the gate's
            LOGGER.debug("Could not read the statistics of %s: %s", entity_id, err)
            return None
        samples = [
            (dt_util.as_local(dt_util.utc_from_timestamp(row["start"])).hour, mean)
            for row in stats.get(entity_id, [])
            if (mean := row.get("mean")) is not None
        ]
        offset = dt_util.as_local(now).utcoffset()
        return load_profile(samples, utc_offset_s=offset.total_seconds() if offset else 0.0)
