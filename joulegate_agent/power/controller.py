"""Sets power levels under a lease, like the gate: Home Assistant renews a lease on a level; when
it runs out the configured default level comes back (none configured: the box's own settings).

Changes are at least `dwell_s` apart: a PUT that would change the level sooner is refused (409,
with the seconds left), never queued, so the caller always knows the level in force. Renewing the
lease on the level in force is always allowed, and the fallback at a lease's end is never held
back by the dwell time (it is the safe state). Before the first change the knobs' original
settings go to the restore journal; `close` (shutdown) puts them back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from joulegate_agent.errors import JoulegateError
from joulegate_agent.power.discovery import PowerDiscovery
from joulegate_agent.power.journal import RestoreJournal
from joulegate_agent.power.knobs import KnobError
from joulegate_agent.power.ladder import Level

_LOGGER = logging.getLogger(__name__)

DEFAULT_DWELL_S = 60.0
REASON_MAX_CHARS = 200
PowerSource = Literal["original", "default", "lease"]


class UnknownLevelError(JoulegateError, ValueError):
    """No level has that name or index."""


class DwellError(JoulegateError):
    def __init__(self, retry_after_s: float, current: str | None) -> None:
        super().__init__(
            f"the level changed less than the dwell time ago; it stays {current or 'original'} "
            f"for another {retry_after_s:.1f} s"
        )
        self.retry_after_s = retry_after_s


class ReadOnlyError(JoulegateError):
    """The agent is configured to only read its power settings."""


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class PowerController:
    def __init__(
        self,
        discovery: PowerDiscovery,
        journal: RestoreJournal,
        *,
        default_level: str | None = None,
        dwell_s: float = DEFAULT_DWELL_S,
        read_only: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] | None = None,
        on_change: Callable[[Level | None], None] | None = None,
    ) -> None:
        self.discovery = discovery
        self.journal = journal
        self.dwell_s = dwell_s
        self.read_only = read_only
        self._clock = clock
        self._wall = wall or (lambda: datetime.now(timezone.utc))
        self._on_change = on_change
        self.default = self.level(default_level) if default_level is not None else None
        self.current: Level | None = None
        self.source: PowerSource = "original"
        self.reason = "agent started; the box runs its own settings"
        self.changed_at = self._wall()
        self._last_change = float("-inf")
        self._lease_deadline: float | None = None
        self._lease_expires_at: datetime | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def levels(self) -> list[Level]:
        return self.discovery.ladder

    @property
    def current_name(self) -> str | None:
        self._expire_if_due()
        return None if self.current is None else self.current.name

    def level(self, key: str | int) -> Level:
        """The level named `key`, or at index `key`."""
        for level in self.levels:
            if level.name == key or (isinstance(key, int) and level.index == key):
                return level
        names = ", ".join(level.name for level in self.levels) or "none on this box"
        raise UnknownLevelError(f"no power level {key!r}; the levels are: {names}")

    def start(self) -> list[str]:
        """Put back what a crashed run left changed, then apply the default level. Returns the
        settings that could not be restored."""
        failures = self.restore() if self.journal.pending else []
        if failures:
            _LOGGER.error("A previous run's power settings could not all be restored")
        elif self.default is not None and not self.read_only:
            try:
                self._apply(self.default, "default", "agent started; the default level")
            except KnobError as err:
                _LOGGER.error("Could not set the default power level: %s", err)
            self._last_change = float("-inf")
        return failures

    def set(self, level: Level, *, lease_s: float, reason: str = "") -> dict[str, Any]:
        """Hold `level` for `lease_s` seconds. Raises ReadOnlyError, DwellError, KnobError."""
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        if self.read_only:
            raise ReadOnlyError(
                "this agent only reads its power settings (power.read_only in its config)"
            )
        self._expire_if_due()
        now = self._clock()
        if level is not self.current:
            wait = self._last_change + self.dwell_s - now
            if wait > 0:
                raise DwellError(wait, self.current_name)
        text = reason.strip()[:REASON_MAX_CHARS] or f"lease on {level.name}"
        self._apply(level, "lease", text)
        self._lease_deadline = now + lease_s
        self._lease_expires_at = self._wall() + timedelta(seconds=lease_s)
        self._arm_timer(lease_s)
        return self.to_json()

    def restore(self) -> list[str]:
        """The box's original settings, from the journal; returns what failed."""
        failures = self.journal.restore()
        for knob in self.discovery.knobs:
            knob.restored()
        return failures

    def close(self) -> list[str]:
        """Shutdown: stop the lease timer and put the box's own settings back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._lease_deadline = None
        failures = self.restore() if self.current is not None or self.journal.pending else []
        self.current, self.source = None, "original"
        self.discovery.close()
        return failures

    def to_json(self) -> dict[str, Any]:
        self._expire_if_due()
        now = self._clock()
        remaining = None if self._lease_deadline is None else max(0.0, self._lease_deadline - now)
        in_ladder = {knob.id for knob, _ in self.levels[0].settings} if self.levels else set()
        return {
            "levels": [level.to_json() for level in self.levels],
            "current": self.current_name,
            "source": self.source,
            "reason": self.reason,
            "changed_at": _iso(self.changed_at),
            "lease_expires_at": (
                None if self._lease_expires_at is None else _iso(self._lease_expires_at)
            ),
            "lease_remaining_s": None if remaining is None else round(remaining, 3),
            "default": None if self.default is None else self.default.name,
            "dwell_s": self.dwell_s,
            "next_change_in_s": round(max(0.0, self._last_change + self.dwell_s - now), 3),
            "read_only": self.read_only,
            "knobs": [
                {
                    "id": knob.id,
                    "paths": list(knob.paths),
                    "values": [knob.label(v) for v in knob.values],
                    "current": None if (v := knob.read()) is None else knob.label(v),
                    "in_ladder": knob.id in in_ladder,
                    "cannot_set": knob.cannot_set(),
                }
                for knob in self.discovery.knobs
            ],
            "notes": list(self.discovery.notes),
        }

    def summary(self) -> dict[str, Any]:
        """The `power_levels` object of /api/v1/info."""
        return {
            "levels": [level.name for level in self.levels],
            "current": self.current_name,
            "default": None if self.default is None else self.default.name,
            "settable": bool(self.levels)
            and not self.read_only
            and all(knob.cannot_set() is None for knob, _ in self.levels[0].settings),
        }

    # -- internals -------------------------------------------------------------------------

    def _apply(self, level: Level | None, source: PowerSource, reason: str) -> None:
        if level is not None and level is not self.current:
            blocked = [
                f"{knob.id} ({why})" for knob, _ in level.settings if (why := knob.cannot_set())
            ]
            if blocked:
                raise KnobError(f"cannot set level {level.name}: " + "; ".join(blocked))
            self.journal.save([o for knob, _ in level.settings for o in knob.originals()])
            try:
                for knob, value in level.settings:
                    knob.write(value)
            except KnobError:
                self.restore()
                self._changed(None, "original", "a setting failed; the box's own settings")
                raise
        elif level is None and self.journal.pending:
            self.restore()
        self._changed(level, source, reason)

    def _changed(self, level: Level | None, source: PowerSource, reason: str) -> None:
        moved = level is not self.current
        self.current, self.source, self.reason = level, source, reason
        if moved:
            self.changed_at = self._wall()
            self._last_change = self._clock()
            _LOGGER.info("Power level %s (%s)", level.name if level else "original", reason)
            if self._on_change is not None:
                self._on_change(level)

    def _arm_timer(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: reads expire the lease lazily
        self._timer = loop.call_later(delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._expire_if_due()
        if self._lease_deadline is not None:  # fired a hair early
            self._arm_timer(max(0.001, self._lease_deadline - self._clock()))

    def _expire_if_due(self) -> None:
        if self._lease_deadline is None or self._clock() < self._lease_deadline:
            return
        ran_out = self._lease_expires_at
        self._lease_deadline = None
        self._lease_expires_at = None
        target = self.default
        word = target.name if target is not None else "the box's own settings"
        when = f" at {_iso(ran_out)}" if ran_out is not None else ""
        try:
            self._apply(
                target,
                "default" if target is not None else "original",
                f"lease ran out{when} without renewal; {word}",
            )
        except KnobError as err:
            _LOGGER.error("Could not return to the default power level: %s", err)
