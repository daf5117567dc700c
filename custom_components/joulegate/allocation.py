"""One surplus shared among several rigs with power levels. Pure Python, no Home Assistant.

The rigs together are the house's last load: their combined measured draw above idle is added
back once, so the surplus they share is what the house would export (or, by policy, charge)
without any of them. Counting each rig as the last load on its own would count the same export
once per rig. One allocation then splits that surplus by a priority the user sets per rig:

- Down first, up last: at the first short reading the rigs of lowest priority step down (to the
  highest rung the rest covers, or closed); a rig never steps down for another one's sake except
  as below.
- Up only by each rig's own rule: a rig climbs one rung once the headroom it sees has paid for a
  minute of the rung's extra power (as `levels.Rung.step_up`), highest priority first. A rig
  waiting to climb holds the headroom it waits for, so lower rigs do not take it meanwhile.
- No start-stop between rigs: a higher-priority rig's headroom includes what lower rigs draw
  above their lowest rung, so it takes power from them through its own step-up rule; it never
  closes a running rig to start itself, and rigs run side by side instead of taking turns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from .levels import (
    STEP_UP_AFTER_S,
    Level,
    LevelMode,
    LevelReason,
    Rung,
    forced_rung,
    ladder_for,
    rung_for,
)
from .surplus import (
    MAX_STEP_S,
    GateMode,
    InputHold,
    Inputs,
    Reason,
    Settings,
    SurplusController,
)


@dataclass(frozen=True, slots=True)
class RigConfig:
    """A rig as the site sees it: its levels, its priority (higher first), its level mode and
    its own gate mode (an entry's mode or override: forced on or off, or by the sun)."""

    key: str
    levels: Sequence[Level]
    priority: int = 0
    mode: LevelMode = LevelMode.FASTEST
    gate: GateMode = GateMode.SOLAR


@dataclass(frozen=True, slots=True)
class RigReading:
    """What a rig's agent reports this cycle. None: unavailable."""

    inference_w: float | None = 0.0  # measured power above idle
    temperature_c: float | None = None
    throttling: bool = False


@dataclass(frozen=True, slots=True)
class Allotment:
    """One rig's share: its level (None: closed), the watts allotted to it and why."""

    key: str
    index: int | None
    level: Level | None
    allotted_w: float  # the level's power above idle, plus headroom held for its next rung
    reason: Reason | LevelReason


@dataclass(slots=True)
class _Rig:
    config: RigConfig
    ladder: tuple[Level, ...]
    rung: Rung
    limits: SurplusController  # its own mode, thermal and throttling rules (with hysteresis)


@dataclass(slots=True)
class Allocator:
    """The site's allocation of one surplus among its rigs, stepped once per cycle."""

    rigs: Sequence[RigConfig]
    settings: Settings = field(default_factory=Settings)
    step_up_after_s: float = STEP_UP_AFTER_S
    _rigs: list[_Rig] = field(init=False)
    _house: SurplusController = field(init=False)
    _last_now: float | None = field(default=None, init=False)
    _hold: InputHold = field(default_factory=InputHold, init=False)

    def __post_init__(self) -> None:
        keys = [rig.key for rig in self.rigs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"rig keys must be unique, got {keys}")
        if not keys:
            raise ValueError("an allocation needs at least one rig")
        self._rigs = [self._new_rig(rig) for rig in self.rigs]
        self._sort()
        self._house = SurplusController(self._house_settings())

    def _new_rig(self, config: RigConfig) -> _Rig:
        limits = SurplusController(replace(self.settings, mode=config.gate))
        return _Rig(config, ladder_for(config.levels, config.mode), Rung(), limits)

    def _sort(self) -> None:
        # Stable: equal priorities keep the order the rigs were given in.
        self._rigs.sort(key=lambda rig: -rig.config.priority)

    def add_rig(self, config: RigConfig) -> None:
        """A rig joins the site, closed; the others keep their levels."""
        if any(rig.key == config.key for rig in self.rigs):
            raise ValueError(f"rig keys must be unique, {config.key!r} is taken")
        self.rigs = [*self.rigs, config]
        self._rigs.append(self._new_rig(config))
        self._sort()
        self._house.settings = self._house_settings()

    def remove_rig(self, key: str) -> None:
        """A rig leaves the site; what it was allotted goes to the others by their own rules."""
        if [rig.key for rig in self.rigs] == [key]:
            raise ValueError("an allocation needs at least one rig")
        self.rigs = [rig for rig in self.rigs if rig.key != key]
        self._rigs = [rig for rig in self._rigs if rig.config.key != key]
        self._house.settings = self._house_settings()

    def update_rig(self, config: RigConfig) -> None:
        """New levels (remeasured), priority or modes for a rig. A running rig stays on its level
        where the new ladder has it, else goes to the highest rung at or below its draw."""
        rig = next(rig for rig in self._rigs if rig.config.key == config.key)
        before = None if rig.rung.index is None else rig.ladder[rig.rung.index]
        rig.config = config
        rig.ladder = ladder_for(config.levels, config.mode)
        rig.limits.settings = replace(self.settings, mode=config.gate)
        self.rigs = [config if r.key == config.key else r for r in self.rigs]
        if before is not None:
            rig.rung.index = rung_for(rig.ladder, before)
        self._sort()
        self._house.settings = self._house_settings()

    def _house_settings(self) -> Settings:
        lowest = min(rig.ladder[0].marginal_w for rig in self._rigs)
        return replace(self.settings, need_w=lowest)

    def update_settings(self, **changes: object) -> None:
        self.use_settings(replace(self.settings, **changes))  # type: ignore[arg-type]

    def use_settings(self, settings: Settings) -> None:
        """The house's settings (policy, reserve, margin...); each rig keeps its own gate mode."""
        self.settings = settings
        self._house.settings = self._house_settings()
        for rig in self._rigs:
            rig.limits.settings = replace(settings, mode=rig.config.gate)

    def step(self, house: Inputs, readings: Mapping[str, RigReading]) -> dict[str, Allotment]:
        """Allocate for the next cycle. `house.rig_inference_w` is ignored: the rigs' combined
        measured draw (from `readings`) is added back instead; a rig without a reading counts as
        unavailable."""
        gap = 0.0 if self._last_now is None else max(0.0, house.now - self._last_now)
        dt = min(gap, MAX_STEP_S)
        self._last_now = house.now
        now = house.now
        reasons: dict[str, Reason | LevelReason] = {}
        held: dict[str, float] = {}
        free: list[_Rig] = []
        for rig in self._rigs:
            reading = readings.get(rig.config.key)
            limits = Inputs(
                now=now,
                grid_w=None,
                temperature_c=None if reading is None else reading.temperature_c,
                throttling=False if reading is None else reading.throttling,
            )
            forced = rig.limits.forced(limits)
            if forced is not None:
                forced_rung(forced.open, rig.ladder, rig.rung, now)
                reasons[rig.config.key] = forced.reason
            else:
                free.append(rig)
        measured = [readings.get(rig.config.key) for rig in self._rigs]
        combined: float | None = 0.0
        for reading in measured:
            if reading is None or reading.inference_w is None or combined is None:
                combined = None
            else:
                combined += max(0.0, reading.inference_w)
        # The rigs' combined draw is held through a blip as one input, like the house's own.
        filled, held_inputs = self._hold.fill(
            replace(house, rig_inference_w=combined), self.settings
        )
        surplus, blocked = self._house.surplus(filled)
        if surplus is None:
            for rig in free:
                rig.rung.move(0 if self.settings.fail_open else None, now)
                reasons[rig.config.key] = Reason.INPUT_UNAVAILABLE
        else:
            self._allocate(
                free,
                surplus,
                blocked=blocked,
                dt=dt,
                now=now,
                reasons=reasons,
                held=held,
                on_held_readings=held_inputs,
            )
        return {
            rig.config.key: Allotment(
                key=rig.config.key,
                index=rig.rung.index,
                level=None if rig.rung.index is None else rig.ladder[rig.rung.index],
                allotted_w=rig.rung.draw_w(rig.ladder) + held.get(rig.config.key, 0.0),
                reason=reasons[rig.config.key],
            )
            for rig in self._in_config_order()
        }

    def _in_config_order(self) -> list[_Rig]:
        order = {rig.key: n for n, rig in enumerate(self.rigs)}
        return sorted(self._rigs, key=lambda rig: order[rig.config.key])

    def _allocate(
        self,
        free: list[_Rig],
        surplus: float,
        *,
        blocked: Reason | None,
        dt: float,
        now: float,
        reasons: dict[str, Reason | LevelReason],
        held: dict[str, float],
        on_held_readings: bool,
    ) -> None:
        # Rigs forced on draw whatever the sun does: they come off the top.
        budget = surplus - sum(rig.rung.draw_w(rig.ladder) for rig in self._rigs if rig not in free)
        stepped_down: set[str] = set()
        for rig in free:  # priority order: the lowest give way first
            if rig.rung.step_down(rig.ladder, budget, now):
                stepped_down.add(rig.config.key)
            budget -= rig.rung.draw_w(rig.ladder)
        for n, rig in enumerate(free):
            key = rig.config.key
            lower = free[n + 1 :]
            spare = sum(
                r.rung.draw_w(r.ladder) - r.ladder[0].marginal_w
                for r in lower
                if r.rung.index is not None
            )
            headroom = max(0.0, budget) + spare
            before = rig.rung.draw_w(rig.ladder)
            if key in stepped_down:
                reasons[key] = self._short_reason(rig, budget + before, blocked, surplus)
                continue
            if on_held_readings:
                reasons[key] = rig.rung.held_reason(rig.ladder, before + headroom)
                continue
            reason = rig.rung.step_up(
                rig.ladder,
                before + headroom,
                dt=dt,
                now=now,
                settings=self.settings,
                after_s=self.step_up_after_s,
            )
            taken = rig.rung.draw_w(rig.ladder) - before
            if taken > 0:
                budget -= taken
                if budget < 0:
                    budget = self._reclaim(lower, -budget, now)
            elif reason in (LevelReason.WAITING_TO_STEP_UP, Reason.WAITING_FOR_SURPLUS):
                aim = rig.rung.target(rig.ladder, before + headroom)
                step = 0.0 if aim is None else rig.ladder[aim].marginal_w - before
                hold = min(max(0.0, budget), step)
                held[key] = hold
                budget -= hold
            reasons[key] = self._reason(rig, reason, blocked, surplus, before + headroom)

    def _reclaim(self, lower: list[_Rig], short_w: float, now: float) -> float:
        """Step lower-priority rigs down (lowest first, never closed) until `short_w` is freed;
        what is left over returns to the budget."""
        for rig in reversed(lower):
            if short_w <= 0:
                break
            if rig.rung.index is None:
                continue
            draw = rig.rung.draw_w(rig.ladder)
            floor = max(rig.ladder[0].marginal_w, draw - short_w)
            rig.rung.step_down(rig.ladder, floor, now)
            short_w -= draw - rig.rung.draw_w(rig.ladder)
        return -short_w

    def _short_reason(
        self, rig: _Rig, available: float, blocked: Reason | None, surplus: float
    ) -> Reason | LevelReason:
        if rig.rung.index is None:
            if surplus >= rig.ladder[0].marginal_w:
                return LevelReason.HIGHER_PRIORITY
            return blocked or Reason.NO_SURPLUS
        return rig.rung.reason_at(rig.ladder, available)

    def _reason(
        self,
        rig: _Rig,
        reason: Reason | LevelReason,
        blocked: Reason | None,
        surplus: float,
        available: float,
    ) -> Reason | LevelReason:
        """Name other rigs as the cause where the whole surplus would have paid for more."""
        limited = reason in (Reason.NO_SURPLUS, LevelReason.SURPLUS_LIMITED)
        if not limited:
            return reason
        alone = rig.rung.target(rig.ladder, surplus)
        if alone is not None and rig.rung.target(rig.ladder, available) is None:
            return LevelReason.HIGHER_PRIORITY
        if reason is Reason.NO_SURPLUS and blocked is not None:
            return blocked
        return reason
