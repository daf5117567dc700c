"""The Joulegate integration: the energy of every AI inference on an edge box."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .agent_issues import clear_wrong_device, delete_agent_issues, raise_wrong_device
from .agent_watch import AgentWatch
from .client import JoulegateClient
from .const import CONF_UPDATE_INTERVAL, DOMAIN
from .coordinator import JoulegateDataUpdateCoordinator
from .data import JoulegateConfigEntry, JoulegateData
from .exceptions import JoulegateAuthenticationError, JoulegateError
from .gate import JoulegateGateCoordinator, gate_store
from .inputs import GateConfig
from .issues import InputIssues, delete_issues
from .retired import delete_retired_issue
from .services import async_setup_services
from .store import LedgerStore

# Select and number hold the surplus gate's settings; they have entities only
# once the gate's inputs are chosen in the options (each platform removes the gate's entities
# that the inputs no longer give).
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions (they answer for every entry)."""
    async_setup_services(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> bool:
    """Bring an entry saved by an older version up to date; refuse one from a newer version."""
    if entry.version > 1:
        return False
    if entry.minor_version < 2:
        # 1.2: polling is fixed at the gate cycle; the user-set interval goes.
        options = {k: v for k, v in entry.options.items() if k != CONF_UPDATE_INTERVAL}
        hass.config_entries.async_update_entry(entry, options=options, minor_version=2)
    return True


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
        raise_wrong_device(hass, entry, info)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="wrong_device",
            translation_placeholders={"expected": str(entry.unique_id), "found": info.device_id},
        )

    clear_wrong_device(hass, entry.entry_id)

    coordinator = JoulegateDataUpdateCoordinator(hass, entry, client, info)
    gate: JoulegateGateCoordinator | None = None
    if gate_config := GateConfig.from_options(entry.options):
        # The input issues follow what each cycle read; they go when the entry unloads (or its
        # setup fails), and the agent's lease runs out.
        issues = InputIssues(hass, entry, gate_config.stale_after)
        entry.async_on_unload(issues.clear)
        # Listening before the first refresh: rows that finished while Home
        # Assistant was down are announced then, and must be counted too.
        gate = JoulegateGateCoordinator(
            hass, entry, coordinator, gate_config, on_readings=issues.update
        )
        await gate.async_load()
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = JoulegateData(coordinator=coordinator, gate=gate)

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if gate is not None:
        gate.async_start()
    AgentWatch(hass, entry, coordinator)

    entry.async_create_background_task(
        hass,
        coordinator.async_listen_events(),
        name=f"Joulegate {entry.title} event stream",
    )
    return True


async def async_unload_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> bool:
    """Unload a Joulegate config entry (its event stream task, gate timer and input issues go
    with it).

    The agent's gate is left as it is: its lease runs out and the agent falls back to its own
    default.
    """
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> None:
    """Delete what a removed entry saved: ledger cursor and totals, gate settings, issues."""
    await LedgerStore(hass, entry.entry_id).async_remove_all()
    await gate_store(hass, entry.entry_id).async_remove()
    delete_issues(hass, entry.entry_id)
    delete_retired_issue(hass, entry.entry_id)
    delete_agent_issues(hass, entry.entry_id)
