"""The surplus gate in Home Assistant: read the home, step the controller, lease the agent's gate.

Every cycle (10 s) the runner reads the input entities, the rig's power above idle from the
status coordinator, and the measured power of inference; steps `SurplusController`; and renews
the agent's lease (`PUT /api/v1/gate`) for three cycles. When Home Assistant stops, nothing is
sent: the lease runs out and the agent falls back to its own default. Each new ledger row is
split into solar, battery and grid energy with the flows of its time (`accounting`).

The runner is a coordinator of its own, whose data is the latest cycle's outcome: its entities
follow it as the agent's follow the status coordinator. It reads that coordinator and never the
other way round; what a cycle read is handed to `on_readings` (the input issues, wired together
in `__init__`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import SUN_EVENT_SUNRISE, SUN_EVENT_SUNSET
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.helpers.sun import get_astral_event_date
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .accounting import Accounting, AccountingSummary, FlowHistory, FlowSample, split_energy
from .allocation import Allotment, RigReading
from .batch_gate import BatchGate
from .batch_plan import Plan, PlanReason, WhenSunFails
from .const import (
    CONF_PV_FORECAST,
    CONF_WHEN_SUN_FAILS,
    DOMAIN,
    FLOW_HISTORY,
    FLOW_MATCH_TOLERANCE,
    GATE_CYCLE,
    GATE_STORAGE_VERSION,
    LEASE_CYCLES,
    LOGGER,
)
from .coordinator import JoulegateDataUpdateCoordinator
from .deadline import deadline_allotment
from .exceptions import JoulegateError
from .house_load import HouseLoad
from .inputs import Flows, GateConfig
from .ledger import OUTCOME_REFUSED, ran_s
from .levels import LevelReason
from .models import Inference, Info
from .rig import RigOptions, RigPower
from .site import drop_site, site_for
from .surplus import (
    BatteryPolicy,
    Decision,
    GateMode,
    Inputs,
    Reason,
    Settings,
    SurplusController,
    rig_above_idle,
)

# The settings that entities change, with the controller's defaults.
NUMBER_SETTINGS = ("reserve_soc", "margin_w", "thermal_limit_c", "min_off_s")


def gate_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """The store of an entry's gate settings (mode, policy, numbers, override)."""
    return Store(hass, GATE_STORAGE_VERSION, f"{DOMAIN}.{entry_id}.gate")


@dataclass(frozen=True, slots=True)
class Override:
    """An action's temporary override of the gate mode."""

    open: bool
    until: datetime

    def as_dict(self) -> dict[str, Any]:
        """As saved and shown in diagnostics."""
        return {"open": self.open, "until": self.until.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Override | None:
        """A saved override, or None where its end cannot be read."""
        until = dt_util.parse_datetime(str(data.get("until")))
        return None if until is None else cls(open=bool(data.get("open")), until=until)


@dataclass(frozen=True, kw_only=True)
class GateState:
    """The outcome of the latest cycle, for the entities."""

    open: bool | None = None  # None: no cycle yet
    reason: Reason | None = None
    surplus_w: float | None = None  # what the rig may use now (never below 0)
    need_w: float | None = None  # what inference adds above idle, measured or configured
    energy_per_inference_wh: float | None = None  # above idle, measured
    problems: Mapping[str, str] = field(default_factory=dict)  # role -> problem
    override: Override | None = None
    agent_updated: bool = False  # the agent took the latest lease
    # Where the site allocates (levels, or several rigs): the rig's share and why.
    level: str | None = None  # the level the agent holds after the lease (the lowest while closed)
    allotted_w: float | None = None
    allotment_reason: Reason | LevelReason | None = None
    batch_plan: Plan | None = None  # the deadline rule's (None: no batch in progress)

    @property
    def inferences_per_hour(self) -> float | None:
        """How many inferences an hour the present surplus pays for, one after another.

        The rig uses at most its inference power (`need_w`) however large the house's surplus,
        so that much surplus is all it can turn into inferences: at most one per mean inference
        time, not the house's kilowatts over a few joules.
        """
        if self.surplus_w is None or self.need_w is None or not self.energy_per_inference_wh:
            return None
        return min(self.surplus_w, self.need_w) / self.energy_per_inference_wh


class JoulegateGateCoordinator(DataUpdateCoordinator[GateState]):
    """Runs one agent's surplus gate; its data is the outcome of the latest cycle.

    Its entities stay available while the agent is unreachable: the gate still decides (and
    says why the gate is closed), its settings can still be changed, and its totals still hold.
    """

    config_entry: ConfigEntry[Any]

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        agent: JoulegateDataUpdateCoordinator,
        config: GateConfig,
        on_readings: Callable[[Flows, datetime], None],
    ) -> None:
        """Prepare the gate; `async_load` restores its settings and totals."""
        super().__init__(hass, LOGGER, config_entry=entry, name=f"Joulegate {entry.title} gate")
        self.data = GateState()
        self.agent = agent
        self.client = agent.client
        self.config = config
        self.controller = SurplusController()
        self.mode = GateMode.SOLAR
        self.override: Override | None = None
        self._summary: AccountingSummary | None = None
        self.flows: Flows | None = None
        self.history = FlowHistory(FLOW_HISTORY, FLOW_MATCH_TOLERANCE)
        self.last_push_error: str | None = None
        self.batch_gate = BatchGate(
            agent.client,
            entry.title,
            WhenSunFails(entry.options.get(CONF_WHEN_SUN_FAILS, WhenSunFails.GRID)),
        )
        self._settings_store = gate_store(hass, entry.entry_id)
        self._on_readings = on_readings
        self._lock = asyncio.Lock()
        self.rig = RigPower(
            entry.entry_id,
            agent.client,
            RigOptions.from_options(entry.options),
            settings=lambda: self.controller.settings,
            reading=self._rig_reading,
            title=entry.title,
        )
        self.site = site_for(hass.data.setdefault(DOMAIN, {}), config.meter_key)
        self.house_load = HouseLoad(hass, config, entry.title)

    # -- lifecycle -------------------------------------------------------------

    @property
    def info(self) -> Info:
        """The agent the gate leases (its entities belong to that device)."""
        return self.agent.info

    @property
    def accounting(self) -> Accounting:
        """The energy accounting, kept (and saved with the ledger cursor) by the agent's
        coordinator."""
        return self.agent.accounting

    async def async_load(self) -> None:
        """Restore the settings, and count every ledger row from now on."""
        stored = await self._settings_store.async_load() or {}
        defaults = Settings()
        try:
            self.mode = GateMode(stored.get("mode", GateMode.SOLAR))
        except ValueError:
            self.mode = GateMode.SOLAR
        try:
            policy = BatteryPolicy(stored.get("policy", defaults.policy))
        except ValueError:
            policy = defaults.policy
        if policy not in self.policies:
            policy = BatteryPolicy.BATTERY_FIRST
        numbers = {
            key: float(stored[key]) if isinstance(stored.get(key), int | float) else None
            for key in NUMBER_SETTINGS
        }
        self.controller.update_settings(
            mode=self.mode,
            policy=policy,
            need_w=self.config.inference_power_w,
            battery_capacity_wh=self.config.battery_capacity_wh,
            fail_open=self.config.fail_open,
            **{key: value for key, value in numbers.items() if value is not None},
        )
        if isinstance(override := stored.get("override"), dict):
            self.override = Override.from_dict(override)
        self._summary = None
        entry = self.config_entry
        await self.rig.async_refresh(force=True)
        self.site.join(self.rig)
        entry.async_on_unload(self._leave_site)
        entry.async_on_unload(self.agent.async_add_row_listener(self._async_on_row))
        # The agent's coordinator saves the rows' totals after counting them: shown after each
        # of its refreshes.
        entry.async_on_unload(self.agent.async_add_listener(self.async_update_listeners))

    @callback
    def async_start(self) -> None:
        """Run a first cycle now, then one every GATE_CYCLE."""
        entry = self.config_entry
        entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                self._async_timer,
                GATE_CYCLE,
                name=f"Joulegate {entry.title} gate",
                cancel_on_shutdown=True,
            )
        )
        entry.async_create_task(
            self.hass, self.async_run_cycle(), f"Joulegate {entry.title} first gate cycle"
        )
        self.house_load.async_start(entry)

    @callback
    def _leave_site(self) -> None:
        self.site.leave(self.rig.key)
        drop_site(self.hass.data.get(DOMAIN, {}), self.site)

    async def _async_update_data(self) -> GateState:
        """A refresh asked for (the update_entity action) shows the latest cycle again: cycles
        run on their own timer and when a setting changes, and each leases the agent's gate."""
        return self.data

    # -- settings --------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The controller's settings."""
        return self.controller.settings

    @property
    def policies(self) -> list[BatteryPolicy]:
        """The battery policies this home's inputs allow (balanced needs a forecast)."""
        if not self.config.has_battery:
            return []
        policies = [BatteryPolicy.BATTERY_FIRST]
        if CONF_PV_FORECAST in self.config.entities and self.config.battery_capacity_wh:
            policies.append(BatteryPolicy.BALANCED)
        return [*policies, BatteryPolicy.INFERENCE_FIRST]

    async def async_set_mode(self, mode: GateMode) -> None:
        """Choose the gate mode; it ends a temporary override."""
        self.mode = mode
        self.override = None
        await self._async_save_settings()
        await self.async_run_cycle()

    async def async_set_policy(self, policy: BatteryPolicy) -> None:
        """Choose the battery policy."""
        self.controller.update_settings(policy=policy)
        await self._async_save_settings()
        await self.async_run_cycle()

    async def async_set_number(self, key: str, value: float) -> None:
        """Change one of NUMBER_SETTINGS."""
        self.controller.update_settings(**{key: value})
        await self._async_save_settings()
        await self.async_run_cycle()

    async def async_override(self, *, open_: bool, duration: timedelta | None) -> bool:
        """Allow or block inference: for `duration`, else by setting the mode.

        Returns whether the agent took the resulting lease.
        """
        if duration is None:
            self.mode = GateMode.ALWAYS if open_ else GateMode.NEVER
            self.override = None
        else:
            self.override = Override(open=open_, until=dt_util.utcnow() + duration)
        await self._async_save_settings()
        await self.async_run_cycle()
        return self.data.agent_updated

    async def _async_save_settings(self) -> None:
        settings = self.settings
        await self._settings_store.async_save(
            {
                "mode": self.mode.value,
                "policy": settings.policy.value,
                **{key: getattr(settings, key) for key in NUMBER_SETTINGS},
                "override": None if self.override is None else self.override.as_dict(),
            }
        )

    # -- the cycle -------------------------------------------------------------

    async def _async_timer(self, now: datetime) -> None:
        await self.async_run_cycle(now)

    async def async_run_cycle(self, now: datetime | None = None) -> None:
        """Read, decide, lease. `now` is the cycle's time (the timer's, or the present)."""
        async with self._lock:
            now = now or dt_util.utcnow()
            if self.override is not None and now >= self.override.until:
                self.override = None
                await self._async_save_settings()
            flows = self.config.read(self.hass, now)
            self.flows = flows
            status = self.agent.data.status if self.agent.last_update_success else None
            rig_w = (
                None
                if status is None
                else rig_above_idle(status.power.board_w, status.idle_baseline_w)
            )
            need_w, per_inference_wh = self._measured_inference()
            mode = self.mode
            if self.override is not None:
                mode = GateMode.ALWAYS if self.override.open else GateMode.NEVER
            self.controller.update_settings(mode=mode, need_w=need_w)
            self.rig.gate_mode = mode
            await self.rig.async_refresh()
            inputs = Inputs(
                now=now.timestamp(),
                grid_w=flows.grid_w,
                rig_inference_w=rig_w,
                has_battery=self.config.has_battery,
                battery_w=flows.battery_w,
                battery_soc=flows.battery_soc,
                forecast_remaining_wh=flows.forecast_remaining_wh,
                temperature_c=status.thermal.max_c if status else None,
                throttling=status.throttling.active if status else False,
            )
            allotment = None
            if self.site.allocates:
                allotment = self.site.allot(self.rig.key, inputs, GATE_CYCLE.total_seconds())
                decision = _gate_decision(allotment)
            else:
                decision = self.controller.step(inputs)
            self._record(now, flows, rig_w)
            self._on_readings(flows, now)
            today = dt_util.as_local(now).date()
            plan = await self.batch_gate.async_plan(
                status.batches if status else None,
                now=now.timestamp(),
                today_end=dt_util.start_of_local_day(today + timedelta(days=1)).timestamp(),
                tomorrow_end=dt_util.start_of_local_day(today + timedelta(days=2)).timestamp(),
                today_daylight=_daylight(self.hass, today),
                tomorrow_daylight=_daylight(self.hass, today + timedelta(days=1)),
                flows=flows,
                decision=decision,
                rig_now_w=rig_w,
                controller=self.controller.settings,
                cycle_s=GATE_CYCLE.total_seconds(),
                load=self.house_load.profile,
            )
            batch_only = plan is not None and plan.admit
            if allotment is not None and batch_only and not decision.open:
                allotment = deadline_allotment(allotment, self.rig.levels())
            pushed = await self._async_push(decision, batch_only=batch_only)
            held = None if allotment is None else await self.rig.async_lease(allotment, _lease_s())
            state = GateState(
                open=decision.open,
                reason=decision.reason,
                surplus_w=self._surplus(decision, inputs),
                need_w=need_w,
                energy_per_inference_wh=per_inference_wh,
                problems={role: str(r.problem) for role, r in flows.problems.items()},
                override=self.override,
                agent_updated=pushed,
                level=held,
                allotted_w=None if allotment is None else allotment.allotted_w,
                allotment_reason=None if allotment is None else allotment.reason,
                batch_plan=plan,
            )
            self.async_set_updated_data(state)

    def _rig_reading(self) -> RigReading:
        """What the agent reports now, for the site's allocation (at any rig's cycle)."""
        status = self.agent.data.status if self.agent.last_update_success else None
        if status is None:
            return RigReading(inference_w=None)
        return RigReading(
            inference_w=rig_above_idle(status.power.board_w, status.idle_baseline_w),
            temperature_c=status.thermal.max_c,
            throttling=status.throttling.active,
        )

    def _surplus(self, decision: Decision, inputs: Inputs) -> float | None:
        surplus = decision.surplus_w
        if surplus is None:
            surplus, _ = self.controller.surplus(inputs)
        if surplus is None:
            return None
        return max(0.0, surplus) if math.isfinite(surplus) else 0.0

    def _measured_inference(self) -> tuple[float, float | None]:
        """Average power above idle while inference runs, and energy above idle per inference."""
        rows = [r for r in self.agent.ledger.recent if r.outcome != OUTCOME_REFUSED]
        timed = [r for r in rows if r.marginal_j is not None and r.duration_s > 0]
        seconds = ran_s(timed)
        joules = sum(r.marginal_j or 0.0 for r in timed)
        need_w = joules / seconds if seconds > 0 and joules > 0 else self.config.inference_power_w
        per_inference = sum(_marginal_j(r) for r in rows) / len(rows) / 3600 if rows else None
        return need_w, per_inference or None

    def _record(self, now: datetime, flows: Flows, rig_w: float | None) -> None:
        """Keep the flows for attributing ledger rows; follow the PV energy meter."""
        known_battery = not self.config.has_battery or flows.battery_w is not None
        if flows.grid_w is not None and known_battery:
            self.history.add(
                FlowSample(
                    at=now,
                    grid_w=flows.grid_w,
                    battery_w=flows.battery_w,
                    rig_w=rig_w or 0.0,
                    carbon_g_per_kwh=flows.carbon_g_per_kwh,
                    others_w=self.site.others_w(self.rig.key) if self.site.allocates else 0.0,
                )
            )
        # Saved with the next row (or at unload): after a crash the meter's rise since the last
        # saved reading is counted then, so no yield is lost or counted twice.
        self.accounting.update_pv(dt_util.as_local(now).date(), flows.pv_energy_wh)
        self._summary = None

    async def _async_push(self, decision: Decision, *, batch_only: bool) -> bool:
        """Lease the gate as decided; where it stays closed but a deadline needs batch work,
        lease it for batch work only (reason `deadline`)."""
        deadline = batch_only and not decision.open
        try:
            await self.client.set_gate(
                open=decision.open or deadline,
                lease_s=_lease_s(),
                reason=PlanReason.DEADLINE.value if deadline else decision.reason.value,
                batch_only=deadline,
            )
        except JoulegateError as err:
            if self.last_push_error is None:
                LOGGER.warning(
                    "Could not set the gate of Joulegate agent %s: %s", self.config_entry.title, err
                )
            self.last_push_error = str(err)
            return False
        if self.last_push_error is not None:
            LOGGER.info("The gate of Joulegate agent %s is set again", self.config_entry.title)
            self.last_push_error = None
        return True

    # -- accounting ------------------------------------------------------------

    @callback
    def _async_on_row(self, row: Inference) -> None:
        """Split a new ledger row's energy above idle by where it came from (the agent's
        coordinator saves it with the cursor, then refreshes, and the gate's entities show it)."""
        if row.outcome == OUTCOME_REFUSED:
            return
        ended = row.ended_at or dt_util.utcnow()
        started = row.started_at or ended - timedelta(seconds=row.duration_s)
        split = split_energy(
            _marginal_j(row) / 3600, row.duration_s, self.history.around(started, ended)
        )
        self.accounting.add(split, dt_util.as_local(ended).date(), batch_id=row.batch_id)
        self._summary = None

    @property
    def summary(self) -> AccountingSummary:
        """The accounting figures, worked out again only after the accounting was touched (once a
        cycle, once a row), not for each of the dozen sensors that read them."""
        if self._summary is None:
            self._summary = self.accounting.summary()
        return self._summary


def _daylight(hass: HomeAssistant, day: date) -> tuple[float, float] | None:
    """A local day's sunrise and sunset (epoch s), over which a day's PV forecast figure is
    spread; None where the sun does not rise or set that day (polar day or night)."""
    sunrise = get_astral_event_date(hass, SUN_EVENT_SUNRISE, day)
    sunset = get_astral_event_date(hass, SUN_EVENT_SUNSET, day)
    if sunrise is None or sunset is None:
        return None
    return sunrise.timestamp(), sunset.timestamp()


def _lease_s() -> int:
    """The agent's leases (gate and level) cover LEASE_CYCLES cycles."""
    return max(1, round(GATE_CYCLE.total_seconds() * LEASE_CYCLES))


def _gate_decision(allotment: Allotment) -> Decision:
    """The gate's side of a rig's share: open while it has a level; the gate's reason where the
    share's reason is a level's (the allotment sensor says which)."""
    is_open = allotment.level is not None
    reason = allotment.reason
    if isinstance(reason, LevelReason):
        reason = Reason.SURPLUS if is_open else Reason.NO_SURPLUS
    return Decision(is_open, reason, allotment.allotted_w)


def _marginal_j(row: Inference) -> float:
    """A row's energy above idle (its whole energy where the agent gives no marginal figure)."""
    return max(0.0, row.marginal_j if row.marginal_j is not None else row.energy_j)
