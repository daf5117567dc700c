"""The Joulegate integration: the energy of every AI inference on an edge box."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .api import JoulegateAuthenticationError, JoulegateClient, JoulegateError
from .const import DOMAIN
from .coordinator import (
    JoulegateConfigEntry,
    JoulegateData,
    JoulegateDataUpdateCoordinator,
    ledger_store,
)

# The gate controls (select, number, switch) join this list with the surplus
# controller.
PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> bool:
    """Set up a Joulegate agent from a config entry."""
    client = JoulegateClient(
        host=entry.data[CONF_HOST],
        port=entry.data[CONF_PORT],
        token=entry.data[CONF_TOKEN],
        session=async_get_clientsession(hass),
    )
    try:
        info = await client.info()
    except JoulegateAuthenticationError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="authentication_error"
        ) from err
    except JoulegateError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="communication_error",
            translation_placeholders={"error": str(err)},
        ) from err
    if info.device_id != entry.unique_id:
        # Another agent now answers at this address (a DHCP lease moved): wait
        # for discovery or a reconfiguration to bring the right one back.
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="wrong_device",
            translation_placeholders={"expected": str(entry.unique_id), "found": info.device_id},
        )

    coordinator = JoulegateDataUpdateCoordinator(hass, entry, client, info)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = JoulegateData(client=client, info=info, coordinator=coordinator)

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)

    entry.async_create_background_task(
        hass,
        coordinator.async_listen_events(),
        name=f"Joulegate {entry.title} event stream",
    )
    return True


async def async_unload_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> bool:
    """Unload a Joulegate config entry (its event stream task is cancelled with it)."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> None:
    """Delete the saved ledger cursor of a removed entry."""
    await ledger_store(hass, entry.entry_id).async_remove()
