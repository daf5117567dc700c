"""Follows what each status says about the agent itself: its storage, and whether it restarted.

A restart is when the agent may have been upgraded, so its info is read again and the device
registry gets the new software version (and board) without a reload of the entry.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .agent_issues import clear_storage_issue, update_storage_issue
from .const import DOMAIN, LOGGER
from .coordinator import JoulegateDataUpdateCoordinator
from .exceptions import JoulegateError
from .models import Info, Status

# The agent's start time (status time less uptime) moves by rounding and clock steps; a restart
# moves it by at least the time the restart took.
RESTART_TOLERANCE = timedelta(seconds=2)


def _started(status: Status) -> float | None:
    if status.time is None or status.uptime_s is None:
        return None
    return status.time.timestamp() - status.uptime_s


class AgentWatch:
    """Takes each status the coordinator reads, for one entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        coordinator: JoulegateDataUpdateCoordinator,
    ) -> None:
        """Watch one entry's agent from now on, until the entry unloads."""
        self._hass = hass
        self._entry = entry
        self._coordinator = coordinator
        self._started: float | None = None
        self._reading_info = False
        self._update()
        entry.async_on_unload(coordinator.async_add_listener(self._update))
        entry.async_on_unload(lambda: clear_storage_issue(hass, entry.entry_id))

    @callback
    def _update(self) -> None:
        if not self._coordinator.last_update_success or self._coordinator.data is None:
            return
        status = self._coordinator.data.status
        update_storage_issue(self._hass, self._entry, status.storage)
        started = _started(status)
        if started is None:
            return
        if self._started is None:
            self._started = started
        elif (
            abs(started - self._started) > RESTART_TOLERANCE.total_seconds()
            and not self._reading_info
        ):
            self._reading_info = True
            self._entry.async_create_task(
                self._hass,
                self._async_read_info(started),
                name=f"Joulegate {self._entry.title} info",
            )

    async def _async_read_info(self, started: float) -> None:
        try:
            info = await self._coordinator.client.info()
        except JoulegateError as err:
            LOGGER.debug("Could not read the info of %s again: %s", self._entry.title, err)
            return  # the next status that shows the new start tries again
        finally:
            self._reading_info = False
        self._started = started
        if info.device_id == self._coordinator.info.device_id:
            self._use_info(info)

    def _use_info(self, info: Info) -> None:
        self._coordinator.info = info
        registry = dr.async_get(self._hass)
        device = registry.async_get_device(identifiers={(DOMAIN, info.device_id)})
        if device is not None:
            registry.async_update_device(
                device.id,
                sw_version=info.agent_version,
                manufacturer=info.board.manufacturer,
                model=info.board.model,
            )
