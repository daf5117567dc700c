"""Diagnostics for the Joulegate integration (the token is redacted)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant

from .coordinator import JoulegateConfigEntry

TO_REDACT = {CONF_TOKEN}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: JoulegateConfigEntry
) -> dict[str, Any]:
    """Return what is needed to understand a report, without the token."""
    data = entry.runtime_data
    coordinator = data.coordinator
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
        },
        "info": dict(data.info.raw),
        "status": dict(coordinator.data.status.raw),
        "ledger": {
            "cursor": coordinator.ledger.cursor,
            "recent": [dict(row.raw) for row in coordinator.ledger.recent],
        },
        "event_stream": coordinator.event_stream,
        "last_update_success": coordinator.last_update_success,
    }
