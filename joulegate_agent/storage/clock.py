"""How far the agent trusts the wall clock: whether it is synchronised, and the retention clock.

A Jetson has no RTC battery: it boots with whatever time it last saved (or 1970, or a date years
off) until NTP corrects it, and a hand-set clock can be anywhere. Rows carry the wall time they
were written at, so each also says whether the clock was synchronised then (`clock_synced`).

Retention must not delete rows because the clock jumped. It prunes by the *retention clock*, not
the wall clock: a time that advances with the monotonic clock and takes the wall clock's reading
only when the two agree (within JUMP_TOLERANCE_S of what has passed since the last reading) or
when the system says the clock is synchronised. Across restarts it resumes from the latest value
the ledger has seen (stored beside the rows, and each row's own), so time the agent was down counts
only once the clock is synchronised; until then rows are kept longer, never deleted early. Each
row records, as `retention_ts`, its end time shifted by the retention clock's offset from the wall
clock when it was written, so rows written under a wrong clock age from when they really were.
A new ledger started under a clock that is not synchronised and reads a time before
EARLIEST_PLAUSIBLE_TS (a board booted at its image's date) has no reference at all: its rows get
no retention time (they are never pruned) until the clock is synchronised, and then age from that
moment.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

TIMESYNC_DIR = "run/systemd/timesync"
TIMESYNC_FLAG = "run/systemd/timesync/synchronized"
STA_UNSYNC = 0x0040
JUMP_TOLERANCE_S = 300.0
EARLIEST_PLAUSIBLE_TS = 1767225600.0
"""2026-01-01T00:00:00Z, before this agent existed: a clock reading earlier is certainly wrong."""

_LONG = ctypes.c_long


class _Timex(ctypes.Structure):
    """Linux `struct timex` (adjtimex(2)); read-only use, modes = 0."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", _LONG),
        ("freq", _LONG),
        ("maxerror", _LONG),
        ("esterror", _LONG),
        ("status", ctypes.c_int),
        ("constant", _LONG),
        ("precision", _LONG),
        ("tolerance", _LONG),
        ("time_sec", _LONG),
        ("time_usec", _LONG),
        ("tick", _LONG),
        ("ppsfreq", _LONG),
        ("jitter", _LONG),
        ("shift", ctypes.c_int),
        ("stabil", _LONG),
        ("jitcnt", _LONG),
        ("calcnt", _LONG),
        ("errcnt", _LONG),
        ("stbcnt", _LONG),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    )


@functools.cache
def _adjtimex() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None


def kernel_clock_status() -> int | None:
    """The kernel's NTP status bits (adjtimex, changing nothing); None where it cannot be read
    (not Linux, or a sandbox such as systemd's ProtectClock= that forbids the call)."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    timex = _Timex()
    if adjtimex(ctypes.byref(timex)) == -1:
        return None
    return int(timex.status)


def clock_synced(
    root: Path = Path("/"), kernel: Callable[[], int | None] = kernel_clock_status
) -> bool | None:
    """Whether the wall clock is synchronised: systemd-timesyncd's flag file, else the kernel's
    STA_UNSYNC bit; False if timesyncd runs but has not synchronised yet; None when unknown."""
    if (root / TIMESYNC_FLAG).exists():
        return True
    status = kernel()
    if status is not None:
        return not status & STA_UNSYNC
    if (root / TIMESYNC_DIR).is_dir():
        return False
    return None


class RetentionClock:
    """A wall time retention can trust (see the module's docstring), in epoch seconds.

    `anchored` is False while it has no trustworthy reading at all: a new ledger started under a
    clock that is not known to be right. Rows written then get no retention time (they are kept)
    until the clock is synchronised.
    """

    def __init__(
        self,
        resume_ts: float | None,
        *,
        anchored: bool = True,
        synced: Callable[[], bool | None],
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._synced = synced
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last_wall = wall()
        self._mono = monotonic()
        self._distrusted = False
        if resume_ts is None:
            self.anchored = synced() is True or self._last_wall >= EARLIEST_PLAUSIBLE_TS
            self._ts = self._last_wall
            if not self.anchored:
                _LOGGER.warning(
                    "The wall clock is not known to be right on this new ledger: its rows are "
                    "kept, not aged for retention, until the clock is synchronised"
                )
        else:
            self.anchored = anchored
            self._ts = resume_ts
            self.now()

    def now(self) -> float:
        return self._read()[0]

    def _read(self) -> tuple[float, bool | None]:
        """(the retention time now, whether the system said the clock is synchronised): one
        probe of the system's clock state (a file stat and a system call) for both."""
        with self._lock:
            wall, mono = self._wall(), self._monotonic()
            self._last_wall = wall
            expected = self._ts + max(0.0, mono - self._mono)
            self._mono = mono
            off_by = wall - expected
            synced = self._synced()
            if synced is True or (self.anchored and abs(off_by) <= JUMP_TOLERANCE_S):
                if self._distrusted or abs(off_by) > JUMP_TOLERANCE_S:
                    _LOGGER.info(
                        "Retention follows the wall clock again (%+.0f s from the time the agent "
                        "counted)",
                        off_by,
                    )
                self._distrusted = False
                self.anchored = True
                self._ts = wall
                return wall, synced
            if self.anchored and not self._distrusted:
                _LOGGER.warning(
                    "The wall clock is %+.0f s from the time the agent has seen pass; until it "
                    "is synchronised, retention counts monotonic time and rows are kept",
                    off_by,
                )
                self._distrusted = True
            self._ts = expected
            return expected, synced

    def offset(self) -> float | None:
        """Retention time minus wall time, now (0 while the wall clock is trusted); None while
        the clock is not anchored."""
        return self.reading()[0]

    def reading(self) -> tuple[float | None, bool | None]:
        """(`offset()`, whether the clock is synchronised) from a single probe: a row's stamp
        needs both, on the event loop, for every row."""
        ts, synced = self._read()
        return (ts - self._last_wall if self.anchored else None), synced
