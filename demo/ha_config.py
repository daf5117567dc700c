"""The Home Assistant configuration folder the demo and the end-to-end tests run `hass` on.

Minimal on purpose (no `default_config`): the frontend and what it needs, the REST API, the
recorder and history (for graphs and long-term statistics), the Energy dashboard, template
sensors for the simulated house and energy meters integrated from them, a YAML dashboard, and the
Joulegate integration linked in from this repository.
`configuration.yaml` is rewritten on every start; `.storage/` (users, config entries, registries)
and the database are kept, so a second start is quick and keeps its history.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from demo.procs import REPO_ROOT
from demo.sunny_day import Site

INTEGRATION_SRC = REPO_ROOT / "custom_components" / "joulegate"
EXAMPLE_DASHBOARD = REPO_ROOT / "examples" / "dashboard.yaml"
DASHBOARD_FILE = "joulegate-dashboard.yaml"
DASHBOARD_URL_PATH = "joulegate-demo"
HOUSE_EVENT = "joulegate_demo_house"
# The device name examples/dashboard.yaml is written for (entity ids sensor.orin_rooftop_*).
EXAMPLE_PREFIX = "orin_rooftop_"


@dataclass(frozen=True, slots=True)
class HouseSensor:
    """A trigger-based template sensor fed by the driver's `joulegate_demo_house` events."""

    name: str
    key: str  # field of the event's data
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = "measurement"
    icon: str | None = None
    # The part of a signed flow this sensor shows: +1 the positive part, -1 the negative part
    # turned positive (grid export, battery charge), 0 the value as it is.
    part: int = 0

    @property
    def entity_id(self) -> str:
        return "sensor." + re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


HOUSE_SENSORS = (
    HouseSensor("Demo PV power", "pv_w", "W", "power", icon="mdi:solar-power-variant"),
    HouseSensor("Demo house load", "house_w", "W", "power", icon="mdi:home-lightning-bolt"),
    HouseSensor("Demo grid power", "grid_w", "W", "power", icon="mdi:transmission-tower"),
    HouseSensor("Demo battery power", "battery_w", "W", "power", icon="mdi:home-battery"),
    HouseSensor("Demo battery level", "battery_soc", "%", "battery"),
    # One-way powers, for the energy meters below.
    HouseSensor("Demo grid import power", "grid_w", "W", "power", part=1),
    HouseSensor("Demo grid export power", "grid_w", "W", "power", part=-1),
    HouseSensor("Demo battery discharge power", "battery_w", "W", "power", part=1),
    HouseSensor("Demo battery charge power", "battery_w", "W", "power", part=-1),
    HouseSensor(
        "Demo PV forecast remaining",
        "forecast_kwh",
        "kWh",
        "energy",
        state_class=None,
        icon="mdi:solar-power",
    ),
    HouseSensor(
        "Demo PV energy",
        "pv_kwh",
        "kWh",
        "energy",
        state_class="total_increasing",
        icon="mdi:solar-power",
    ),
    HouseSensor("Demo cloud cover", "cloud_pct", "%", icon="mdi:weather-partly-cloudy"),
    HouseSensor("Demo clock", "time", state_class=None, icon="mdi:clock-fast"),
)


@dataclass(frozen=True, slots=True)
class EnergyMeter:
    """A kWh meter Home Assistant integrates from one of the house's power sensors.

    The Energy dashboard takes these. They count wall-clock time, as the rig's own energy meter
    does, so that in the sped-up day the rig's share of the house is what it really is; the
    "Demo PV energy" sensor counts the simulated day's yield instead (the gate's PV inputs).
    """

    name: str
    source: str  # a power sensor's entity id

    @property
    def entity_id(self) -> str:
        return "sensor." + re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


ENERGY_METERS = (
    EnergyMeter("Demo grid import energy", "sensor.demo_grid_import_power"),
    EnergyMeter("Demo grid export energy", "sensor.demo_grid_export_power"),
    EnergyMeter("Demo solar production", "sensor.demo_pv_power"),
    EnergyMeter("Demo battery discharge energy", "sensor.demo_battery_discharge_power"),
    EnergyMeter("Demo battery charge energy", "sensor.demo_battery_charge_power"),
)


def _state_template(sensor: HouseSensor) -> str:
    value = f"trigger.event.data.{sensor.key}"
    if sensor.part == 0:
        return f"{{{{ {value} }}}}"
    sign = "" if sensor.part > 0 else "-"
    # 0 first: of equals, max keeps the first, so no "-0" when the flow is nil.
    return f"{{{{ [0, {sign}({value} | float(0))] | max | round(1) }}}}"


def _meters_yaml() -> str:
    lines = [
        "# Energy meters for the Energy dashboard: left Riemann sums of the house's one-way",
        "# powers, in kWh, over wall-clock time (see demo/ha_config.py).",
    ]
    for meter in ENERGY_METERS:
        slug = meter.entity_id.split(".", 1)[1]
        lines += [
            "- platform: integration",
            f"  name: {meter.name}",
            f"  unique_id: joulegate_{slug}",
            f"  source: {meter.source}",
            "  method: left",
            "  unit_prefix: k",
            "  round: 5",
            "  max_sub_interval:",
            "    seconds: 30",
        ]
    return "\n".join(lines) + "\n"


def _house_yaml() -> str:
    lines = [
        "# The simulated house: the demo's driver fires `joulegate_demo_house` events, with",
        "# grid + import / - export and battery + discharge / - charge.",
        "- triggers:",
        "    - trigger: event",
        f"      event_type: {HOUSE_EVENT}",
        "  sensor:",
    ]
    for sensor in HOUSE_SENSORS:
        slug = sensor.entity_id.split(".", 1)[1]
        lines += [
            f"    - name: {sensor.name}",
            f"      unique_id: joulegate_{slug}",
            f'      state: "{_state_template(sensor)}"',
        ]
        if sensor.unit:
            lines.append(f'      unit_of_measurement: "{sensor.unit}"')
        if sensor.device_class:
            lines.append(f"      device_class: {sensor.device_class}")
        if sensor.state_class:
            lines.append(f"      state_class: {sensor.state_class}")
        if sensor.icon:
            lines.append(f"      icon: {sensor.icon}")
    return "\n".join(lines) + "\n"


def _configuration_yaml(port: int, site: Site, log_level: str) -> str:
    return f"""\
# Written by the Joulegate demo (demo/ha_config.py) on every start: changes here are lost.
homeassistant:
  name: Joulegate demo
  latitude: {site.latitude}
  longitude: {site.longitude}
  elevation: {site.altitude_m:.0f}
  unit_system: metric
  time_zone: {site.time_zone}
  currency: EUR
  country: DE
  language: en
  internal_url: http://127.0.0.1:{port}

http:
  server_host: 127.0.0.1
  server_port: {port}

frontend:
config:
api:
history:
recorder:
  commit_interval: 2
  purge_keep_days: 30
energy:

logger:
  default: {log_level}
  logs:
    custom_components.joulegate: info
    homeassistant.setup: info
    homeassistant.components.http: warning

lovelace:
  dashboards:
    {DASHBOARD_URL_PATH}:
      mode: yaml
      filename: {DASHBOARD_FILE}
      title: Joulegate
      icon: mdi:solar-power-variant
      show_in_sidebar: true
      require_admin: false

template: !include joulegate-demo-house.yaml
sensor: !include joulegate-demo-meters.yaml
"""


def write_config(config_dir: Path, *, port: int, site: Site, log_level: str = "warning") -> None:
    """Create or refresh the configuration folder; keeps `.storage/` and the database."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text(_configuration_yaml(port, site, log_level))
    (config_dir / "joulegate-demo-house.yaml").write_text(_house_yaml())
    (config_dir / "joulegate-demo-meters.yaml").write_text(_meters_yaml())
    dashboard = config_dir / DASHBOARD_FILE
    if not dashboard.exists():
        # Until the integration's entities exist, show the example as it is.
        dashboard.write_text(EXAMPLE_DASHBOARD.read_text())

    custom = config_dir / "custom_components"
    custom.mkdir(exist_ok=True)
    link = custom / "joulegate"
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == INTEGRATION_SRC:
            pass
        elif link.is_symlink() or link.is_file():
            link.unlink()
        else:
            raise FileExistsError(f"{link} is a folder: remove it, the demo links the integration")
    if not link.exists():
        link.symlink_to(INTEGRATION_SRC, target_is_directory=True)

    storage = config_dir / ".storage"
    storage.mkdir(exist_ok=True)
    onboarding = storage / "onboarding"
    if not onboarding.exists() and not (storage / "auth").exists():
        # A fresh config: every onboarding step but the owner is done, so no location, analytics
        # or "integrations found" pages; the owner is created through /api/onboarding/users.
        onboarding.write_text(
            json.dumps(
                {
                    "version": 4,
                    "minor_version": 1,
                    "key": "onboarding",
                    "data": {"done": ["core_config", "analytics", "integration"]},
                }
            )
        )


def render_dashboard(example: str, prefix: str, *, demo: bool = True) -> str:
    """The example dashboard for a device whose entity ids start with `prefix` (`orin_rooftop_`).

    With `demo`, graphs cover one hour instead of a day and statistics come in 5-minute steps
    over a day instead of hourly over a week: the demo's day passes in ~25 minutes.
    """
    text = example.replace(EXAMPLE_PREFIX, prefix)
    if demo:
        text = re.sub(r"hours_to_show: 24\b", "hours_to_show: 1", text)
        text = re.sub(r"period: hour\b", "period: 5minute", text)
        text = re.sub(r"days_to_show: 7\b", "days_to_show: 1", text)
    return text


def dashboard_entities(dashboard: str) -> set[str]:
    """Every entity id the dashboard YAML mentions (outside comments)."""
    dashboard = re.sub(r"(?m)^\s*#.*$", "", dashboard)
    return set(
        re.findall(r"\b((?:sensor|binary_sensor|switch|select|number)\.[a-z0-9_]+)", dashboard)
    )
