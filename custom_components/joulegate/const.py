"""Constants for the Joulegate integration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

DOMAIN: Final = "joulegate"

LOGGER = logging.getLogger(__package__)

# The agent's default listening port (`joulegate-agent serve --port`).
DEFAULT_PORT: Final = 8787

# The option that set the polling interval until config entry version 1.2, which drops it.
CONF_UPDATE_INTERVAL: Final = "update_interval"

# Short debounce for refreshes requested by the agent's event stream: a burst of
# finished inferences costs one round trip, a single one shows at once.
EVENT_REFRESH_COOLDOWN: Final = timedelta(seconds=0.5)

# Event stream reconnect back-off, in seconds.
EVENT_STREAM_BACKOFF_MIN: Final = 1.0
EVENT_STREAM_BACKOFF_MAX: Final = 60.0

# Ledger: how many recent inferences the rolling means cover, and how the
# integration pages through rows it has not seen yet.
ROLLING_WINDOW: Final = 20
LEDGER_PAGE_SIZE: Final = 100
LEDGER_MAX_PAGES_PER_UPDATE: Final = 10

# Fired on the event bus once per ledger row, exactly once per inference.
EVENT_INFERENCE: Final = "joulegate_inference"
EVENT_BATCH_FINISHED: Final = "joulegate_batch_finished"

# Units with no Home Assistant constant. Fixed strings (not translated) so that
# long-term statistics keep one unit whatever the UI language.
UNIT_INFERENCES: Final = "inferences"
UNIT_TOKENS: Final = "tokens"
UNIT_REQUESTS: Final = "requests"
UNIT_BATCHES: Final = "batches"
UNIT_WH_PER_INFERENCE: Final = "Wh/inference"
UNIT_J_PER_TOKEN: Final = "J/token"  # noqa: S105 (a unit, not a secret)
UNIT_TOKENS_PER_SECOND: Final = "tokens/s"

# --------------------------------------------------------------------------- #
# The solar surplus gate (options, set in the options flow's "gate" branch).

# Where the grid flow comes from.
CONF_GRID_SOURCE: Final = "grid_source"
GRID_SOURCE_NONE: Final = "none"  # no gate: Home Assistant leaves the agent's gate alone
GRID_SOURCE_SIGNED: Final = "signed"  # one signed grid power sensor
GRID_SOURCE_IMPORT_EXPORT: Final = "import_export"  # separate import and export sensors
GRID_SOURCE_PV_LOAD: Final = "pv_load"  # PV power and house consumption
GRID_SOURCES: Final = (
    GRID_SOURCE_NONE,
    GRID_SOURCE_SIGNED,
    GRID_SOURCE_IMPORT_EXPORT,
    GRID_SOURCE_PV_LOAD,
)
CONF_GRID_POWER: Final = "grid_power"
CONF_GRID_SIGN: Final = "grid_sign"
SIGN_IMPORT_POSITIVE: Final = "import_positive"
SIGN_EXPORT_POSITIVE: Final = "export_positive"
CONF_GRID_IMPORT: Final = "grid_import"
CONF_GRID_EXPORT: Final = "grid_export"
CONF_PV_POWER: Final = "pv_power"
CONF_LOAD_POWER: Final = "load_power"

# The home battery.
CONF_BATTERY_SOURCE: Final = "battery_source"
BATTERY_SOURCE_NONE: Final = "none"
BATTERY_SOURCE_SIGNED: Final = "signed"
BATTERY_SOURCE_CHARGE_DISCHARGE: Final = "charge_discharge"
BATTERY_SOURCES: Final = (
    BATTERY_SOURCE_NONE,
    BATTERY_SOURCE_SIGNED,
    BATTERY_SOURCE_CHARGE_DISCHARGE,
)
CONF_BATTERY_POWER: Final = "battery_power"
CONF_BATTERY_SIGN: Final = "battery_sign"
SIGN_DISCHARGE_POSITIVE: Final = "discharge_positive"
SIGN_CHARGE_POSITIVE: Final = "charge_positive"
CONF_BATTERY_CHARGE: Final = "battery_charge"
CONF_BATTERY_DISCHARGE: Final = "battery_discharge"
CONF_BATTERY_SOC: Final = "battery_soc"
CONF_BATTERY_CAPACITY: Final = "battery_capacity"  # kWh


@dataclass(frozen=True)
class TwoWayFlow:
    """The options of a flow that runs both ways (grid, battery): one signed sensor or two."""

    source_key: str  # the source option
    signed_value: str  # its value for one signed sensor
    split_value: str  # its value for two sensors
    entity_key: str  # the signed sensor
    sign_key: str  # its sign convention
    normal_sign: str  # the Energy dashboard's convention (+ import, + discharge)
    inverted_sign: str
    from_key: str  # the "from" sensor (grid import, battery discharge)
    to_key: str  # the "to" sensor (grid export, battery charge)


GRID_FLOW: Final = TwoWayFlow(
    CONF_GRID_SOURCE,
    GRID_SOURCE_SIGNED,
    GRID_SOURCE_IMPORT_EXPORT,
    CONF_GRID_POWER,
    CONF_GRID_SIGN,
    SIGN_IMPORT_POSITIVE,
    SIGN_EXPORT_POSITIVE,
    CONF_GRID_IMPORT,
    CONF_GRID_EXPORT,
)
BATTERY_FLOW: Final = TwoWayFlow(
    CONF_BATTERY_SOURCE,
    BATTERY_SOURCE_SIGNED,
    BATTERY_SOURCE_CHARGE_DISCHARGE,
    CONF_BATTERY_POWER,
    CONF_BATTERY_SIGN,
    SIGN_DISCHARGE_POSITIVE,
    SIGN_CHARGE_POSITIVE,
    CONF_BATTERY_DISCHARGE,
    CONF_BATTERY_CHARGE,
)

# Optional inputs.
CONF_PV_FORECAST: Final = "pv_forecast"  # energy the PV still makes today
CONF_PV_FORECAST_TOMORROW: Final = "pv_forecast_tomorrow"  # energy the PV makes tomorrow
CONF_PV_ENERGY: Final = "pv_energy"  # PV energy meter, for today's yield
CONF_CARBON_INTENSITY: Final = "carbon_intensity"  # gCO2e/kWh of grid power

# Behaviour.
CONF_STALE_AFTER: Final = "stale_after"
DEFAULT_STALE_AFTER: Final = 300
MIN_STALE_AFTER: Final = 30
MAX_STALE_AFTER: Final = 3600
CONF_FAIL_OPEN: Final = "fail_open"
CONF_INFERENCE_POWER: Final = "inference_power"  # W above idle, until the ledger measures it
DEFAULT_INFERENCE_POWER: Final = 10.0
# Power levels and several rigs behind one grid meter (a site).
CONF_PRIORITY: Final = "priority"  # higher first; rigs of equal priority in the order added
DEFAULT_PRIORITY: Final = 0
CONF_LEVEL_MODE: Final = "level_mode"  # levels.LevelMode (fastest or efficient), or off
LEVEL_MODE_OFF: Final = "off"  # the default: the rig runs on its own settings, on or off
LEVEL_MODES: Final = (LEVEL_MODE_OFF, "fastest", "efficient")
POWER_REFRESH_CYCLES: Final = 30  # the agent's levels and costs read again every 5 minutes
# What a batch may use when the sun does not come before its deadline, unless its metadata says.
CONF_WHEN_SUN_FAILS: Final = "batch_when_sun_fails"
WHEN_SUN_FAILS_CHOICES: Final = ("grid", "battery", "expire")

# Every option key the gate branch owns (cleared when the gate is switched off).
GATE_OPTION_KEYS: Final = (
    CONF_GRID_SOURCE,
    CONF_GRID_POWER,
    CONF_GRID_SIGN,
    CONF_GRID_IMPORT,
    CONF_GRID_EXPORT,
    CONF_PV_POWER,
    CONF_LOAD_POWER,
    CONF_BATTERY_SOURCE,
    CONF_BATTERY_POWER,
    CONF_BATTERY_SIGN,
    CONF_BATTERY_CHARGE,
    CONF_BATTERY_DISCHARGE,
    CONF_BATTERY_SOC,
    CONF_BATTERY_CAPACITY,
    CONF_PV_FORECAST,
    CONF_PV_FORECAST_TOMORROW,
    CONF_PV_ENERGY,
    CONF_CARBON_INTENSITY,
    CONF_STALE_AFTER,
    CONF_FAIL_OPEN,
    CONF_INFERENCE_POWER,
    CONF_PRIORITY,
    CONF_LEVEL_MODE,
    CONF_WHEN_SUN_FAILS,
)

# The controller cycle. The agent's lease covers three cycles, so one lost
# request does not close the gate, and a stopped Home Assistant lets it lapse
# to the agent's fallback within half a minute.
GATE_CYCLE: Final = timedelta(seconds=10)
# How often the agent's status is read. Fixed (Home Assistant's policy: no user-set polling
# interval) and no slower than the gate cycle, which reads the rig's power from it; finished
# inferences and gate changes come at once through the event stream anyway.
UPDATE_INTERVAL: Final = GATE_CYCLE
LEASE_CYCLES: Final = 3
# Recent flows kept for attributing ledger rows that arrive after their time.
FLOW_HISTORY: Final = 360  # samples: an hour at one per cycle
FLOW_MATCH_TOLERANCE: Final = timedelta(seconds=60)
GATE_STORAGE_VERSION: Final = 1

# Actions.
SERVICE_ALLOW_INFERENCE: Final = "allow_inference"
SERVICE_BLOCK_INFERENCE: Final = "block_inference"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_DURATION: Final = "duration"
MAX_OVERRIDE: Final = timedelta(days=7)

UNIT_INFERENCES_PER_HOUR: Final = "inferences/h"
UNIT_G_CO2E_PER_INFERENCE: Final = "gCO2e/inference"
