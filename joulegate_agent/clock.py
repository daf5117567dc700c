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
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

TIMESYNC_DIR = "run/systemd/timesync"
TIMESYNC_FLAG = "run/systemd/timesync/synchronized"
STA_UNSYNC = 0x0040
JUMP_TOLERANCE_S = 300.0

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


def kernel_clock_status() -> int | None:
    """The kernel's NTP status bits (adjtimex, changing nothing); None where it cannot be read
    (not Linux, or a sandbox such as systemd's ProtectClock= that forbids the call)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
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
    """A wall time retention can trust (see the module's docstring), in epoch seconds."""

    def __init__(
        self,
        resume_ts: float | None,
        *,
        synced: Callable[[], bool | None],
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._synced = synced
        self._wall = wall
        self._monotonic = monotonic
        self._last_wall = wall()
        self._ts = self._last_wall if resume_ts is None else resume_ts
        self._mono = monotonic()
        self._distrusted = False
        if resume_ts is not None:
            self.now()

    def now(self) -> float:
        wall, mono = self._wall(), self._monotonic()
        self._last_wall = wall
        expected = self._ts + max(0.0, mono - self._mono)
        off_by = wall - expected
        if abs(off_by) <= JUMP_TOLERANCE_S or self._synced() is True:
            if self._distrusted or abs(off_by) > JUMP_TOLERANCE_S:
                _LOGGER.info(
                    "Retention follows the wall clock again (it is %+.0f s from the time the "
                    "agent counted)",
                    off_by,
                )
            self._distrusted = False
            self._ts = wall
        else:
            if not self._distrusted:
                _LOGGER.warning(
                    "The wall clock is %+.0f s from the time the agent has seen pass; until it "
                    "is synchronised, retention counts monotonic time and rows are kept",
                    off_by,
                )
            self._distrusted = True
            self._ts = expected
        self._mono = mono
        return self._ts

    def offset(self) -> float:
        """Retention time minus wall time, now (0 while the wall clock is trusted)."""
        return self.now() - self._last_wall
