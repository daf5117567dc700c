"""The inference gate: a lease that Home Assistant renews, and a fallback when it stops.

Home Assistant decides whether inference may run; the agent only enforces it. Every decision
arrives as a lease (`open` for `lease_s` seconds). When a lease runs out without renewal the gate
falls back to its configured default (closed unless configured open) and says so. A new agent
process always starts at the fallback: no lease survives a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

_LOGGER = logging.getLogger(__name__)

LEASE_MIN_S = 1.0
LEASE_MAX_S = 86400.0
REASON_MAX_CHARS = 200

GateSource = Literal["lease", "fallback"]
GateScope = Literal["all", "batch"]
GATE_SCOPES: tuple[GateScope, ...] = ("all", "batch")
GateListener = Callable[["GateSnapshot"], None]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _fallback_word(fallback_open: bool) -> str:
    return "open" if fallback_open else "closed"


@dataclass(frozen=True, slots=True)
class GateSnapshot:
    """What the gate says at one instant; `to_json` is the API's `<gate>` object."""

    open: bool
    source: GateSource
    reason: str
    fallback_open: bool
    changed_at: datetime
    lease_expires_at: datetime | None = None
    lease_deadline: float | None = None  # monotonic clock
    now: float | None = None  # monotonic clock at which lease_remaining_s is computed
    scope: GateScope = "all"
    batch_open: bool | None = None
    """Whether batch work is admitted; None: as `open` (a lease of scope `all`)."""

    @property
    def admits_batch(self) -> bool:
        return self.open if self.batch_open is None else self.batch_open

    @property
    def lease_remaining_s(self) -> float | None:
        if self.lease_deadline is None or self.now is None:
            return None
        return max(0.0, self.lease_deadline - self.now)

    def to_json(self) -> dict[str, Any]:
        remaining = self.lease_remaining_s
        return {
            "open": self.open,
            "source": self.source,
            "reason": self.reason,
            "lease_expires_at": (
                _iso(self.lease_expires_at) if self.lease_expires_at is not None else None
            ),
            "lease_remaining_s": round(remaining, 3) if remaining is not None else None,
            "fallback_open": self.fallback_open,
            "changed_at": _iso(self.changed_at),
            "scope": self.scope,
            "batch_open": self.admits_batch,
        }


class Gate:
    """Lease state machine: `set` installs a lease; when it runs out, the fallback applies.

    Expiry is driven by a timer on the running event loop and, independently, checked on every
    read, so a late timer never shows an expired lease as current.
    """

    def __init__(
        self,
        *,
        fallback_open: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self._fallback_open = fallback_open
        self._clock = clock
        self._wall = wall or (lambda: datetime.now(timezone.utc))
        self._listeners: list[GateListener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._open = fallback_open
        self._scope: GateScope = "all"
        self._source: GateSource = "fallback"
        self._reason = f"agent started; no lease yet, fallback {_fallback_word(fallback_open)}"
        self._changed_at = self._wall()
        self._lease_deadline: float | None = None
        self._lease_expires_at: datetime | None = None

    @property
    def fallback_open(self) -> bool:
        return self._fallback_open

    @property
    def is_open(self) -> bool:
        """Whether interactive traffic is admitted (a lease of scope `batch` admits only batch
        work: interactive requests still wait for the sun)."""
        self._expire_if_due()
        return self._open and self._scope == "all"

    @property
    def admits_batch(self) -> bool:
        """Batch work runs under any open lease, of scope `all` or `batch`."""
        self._expire_if_due()
        return self._open

    def state(self) -> GateSnapshot:
        self._expire_if_due()
        return GateSnapshot(
            open=self._open and self._scope == "all",
            scope=self._scope,
            batch_open=self._open,
            source=self._source,
            reason=self._reason,
            fallback_open=self._fallback_open,
            changed_at=self._changed_at,
            lease_expires_at=self._lease_expires_at,
            lease_deadline=self._lease_deadline,
            now=self._clock(),
        )

    def set(
        self, *, open: bool, lease_s: float, reason: str = "", scope: GateScope = "all"
    ) -> GateSnapshot:
        """Install a lease: the gate is `open` (or closed) for `lease_s` seconds from now; an
        open lease of `scope` "batch" admits batch work only.

        Callers validate `lease_s` against LEASE_MIN_S..LEASE_MAX_S for the API; the class itself
        accepts any positive duration so tests can use short leases.
        """
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        now = self._clock()
        self._lease_deadline = now + lease_s
        self._lease_expires_at = self._wall() + timedelta(seconds=lease_s)
        text = reason.strip()[:REASON_MAX_CHARS] or ("lease open" if open else "lease closed")
        self._transition(open_=open, source="lease", reason=text, scope=scope)
        self._arm_timer(lease_s)
        return self.state()

    def add_listener(self, listener: GateListener) -> Callable[[], None]:
        """Call `listener(state)` after every change of open, source or reason."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def close(self) -> None:
        """Stop the expiry timer (the agent is shutting down)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- internals -------------------------------------------------------------------------

    def _arm_timer(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: reads still expire the lease lazily
        self._timer = loop.call_later(delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._expire_if_due()
        if self._lease_deadline is not None:  # timer fired a hair early: try again
            self._arm_timer(max(0.001, self._lease_deadline - self._clock()))

    def _expire_if_due(self) -> None:
        if self._lease_deadline is None or self._clock() < self._lease_deadline:
            return
        ran_out_at = self._lease_expires_at
        self._lease_deadline = None
        self._lease_expires_at = None
        when = f" at {_iso(ran_out_at)}" if ran_out_at is not None else ""
        self._transition(
            open_=self._fallback_open,
            scope="all",
            source="fallback",
            reason=(
                f"lease ran out{when} without renewal; "
                f"fallback {_fallback_word(self._fallback_open)}"
            ),
        )

    def _transition(
        self, *, open_: bool, source: GateSource, reason: str, scope: GateScope
    ) -> None:
        before = (self._open, self._scope, self._source, self._reason)
        changed = (open_, scope, source, reason) != before
        if (open_, scope) != (self._open, self._scope):
            self._changed_at = self._wall()
        self._open, self._scope, self._source, self._reason = open_, scope, source, reason
        if changed:
            state = self.state()
            for listener in list(self._listeners):
                try:
                    listener(state)
                except Exception:
                    _LOGGER.exception("gate listener failed")
