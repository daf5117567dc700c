"""One file per entry for the ledger cursor and the energy totals it counted, written together.

A row moves the cursor and adds to the totals; kept in two files (as up to version 1, written
seconds apart) a crash in between either lost the row's energy for good or, with the total saved
and the cursor not, counted it again, and a `total_increasing` sensor that comes back lower is a
new meter cycle to the recorder, added to the long-term statistics once more. In one file, one
write covers both: after a crash the rows since the last write are read and counted again, once.

Version 2 (this one) holds `device_id`, `ledger_id` (the agent's ledger identity, None from an
agent that has none), `cursor` and `accounting`; version 1 kept the cursor here and the totals in
`joulegate.<entry id>.accounting`, which the migration folds in and `async_load` removes.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN

STORAGE_VERSION = 2
# Version 1's separate file of the totals.
LEGACY_ACCOUNTING_VERSION = 1


def _legacy_accounting_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    return Store(hass, LEGACY_ACCOUNTING_VERSION, f"{DOMAIN}.{entry_id}.accounting")


class LedgerStore(Store[dict[str, Any]]):
    """`.storage/joulegate.<entry id>.ledger`: cursor, ledger identity and totals."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """The store of one config entry."""
        super().__init__(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.ledger")
        self._legacy = _legacy_accounting_store(hass, entry_id)
        # Whether the last write reached the disk: Store logs a failed one (a full disk) and
        # returns as if it had saved.
        self.written = True

    async def _async_write_data(self, data: dict[str, Any]) -> None:
        self.written = False
        await super()._async_write_data(data)
        self.written = True

    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
    ) -> dict[str, Any]:
        """Version 1: the cursor here, the totals in their own file (the rows are read again)."""
        if old_major_version > STORAGE_VERSION:
            raise NotImplementedError
        return {
            "device_id": old_data.get("device_id"),
            "ledger_id": None,
            "cursor": old_data.get("cursor"),
            "accounting": await self._legacy.async_load() or {},
        }

    async def async_load_state(self) -> dict[str, Any]:
        """The saved state (migrated and written back if it was older), or {} when none."""
        stored = await self.async_load()
        if stored is None:
            # Version 1 wrote the totals even where it had no cursor file.
            legacy = await self._legacy.async_load()
            if legacy is None:
                return {}
            stored = {"device_id": None, "ledger_id": None, "cursor": None, "accounting": legacy}
            await self.async_save(stored)
        # Written in the new file above (the migration saves what it returns): the old can go.
        await self._legacy.async_remove()
        return stored

    async def async_remove_all(self) -> None:
        """Delete the file (and version 1's, where one is left): the entry was removed."""
        await self.async_remove()
        await self._legacy.async_remove()
