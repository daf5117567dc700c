"""The surplus controller: when may the rig run on sunshine? Pure Python, no Home Assistant.

The integration and the year-long benchmark both call `SurplusController.step`, so what the
benchmark measures is what users run. Signed flows as Home Assistant reads them:
grid_w + import / - export, battery_w + discharge / - charge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

MAX_STEP_S = 60.0
OPENING_CLIP_W = 10.0  # the rig `open_after_wh` is sized for: a minute of its surplus
# The readings that ride through a blip: the last good one stands in for hold_s.
HELD_INPUTS = ("grid_w", "rig_inference_w", "battery_w", "battery_soc", "forecast_remaining_wh")


class GateMode(StrEnum):
    SOLAR = "solar"
    ALWAYS = "always"
    NEVER = "never"


class BatteryPolicy(StrEnum):
    BATTERY_FIRST = "battery_first"
    BALANCED = "balanced"
    INFERENCE_FIRST = "inference_first"


class Reason(StrEnum):
    """Why the gate is as it is; a fixed set, translated in the UI."""

    SURPLUS = "surplus"
    WAITING_FOR_SURPLUS = "waiting_for_surplus"
    NO_SURPLUS = "no_surplus"
    MINIMUM_OFF_TIME = "minimum_off_time"
    BATTERY_FIRST = "battery_first"
    BATTERY_RESERVE = "battery_reserve"
    FORECAST_TOO_LOW = "forecast_too_low"
    TOO_HOT = "too_hot"
    THROTTLING = "throttling"
    INPUT_UNAVAILABLE = "input_unavailable"
    FORCED_ON = "forced_on"
    FORCED_OFF = "forced_off"


@dataclass(frozen=True, slots=True)
class Settings:
    """Controller settings. Defaults chosen with benchmarks/gate_year.py (see README)."""

    mode: GateMode = GateMode.SOLAR
    policy: BatteryPolicy = BatteryPolicy.BATTERY_FIRST
    need_w: float = 10.0  # what inference adds above idle; the integration measures it
    margin_w: float = 0.0  # subtracted from the surplus; the banked-energy wait is the real margin
    open_after_wh: float = OPENING_CLIP_W * 60 / 3600  # a minute of a 10 W rig's surplus
    min_off_s: float = 300.0
    # A close after a run of long_run_s or more is an isolated event (a cloud, a kettle) rather
    # than flicker at the edge of the surplus: the gate may reopen after this shorter off time
    # (never longer than min_off_s). Worst case over the benchmark houses and climates.
    long_run_s: float = 600.0
    off_after_long_run_s: float = 120.0
    export_tolerance_w: float = 15.0  # below this, "exporting" is meter noise
    full_soc: float = 98.0
    reserve_soc: float = 15.0  # inference first: worst case over the benchmark houses and climates
    battery_capacity_wh: float | None = None
    forecast_factor: float = 1.2  # balanced: forecast must cover the battery's gap this many times
    thermal_limit_c: float = 75.0
    thermal_hysteresis_c: float = 5.0
    fail_open: bool = False  # what an unavailable input means: closed unless the user says so
    # How long an input's last good reading stands in for a missing one (three 10-s cycles, well
    # under the stale time): a blip neither closes the gate nor starts the minimum off time.
    hold_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Inputs:
    """One reading of the world. None, NaN and infinities mean unavailable or stale."""

    now: float
    grid_w: float | None
    rig_inference_w: float | None = 0.0  # measured power above the rig's idle baseline
    has_battery: bool = False
    battery_w: float | None = None
    battery_soc: float | None = None
    forecast_remaining_wh: float | None = None
    temperature_c: float | None = None
    throttling: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    open: bool
    reason: Reason
    surplus_w: float | None  # what the rig may use now under the active policy


@dataclass(slots=True)
class _State:
    open: bool = False
    banked_wh: float = 0.0
    closed_at: float = -math.inf
    opened_at: float = -math.inf
    last_run_s: float = 0.0  # how long the gate was open before closed_at
    last_now: float | None = None
    hot: bool = False


def off_time(settings: Settings, run_s: float) -> float:
    """The minimum off time after a run of run_s: short after a long run, in full after a short
    one (the surplus flickering at its edge). One rule for the on/off gate and the levels."""
    if run_s >= settings.long_run_s:
        return min(settings.off_after_long_run_s, settings.min_off_s)
    return settings.min_off_s


def opening_clip_w(need_w: float) -> float:
    """How much surplus a closed gate banks per second at most (and loses on a deficit): the
    rig's need, but never less than `OPENING_CLIP_W`. Clipped to its need alone, a rig (or level)
    drawing 0.4 W would bank the gate's 600 J in 25 minutes and hardly ever open. One rule for
    the on/off gate and the levels."""
    return max(need_w, OPENING_CLIP_W)


@dataclass(slots=True)
class InputHold:
    """Rides through a blip: an input's last good reading stands in for a missing one while it is
    at most `hold_s` old. One piece of code for the on/off gate and the level controllers, so a
    blip neither closes a gate nor steps a level down."""

    last_good: dict[str, tuple[float, float]] = field(default_factory=dict)  # input -> (at, value)

    def fill(self, inputs: Inputs, settings: Settings) -> tuple[Inputs, bool]:
        """The inputs with every non-finite value as None, and a missing one replaced by its last
        good reading while that is at most `settings.hold_s` old; and whether any that the
        settings' policy reads was replaced (only balanced reads the forecast: its blip must not
        hold back a gate that never looks at it)."""
        now, hold_s = inputs.now, settings.hold_s
        reads_forecast = settings.policy is BatteryPolicy.BALANCED
        last_good = self.last_good
        changes: dict[str, float | None] = {}
        held = False
        for name in HELD_INPUTS:
            value: float | None = getattr(inputs, name)
            if value is not None and math.isfinite(value):
                last_good[name] = (now, value)
                continue
            good = last_good.get(name)
            if good is not None and now - good[0] <= hold_s:
                changes[name] = good[1]
                held = held or reads_forecast or name != "forecast_remaining_wh"
            elif value is not None:
                changes[name] = None
        temperature = inputs.temperature_c
        if temperature is not None and not math.isfinite(temperature):
            changes["temperature_c"] = None
        if not changes:
            return inputs, False
        return replace(inputs, **changes), held  # type: ignore[arg-type]


@dataclass(slots=True)
class SurplusController:
    settings: Settings = field(default_factory=Settings)
    _state: _State = field(default_factory=_State)
    _hold: InputHold = field(default_factory=InputHold)

    @property
    def is_open(self) -> bool:
        return self._state.open

    def update_settings(self, **changes: object) -> None:
        self.settings = replace(self.settings, **changes)  # type: ignore[arg-type]

    def step(self, inputs: Inputs) -> Decision:
        state = self._state
        # A pause in cycling (a suspended host) must not bank surplus nobody saw: cap the step.
        gap = 0.0 if state.last_now is None else max(0.0, inputs.now - state.last_now)
        dt = min(gap, MAX_STEP_S)
        state.last_now = inputs.now
        inputs, held = self._hold.fill(inputs, self.settings)
        decision = self._decide(inputs, dt, held=held)
        if state.open and not decision.open:
            state.closed_at = inputs.now
            state.banked_wh = 0.0
            state.last_run_s = inputs.now - state.opened_at
        elif decision.open and not state.open:
            state.opened_at = inputs.now
        state.open = decision.open
        return decision

    def forced(self, inputs: Inputs) -> Decision | None:
        """The decision that holds whatever the surplus (the mode, heat, throttling), if any.

        Public so that the level controllers (`levels`, `allocation`) apply the same rules.
        """
        settings = self.settings
        if settings.mode is GateMode.NEVER:
            return Decision(False, Reason.FORCED_OFF, None)
        hot = self._too_hot(inputs.temperature_c)
        if hot:
            return Decision(False, Reason.TOO_HOT, None)
        if inputs.throttling:
            return Decision(False, Reason.THROTTLING, None)
        if settings.mode is GateMode.ALWAYS:
            return Decision(True, Reason.FORCED_ON, None)
        return None

    def _decide(self, inputs: Inputs, dt: float, *, held: bool = False) -> Decision:
        settings = self.settings
        forced = self.forced(inputs)
        if forced is not None:
            return forced
        surplus, blocked = self.surplus(inputs)
        if surplus is None:
            return Decision(settings.fail_open, Reason.INPUT_UNAVAILABLE, None)
        state = self._state
        need = settings.need_w
        if state.open:
            if surplus >= need:
                return Decision(True, Reason.SURPLUS, surplus)
            return Decision(False, blocked or Reason.NO_SURPLUS, surplus)
        if not held:  # a closed gate banks, and opens, on fresh readings only
            clip = opening_clip_w(need)
            clipped = max(-clip, min(clip, surplus - need))
            state.banked_wh = max(0.0, state.banked_wh + clipped * dt / 3600.0)
        if surplus < need:
            return Decision(False, blocked or Reason.NO_SURPLUS, surplus)
        if inputs.now - state.closed_at < off_time(settings, state.last_run_s):
            return Decision(False, Reason.MINIMUM_OFF_TIME, surplus)
        if held:
            return Decision(False, Reason.INPUT_UNAVAILABLE, surplus)
        if state.banked_wh < settings.open_after_wh:
            return Decision(False, Reason.WAITING_FOR_SURPLUS, surplus)
        return Decision(True, Reason.SURPLUS, surplus)

    def surplus(self, inputs: Inputs) -> tuple[float | None, Reason | None]:
        """Surplus for the rig under the active policy, and what limits it when not pure PV.

        Inference first: S = -P_grid - P_batt + P_inf - margin. Battery first: S - C, with C the
        charge power the battery could still absorb now (0 when full).
        """
        settings = self.settings
        grid, rig = inputs.grid_w, inputs.rig_inference_w
        if grid is None or rig is None or not (math.isfinite(grid) and math.isfinite(rig)):
            return None, None
        own = max(0.0, rig)
        without_battery = -grid + own - settings.margin_w
        if not inputs.has_battery:
            return without_battery, None
        battery, soc = inputs.battery_w, inputs.battery_soc
        if battery is None or soc is None or not (math.isfinite(battery) and math.isfinite(soc)):
            return None, None
        inference_first = without_battery - battery
        policy = self._policy(inputs)
        if policy is None:
            return None, None
        if policy is BatteryPolicy.INFERENCE_FIRST:
            if soc >= settings.reserve_soc:
                return inference_first, None
            reason = Reason.BATTERY_RESERVE
        elif settings.policy is BatteryPolicy.BALANCED:
            reason = Reason.FORECAST_TOO_LOW
        else:
            reason = Reason.BATTERY_FIRST
        # The policy is the reason only where it, not the sun, keeps the rig out.
        limiting = inference_first >= settings.need_w
        return inference_first - self._absorbable(inputs, own), reason if limiting else None

    def _policy(self, inputs: Inputs) -> BatteryPolicy | None:
        settings = self.settings
        if settings.policy is not BatteryPolicy.BALANCED:
            return settings.policy
        if inputs.forecast_remaining_wh is None or inputs.battery_soc is None:
            return None
        capacity = settings.battery_capacity_wh or 0.0
        gap_wh = max(0.0, settings.full_soc - inputs.battery_soc) / 100.0 * capacity
        if inputs.forecast_remaining_wh >= gap_wh * settings.forecast_factor:
            return BatteryPolicy.INFERENCE_FIRST
        return BatteryPolicy.BATTERY_FIRST

    def _absorbable(self, inputs: Inputs, own_w: float) -> float:
        """C: what the battery could still take now. Full: nothing. Exporting (even without the
        rig's own draw): it is at its limit, so just what it takes now. Otherwise: everything.
        """
        if inputs.battery_w is None or inputs.battery_soc is None:
            return math.inf
        if inputs.battery_soc >= self.settings.full_soc:
            return 0.0
        exporting = -(inputs.grid_w or 0.0) + own_w > self.settings.export_tolerance_w
        if exporting:
            return max(0.0, -inputs.battery_w)
        return math.inf

    def _too_hot(self, temperature_c: float | None) -> bool:
        state = self._state
        if temperature_c is None:
            return state.hot
        limit = self.settings.thermal_limit_c
        if state.hot:
            state.hot = temperature_c >= limit - self.settings.thermal_hysteresis_c
        else:
            state.hot = temperature_c > limit
        return state.hot


def rig_above_idle(board_w: float | None, baseline_w: float | None) -> float | None:
    """The rig's power above its idle baseline; None (unavailable) when its power is unknown or
    either figure is not finite. No baseline yet (an agent just started): the rig counts as idle.
    """
    if board_w is None or not math.isfinite(board_w):
        return None
    if baseline_w is None:
        return 0.0
    above = board_w - baseline_w
    return max(0.0, above) if math.isfinite(above) else None


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where the rig's energy came from, as the last load in the house."""

    solar: float
    battery: float
    grid: float


def attribute(rig_w: float, grid_w: float, battery_w: float | None = None) -> Attribution:
    """Split the rig's power into solar, battery and grid parts (the rig is the last load).

    What would have been exported or charged without the rig counts as solar; what is left comes
    from battery discharge, then grid import. The parts add up to rig_w exactly.
    """
    rig = max(0.0, rig_w)
    battery = battery_w or 0.0
    surplus_without_rig = -grid_w - battery + rig
    solar = min(rig, max(0.0, surplus_without_rig))
    rest = rig - solar
    from_battery = min(rest, max(0.0, battery))
    return Attribution(solar=solar, battery=from_battery, grid=rest - from_battery)
