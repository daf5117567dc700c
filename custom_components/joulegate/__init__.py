"""The Joulegate integration: the energy of every AI inference on an edge box."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .agent_issues import clear_wrong_device, delete_agent_issues, raise_wrong_device
from .agent_watch import AgentWatch
from .binary_sensor import INFERENCE_ALLOWED
from .client import JoulegateClient
from .const import CONF_UPDATE_INTERVAL, DOMAIN
from .coordinator import JoulegateConfigEntry, JoulegateData, JoulegateDataUpdateCoordinator
from .exceptions import JoulegateAuthenticationError, JoulegateError
from .gate import GateRunner, gate_store
from .inputs import GateConfig
from .issues import delete_issues
from .number import NUMBERS
from .retired import delete_retired_issue
from .select import BATTERY_POLICY, GATE_MODE
from .sensor import GATE_SENSORS
from .services import async_setup_services
from .store import LedgerStore

# Select and number hold the surplus gate's settings; they have entities only
# once the gate's inputs are chosen in the options.
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

# Every entity the surplus gate may have; which ones an entry has depends on its inputs.
GATE_ENTITY_KEYS = frozenset(
    description.key
    for description in (*GATE_SENSORS, *NUMBERS, GATE_MODE, BATTERY_POLICY, INFERENCE_ALLOWED)
)


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
    gate: GateRunner | None = None
    if gate_config := GateConfig.from_options(entry.options):
        # Listening before the first refresh: rows that finished while Home
        # Assistant was down are announced then, and must be counted too.
        gate = GateRunner(hass, entry, coordinator, gate_config)
        await gate.async_load()
    try:
        await coordinator.async_config_entry_first_refresh()
    except Exception:
        if gate is not None:
            await gate.async_unload()
        raise
    entry.runtime_data = JoulegateData(client=client, info=info, coordinator=coordinator, gate=gate)

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    _remove_stale_gate_entities(hass, entry, gate.entity_keys if gate else set())
    if gate is not None:
        gate.async_start()
    AgentWatch(hass, entry, coordinator)

    entry.async_create_background_task(
        hass,
        coordinator.async_listen_events(),
        name=f"Joulegate {entry.title} event stream",
    )
    return True


def _remove_stale_gate_entities(
    hass: HomeAssistant, entry: JoulegateConfigEntry, provided: set[str]
) -> None:
    """Remove gate entities the entry's inputs no longer give (the gate or battery removed)."""
    registry = er.async_get(hass)
    prefix = f"{entry.runtime_data.info.device_id}_"
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        key = entity.unique_id.removeprefix(prefix)
        if key in GATE_ENTITY_KEYS and key not in provided:
            registry.async_remove(entity.entity_id)


async def async_unload_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> bool:
    """Unload a Joulegate config entry (its event stream task and gate timer go with it).

    The agent's gate is left as it is: its lease runs out and the agent falls back to its own
    default.
    """
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded and (gate := entry.runtime_data.gate) is not None:
        await gate.async_unload()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: JoulegateConfigEntry) -> None:
    """Delete what a removed entry saved: ledger cursor and totals, gate settings, issues."""
    await LedgerStore(hass, entry.entry_id).async_remove_all()
    await gate_store(hass, entry.entry_id).async_remove()
    delete_issues(hass, entry.entry_id)
    delete_retired_issue(hass, entry.entry_id)
    delete_agent_issues(hass, entry.entry_id)
