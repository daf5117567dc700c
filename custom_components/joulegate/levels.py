"""Power levels: which rung of a rig's ladder the sun can pay for. Pure Python, no Home Assistant.

The on/off gate (`surplus.SurplusController`) runs the rig at full power or not at all. A rig with
power levels (the agent's `GET /api/v1/power`: each level's measured W above idle and tokens/s) can
follow the sun instead. The same signed surplus, battery policies, modes and thermal limit apply;
what changes is the answer: the highest level whose power above idle the surplus covers, with the
gate's asymmetric rule per rung (down at the first short reading, up only after a rung's extra
power has been banked as surplus energy), and the gate closed only below the lowest level.

`benchmarks/levels_year.py` runs this code over a year, so what it measures is what users run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .surplus import (
    MAX_STEP_S,
    InputHold,
    Inputs,
    Reason,
    Settings,
    SurplusController,
    off_time,
    opening_clip_w,
)

STEP_UP_AFTER_S = 60.0  # a minute of the next rung's extra power banked, as the gate opens today


class LevelMode(StrEnum):
    """What to do with a surplus that pays for more than one level."""

    FASTEST = "fastest"  # the highest level it pays for
    EFFICIENT = "efficient"  # the most tokens per joule among the levels it pays for


class LevelReason(StrEnum):
    """Why a rig that runs is at its level; a closed rig gives the gate's `Reason`."""

    TOP_LEVEL = "top_level"  # the highest level its mode uses
    SURPLUS_LIMITED = "surplus_limited"  # the surplus pays for this level, not the next
    WAITING_TO_STEP_UP = "waiting_to_step_up"  # the next level fits; banking sustained surplus
    HIGHER_PRIORITY = "higher_priority"  # the rest of the surplus is allotted to other rigs
    DEADLINE = "deadline"  # a batch's deadline run: the top level, for batch work only


@dataclass(frozen=True, slots=True)
class Level:
    """One rung: its measured power above idle while inference runs, and its speed."""

    key: str
    marginal_w: float
    tokens_per_s: float | None = None  # None: not measured yet
    measured: bool = True  # False: marginal_w is assumed (ladder_from_costs)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.marginal_w) and self.marginal_w > 0):
            msg = f"level {self.key!r}: power above idle must be a positive number of watts"
            raise ValueError(f"{msg}, got {self.marginal_w!r}")
        speed = self.tokens_per_s
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            msg = f"level {self.key!r}: tokens/s must be positive or unmeasured (None)"
            raise ValueError(f"{msg}, got {speed!r}")

    @property
    def joules_per_token(self) -> float | None:
        """Energy above idle per token; None while the speed is unmeasured."""
        return None if self.tokens_per_s is None else self.marginal_w / self.tokens_per_s


@dataclass(frozen=True, slots=True)
class LevelCost:
    """What the agent has measured for one of its levels (`GET /api/v1/power`'s cost table),
    all models together; None where nothing is measured yet."""

    name: str
    w_above_idle: float | None
    tokens_per_s: float | None

    @classmethod
    def combine(
        cls, name: str, models: Sequence[tuple[float | None, float | None, int, int]]
    ) -> LevelCost:
        """One level's figures from its models' (W above idle, tokens/s, inferences, inferences
        with an idle baseline): each mean weighted by how many inferences its figure rests on."""
        watts = [(w, above) for w, _, _, above in models if w is not None and above > 0]
        speeds = [(t, n) for _, t, n, _ in models if t is not None and n > 0]
        return cls(name, _weighted(watts), _weighted(speeds))


def _weighted(pairs: Sequence[tuple[float, int]]) -> float | None:
    total = sum(n for _, n in pairs)
    return sum(x * n for x, n in pairs) / total if total else None


def ladder_from_costs(costs: Sequence[LevelCost], assumed_w: float) -> tuple[Level, ...]:
    """The levels the controller climbs, from the agent's levels (lowest draw first).

    A level without a measured power counts as drawing `assumed_w` (the gate's inference power),
    and never less than a measured level below it: assumed high, not low, as a level that draws
    more than the surplus pays for would take the rest from the grid. Calibration
    (`joulegate-agent calibrate`) measures them all.
    """
    levels = []
    floor = 0.0
    for cost in costs:
        measured = cost.w_above_idle is not None and cost.w_above_idle > 0
        watts = cost.w_above_idle if measured and cost.w_above_idle else max(assumed_w, floor)
        floor = max(floor, watts)
        speed = cost.tokens_per_s if cost.tokens_per_s and cost.tokens_per_s > 0 else None
        levels.append(Level(cost.name, watts, speed, measured=bool(measured)))
    return tuple(levels)


def ladder_for(levels: Sequence[Level], mode: LevelMode) -> tuple[Level, ...]:
    """The rungs a mode climbs, cheapest first.

    Fastest: every level. Efficient: only the levels that spend fewer (or as few) joules per
    token than every cheaper one, so that climbing it as the fastest mode climbs all levels picks
    the most efficient level the surplus pays for. Unmeasured levels have no efficiency to compare:
    the efficient ladder skips them (and is the fastest one while no level is measured).
    """
    if not levels:
        raise ValueError("a rig needs at least one power level")
    ordered = tuple(sorted(levels, key=lambda level: level.marginal_w))
    if mode is LevelMode.FASTEST:
        return ordered
    efficient: list[Level] = []
    best = math.inf
    for level in ordered:
        cost = level.joules_per_token
        if cost is not None and cost <= best:
            efficient.append(level)
            best = cost
    return tuple(efficient) or ordered


def rung_for(ladder: Sequence[Level], level: Level) -> int:
    """Where a running rig goes on a new ladder: the same level if it has it, else the highest
    rung that draws no more (the lowest when none does)."""
    same = [i for i, rung in enumerate(ladder) if rung.key == level.key]
    if same:
        return same[0]
    under = [i for i, rung in enumerate(ladder) if rung.marginal_w <= level.marginal_w]
    return under[-1] if under else 0


@dataclass(slots=True)
class Rung:
    """Where one rig is on its ladder, and the surplus energy banked towards each rung above."""

    index: int | None = None  # None: the gate is closed
    banks_j: dict[int, float] = field(default_factory=dict)  # rung -> banked surplus energy
    closed_at: float = -math.inf
    opened_at: float = -math.inf
    last_run_s: float = 0.0  # how long the gate was open before closed_at

    def draw_w(self, ladder: Sequence[Level]) -> float:
        """The power above idle the rig's level may take (0 while closed)."""
        return 0.0 if self.index is None else ladder[self.index].marginal_w

    def move(self, index: int | None, now: float) -> None:
        """Go to a rung (None: close the gate); whatever was banked starts over."""
        if index is None and self.index is not None:
            self.closed_at = now
            self.last_run_s = now - self.opened_at
        elif index is not None and self.index is None:
            self.opened_at = now
        self.index = index
        self.banks_j.clear()

    def step_down(self, ladder: Sequence[Level], available_w: float, now: float) -> bool:
        """At the first reading that does not cover the level: the highest rung it covers, or
        closed. True when the rig stepped down."""
        if self.index is None or available_w >= ladder[self.index].marginal_w:
            return False
        fits = [i for i in range(self.index) if ladder[i].marginal_w <= available_w]
        self.move(fits[-1] if fits else None, now)
        return True

    def target(self, ladder: Sequence[Level], available_w: float) -> int | None:
        """The highest rung above the present one that `available_w` covers, if any."""
        above = range(0 if self.index is None else self.index + 1, len(ladder))
        fits = [k for k in above if ladder[k].marginal_w <= available_w]
        return fits[-1] if fits else None

    def step_up(
        self,
        ladder: Sequence[Level],
        available_w: float,
        *,
        dt: float,
        now: float,
        settings: Settings,
        after_s: float,
    ) -> Reason | LevelReason:
        """Bank surplus towards each rung above, as the gate banks towards opening today: the
        surplus beyond the rung's power, clipped to the rung's extra power either way (from closed,
        to the gate's opening clip). Climb to
        the highest rung the surplus covers now whose bank holds `after_s` of its extra power.
        The opening is a climb from 0 W that waits as the on/off gate does: for its
        `open_after_wh` and for its off time after a closing (`surplus.off_time`)."""
        draw = self.draw_w(ladder)
        first = 0 if self.index is None else self.index + 1
        if first >= len(ladder):
            return LevelReason.TOP_LEVEL
        ready = None
        closed = self.index is None
        for k in range(first, len(ladder)):
            need = ladder[k].marginal_w
            step = need - draw
            # Opening banks and waits as the on/off gate does (its clip, its open_after_wh), a
            # climb for after_s of the rung's extra power.
            clip = opening_clip_w(need) if closed else step
            clipped = max(-clip, min(clip, available_w - need))
            banked = max(0.0, self.banks_j.get(k, 0.0) + clipped * dt)
            self.banks_j[k] = banked
            wait_j = settings.open_after_wh * 3600.0 if closed else step * after_s
            if available_w >= need and banked >= wait_j:
                ready = k
        if available_w < ladder[first].marginal_w:
            return Reason.NO_SURPLUS if closed else LevelReason.SURPLUS_LIMITED
        if closed and now - self.closed_at < off_time(settings, self.last_run_s):
            return Reason.MINIMUM_OFF_TIME
        if ready is None:
            return Reason.WAITING_FOR_SURPLUS if closed else LevelReason.WAITING_TO_STEP_UP
        self.move(ready, now)
        return self.reason_at(ladder, available_w)

    def held_reason(self, ladder: Sequence[Level], available_w: float) -> Reason | LevelReason:
        """Why the rig stays put on a reading held through a blip: it neither banks nor climbs
        on one, as the gate does not open on one."""
        if self.index is None:
            return Reason.INPUT_UNAVAILABLE
        return self.reason_at(ladder, available_w)

    def reason_at(self, ladder: Sequence[Level], available_w: float) -> LevelReason:
        """Why a running rig is where it is, given what it may use."""
        if self.index == len(ladder) - 1:
            return LevelReason.TOP_LEVEL
        if self.target(ladder, available_w) is not None:
            return LevelReason.WAITING_TO_STEP_UP
        return LevelReason.SURPLUS_LIMITED


@dataclass(frozen=True, slots=True)
class LevelDecision:
    """A rig's level for the next cycle.

    `index` is the rung in the mode's ladder (None: the gate is closed). While closed the rig
    should still be set to its lowest level, so that work already admitted finishes at the least
    draw.
    """

    index: int | None
    level: Level | None
    reason: Reason | LevelReason
    surplus_w: float | None  # what the rig may use now under the active policy

    @property
    def open(self) -> bool:
        return self.index is not None

    @property
    def allotted_w(self) -> float:
        """The power above idle the rig's level takes (0 while closed)."""
        return 0.0 if self.level is None else self.level.marginal_w


def forced_rung(decision_open: bool, ladder: Sequence[Level], rung: Rung, now: float) -> None:
    """Apply a decision that holds whatever the surplus: the top rung, or closed."""
    rung.move(len(ladder) - 1 if decision_open else None, now)


@dataclass(slots=True)
class LevelController:
    """One rig's level, from the house's readings; the level-aware `SurplusController`.

    `settings` are the gate's (policy, margin, reserve, minimum off time, thermal limit, modes);
    `need_w` is ignored: each rung's own power is what the surplus must cover.
    """

    levels: Sequence[Level]
    settings: Settings = field(default_factory=Settings)
    mode: LevelMode = LevelMode.FASTEST
    step_up_after_s: float = STEP_UP_AFTER_S
    rung: Rung = field(default_factory=Rung)
    _gate: SurplusController = field(init=False)
    _ladder: tuple[Level, ...] = field(init=False)
    _last_now: float | None = field(default=None, init=False)
    _hold: InputHold = field(default_factory=InputHold, init=False)

    def __post_init__(self) -> None:
        self._ladder = ladder_for(self.levels, self.mode)
        self._gate = SurplusController(self._gate_settings())

    @property
    def ladder(self) -> tuple[Level, ...]:
        """The rungs the mode climbs, cheapest first (what `LevelDecision.index` counts)."""
        return self._ladder

    def update_settings(self, **changes: object) -> None:
        self.settings = replace(self.settings, **changes)  # type: ignore[arg-type]
        self._gate.settings = self._gate_settings()

    def set_mode(self, mode: LevelMode) -> None:
        """Switch modes; a rig above the new ladder's top comes down to it."""
        level = None if self.rung.index is None else self._ladder[self.rung.index]
        self.mode = mode
        self._ladder = ladder_for(self.levels, mode)
        if level is not None:
            self.rung.move(rung_for(self._ladder, level), self._last_now or 0.0)

    def _gate_settings(self) -> Settings:
        return replace(self.settings, need_w=self._ladder[0].marginal_w)

    def step(self, inputs: Inputs) -> LevelDecision:
        gap = 0.0 if self._last_now is None else max(0.0, inputs.now - self._last_now)
        dt = min(gap, MAX_STEP_S)
        self._last_now = inputs.now
        inputs, held = self._hold.fill(inputs, self.settings)
        ladder, rung, now = self._ladder, self.rung, inputs.now
        forced = self._gate.forced(inputs)
        if forced is not None:
            forced_rung(forced.open, ladder, rung, now)
            return self._decision(forced.reason, None)
        surplus, blocked = self._gate.surplus(inputs)
        if surplus is None:
            rung.move(0 if self.settings.fail_open else None, now)
            return self._decision(Reason.INPUT_UNAVAILABLE, None)
        reason: Reason | LevelReason
        if rung.step_down(ladder, surplus, now):
            reason = blocked or Reason.NO_SURPLUS
            if rung.index is not None:
                reason = rung.reason_at(ladder, surplus)
        elif held:
            reason = rung.held_reason(ladder, surplus)
        else:
            reason = rung.step_up(
                ladder,
                surplus,
                dt=dt,
                now=now,
                settings=self.settings,
                after_s=self.step_up_after_s,
            )
            if rung.index is None and reason is Reason.NO_SURPLUS and blocked is not None:
                reason = blocked
        return self._decision(reason, surplus)

    def _decision(self, reason: Reason | LevelReason, surplus: float | None) -> LevelDecision:
        index = self.rung.index
        level = None if index is None else self._ladder[index]
        return LevelDecision(index, level, reason, surplus)
