"""Actions: allow or block inference on an agent, for a while or until the mode is changed."""

from __future__ import annotations

from datetime import timedelta

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DURATION,
    DOMAIN,
    MAX_OVERRIDE,
    SERVICE_ALLOW_INFERENCE,
    SERVICE_BLOCK_INFERENCE,
)
from .data import JoulegateConfigEntry
from .gate import JoulegateGateCoordinator

SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_DURATION): cv.time_period,
    }
)


def _gate(hass: HomeAssistant, entry_id: str) -> JoulegateGateCoordinator:
    """The gate of a loaded entry, or an error the user can act on."""
    entry: JoulegateConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"agent": entry.title},
        )
    if (gate := entry.runtime_data.gate) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="gate_not_configured",
            translation_placeholders={"agent": entry.title},
        )
    return gate


async def _async_override(call: ServiceCall, *, open_: bool) -> None:
    gate = _gate(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    duration: timedelta | None = call.data.get(ATTR_DURATION)
    if duration is not None and not timedelta(0) < duration <= MAX_OVERRIDE:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_duration",
            translation_placeholders={"max_days": str(MAX_OVERRIDE.days)},
        )
    if not await gate.async_override(open_=open_, duration=duration):
        # The choice holds and is sent again every cycle; the user should know it is
        # not in force on the agent yet.
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="gate_not_updated",
            translation_placeholders={
                "agent": gate.config_entry.title,
                "error": gate.last_push_error or "",
            },
        )


async def _async_allow(call: ServiceCall) -> None:
    await _async_override(call, open_=True)


async def _async_block(call: ServiceCall) -> None:
    await _async_override(call, open_=False)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions."""
    hass.services.async_register(DOMAIN, SERVICE_ALLOW_INFERENCE, _async_allow, schema=SCHEMA)
    hass.services.async_register(DOMAIN, SERVICE_BLOCK_INFERENCE, _async_block, schema=SCHEMA)
