"""Options of a Joulegate agent: the surplus gate's inputs.

Three forms: where the grid flow comes from (and whether there is a home battery); which entities
measure it (filtered by device class); then the optional inputs and the fail-safe. Every entity is
checked: a unit that cannot be converted or a state that is not a number is refused with a
message. Polling is not an option: it is fixed at the gate's cycle. Where the agent has power
levels, a fourth form shows what each costs and asks whether the rig follows the sun with them
(and how), and its priority among the rigs behind the same grid meter.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigFlowResult, OptionsFlowWithReload
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)

from .const import (
    BATTERY_FLOW,
    BATTERY_SOURCE_CHARGE_DISCHARGE,
    BATTERY_SOURCE_NONE,
    BATTERY_SOURCE_SIGNED,
    BATTERY_SOURCES,
    CONF_BATTERY_CAPACITY,
    CONF_BATTERY_SOURCE,
    CONF_FAIL_OPEN,
    CONF_GRID_SOURCE,
    CONF_INFERENCE_POWER,
    CONF_LEVEL_MODE,
    CONF_PRIORITY,
    CONF_STALE_AFTER,
    CONF_WHEN_SUN_FAILS,
    DEFAULT_INFERENCE_POWER,
    DEFAULT_PRIORITY,
    DEFAULT_STALE_AFTER,
    GATE_OPTION_KEYS,
    GRID_FLOW,
    GRID_SOURCE_NONE,
    GRID_SOURCE_SIGNED,
    GRID_SOURCES,
    LEVEL_MODE_OFF,
    LEVEL_MODES,
    MAX_STALE_AFTER,
    MIN_STALE_AFTER,
    WHEN_SUN_FAILS_CHOICES,
)
from .exceptions import JoulegateError
from .inputs import ROLE_KINDS, GateConfig, Kind, flow_error
from .levels import LevelCost
from .rig import level_costs

# Roles that the "extras" form asks for; the others are on the "sensors" form.
OPTIONAL_ROLES = GateConfig.roles(GRID_SOURCE_NONE, None)

_DEVICE_CLASS = {
    Kind.POWER: "power",
    Kind.PERCENT: "battery",
    Kind.ENERGY: "energy",
}


def _entity_selector(role: str) -> EntitySelector:
    kind = ROLE_KINDS[role]
    config = EntitySelectorConfig(domain="sensor")
    if device_class := _DEVICE_CLASS.get(kind):
        config["device_class"] = device_class
    return EntitySelector(config)


def _choice(options: tuple[str, ...] | list[str], key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(
            options=list(options), translation_key=key, mode=SelectSelectorMode.LIST
        )
    )


def _number(low: float, high: float, step: float, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=low, max=high, step=step, unit_of_measurement=unit, mode=NumberSelectorMode.BOX
        )
    )


class JoulegateOptionsFlow(OptionsFlowWithReload):
    """The surplus gate's inputs."""

    _options: dict[str, Any]
    _suggested: dict[str, Any]

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The gate's options are the only ones."""
        return await self.async_step_gate(user_input)

    async def async_step_gate(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Where the grid flow comes from, and the home battery."""
        if user_input is not None:
            if user_input[CONF_GRID_SOURCE] == GRID_SOURCE_NONE:
                # No gate: Home Assistant stops leasing, the agent keeps its own default.
                return self.async_create_entry(
                    data={
                        key: value
                        for key, value in self.config_entry.options.items()
                        if key not in GATE_OPTION_KEYS
                    }
                )
            self._options.update(user_input)
            return await self.async_step_sensors()

        current = dict(self.config_entry.options)
        self._options = current
        self._suggested = dict(current)
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_GRID_SOURCE,
                    default=self._suggested.get(CONF_GRID_SOURCE, GRID_SOURCE_SIGNED),
                ): _choice(GRID_SOURCES, CONF_GRID_SOURCE),
                vol.Required(
                    CONF_BATTERY_SOURCE,
                    default=self._suggested.get(CONF_BATTERY_SOURCE, BATTERY_SOURCE_NONE),
                ): _choice(BATTERY_SOURCES, CONF_BATTERY_SOURCE),
            }
        )
        return self.async_show_form(step_id="gate", data_schema=schema)

    def _check(self, user_input: dict[str, Any], roles: list[str]) -> dict[str, str]:
        errors: dict[str, str] = {}
        for role in roles:
            if (entity_id := user_input.get(role)) and (
                error := flow_error(self.hass, entity_id, ROLE_KINDS[role])
            ):
                errors[role] = error
        return errors

    async def async_step_sensors(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The entities that measure the flows."""
        grid_source = self._options[CONF_GRID_SOURCE]
        battery_source = self._options[CONF_BATTERY_SOURCE]
        roles = [
            role
            for role in GateConfig.roles(grid_source, battery_source)
            if role not in OPTIONAL_ROLES
        ]
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = self._check(user_input, roles)
            if not errors:
                self._options.update(user_input)
                return await self.async_step_extras()

        fields: dict[vol.Marker, Any] = {}
        for role in roles:
            fields[vol.Required(role)] = _entity_selector(role)
        for flow in (GRID_FLOW, BATTERY_FLOW):
            if self._options[flow.source_key] == flow.signed_value:
                default = self._suggested.get(flow.sign_key, flow.normal_sign)
                fields[vol.Required(flow.sign_key, default=default)] = _choice(
                    (flow.normal_sign, flow.inverted_sign), flow.sign_key
                )
        return self.async_show_form(
            step_id="sensors",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(fields), user_input or self._suggested
            ),
            errors=errors,
        )

    async def async_step_extras(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Optional inputs, and how the gate behaves."""
        has_battery = self._options[CONF_BATTERY_SOURCE] in (
            BATTERY_SOURCE_SIGNED,
            BATTERY_SOURCE_CHARGE_DISCHARGE,
        )
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = self._check(user_input, OPTIONAL_ROLES)
            if not errors:
                options = {
                    key: value
                    for key, value in self._options.items()
                    if key not in (*OPTIONAL_ROLES, CONF_BATTERY_CAPACITY)
                }
                options.update(user_input)
                options[CONF_STALE_AFTER] = int(user_input[CONF_STALE_AFTER])
                # Keep only what the chosen sources use.
                used = set(
                    GateConfig.roles(options[CONF_GRID_SOURCE], options[CONF_BATTERY_SOURCE])
                )
                for flow in (GRID_FLOW, BATTERY_FLOW):
                    if options[flow.source_key] != flow.signed_value:
                        options.pop(flow.sign_key, None)
                self._options = {
                    key: value
                    for key, value in options.items()
                    if key not in ROLE_KINDS or key in used
                }
                return await self.async_step_levels()

        fields: dict[vol.Marker, Any] = {
            vol.Optional(role): _entity_selector(role) for role in OPTIONAL_ROLES
        }
        if has_battery:
            fields[vol.Optional(CONF_BATTERY_CAPACITY)] = _number(0.1, 1000, 0.1, "kWh")
        fields[vol.Required(CONF_STALE_AFTER, default=DEFAULT_STALE_AFTER)] = _number(
            MIN_STALE_AFTER, MAX_STALE_AFTER, 1, "s"
        )
        fields[vol.Required(CONF_INFERENCE_POWER, default=DEFAULT_INFERENCE_POWER)] = _number(
            0.1, 1000, 0.1, "W"
        )
        fields[vol.Required(CONF_FAIL_OPEN, default=False)] = BooleanSelector()
        fields[vol.Optional(CONF_WHEN_SUN_FAILS)] = _choice(
            WHEN_SUN_FAILS_CHOICES, CONF_WHEN_SUN_FAILS
        )
        return self.async_show_form(
            step_id="extras",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(fields), user_input or self._suggested
            ),
            errors=errors,
        )

    async def async_step_levels(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The agent's power levels and what each costs; whether the rig follows the sun with
        them, and its priority among the rigs behind the same grid meter. Skipped where the
        agent has no levels (or cannot be reached now)."""
        if user_input is not None:
            self._options[CONF_LEVEL_MODE] = user_input[CONF_LEVEL_MODE]
            self._options[CONF_PRIORITY] = int(user_input[CONF_PRIORITY])
            return self.async_create_entry(data=self._options)
        costs = await self._level_costs()
        if not costs:
            return self.async_create_entry(data=self._options)
        fields: dict[vol.Marker, Any] = {
            vol.Required(CONF_LEVEL_MODE, default=LEVEL_MODE_OFF): _choice(
                LEVEL_MODES, CONF_LEVEL_MODE
            ),
            vol.Required(CONF_PRIORITY, default=DEFAULT_PRIORITY): _number(-100, 100, 1, ""),
        }
        return self.async_show_form(
            step_id="levels",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(fields), self._suggested),
            description_placeholders={"levels": levels_table(costs)},
        )

    async def _level_costs(self) -> list[LevelCost]:
        data = getattr(self.config_entry, "runtime_data", None)
        client = getattr(data, "client", None)
        if client is None:
            return []
        try:
            power = await client.get_power()
        except JoulegateError:
            return []
        return level_costs(power) if power.settable else []


def levels_table(costs: list[LevelCost]) -> str:
    """The levels as a Markdown table: W above idle, tokens/s and J/token as measured."""

    def shown(value: float | None, digits: int) -> str:
        return "not measured" if value is None else f"{value:.{digits}f}"

    rows = [
        f"| {cost.name} | {shown(cost.w_above_idle, 1)} | {shown(cost.tokens_per_s, 1)} | "
        + (
            shown(cost.w_above_idle / cost.tokens_per_s, 3)
            if cost.w_above_idle and cost.tokens_per_s
            else "not measured"
        )
        + " |"
        for cost in costs
    ]
    return "\n".join(["| level | W above idle | tokens/s | J/token |", "|---|---|---|---|", *rows])
