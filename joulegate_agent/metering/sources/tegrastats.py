"""Jetson power from `tegrastats` output: the fallback when no INA3221 file can be read.

tegrastats prints one line per interval with each rail's power, in three spellings:
`POM_5V_IN 2545/2547` (JetPack 4: current/average, mW, no unit), `VDD_IN 4761mW/4778mW`
(JetPack 5 and 6) and `VDD_IN 4548mW/4548mW/4548mW` (JetPack 7). The first number is the
current one. Its resolution is its interval (1 s at best in practice), so it is only ever used
when the files it reads itself are out of reach, or when asked for with `--source tegrastats`.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from joulegate_agent.metering.sources.base import (
    MODULE_INPUT,
    SUM_OF_RAILS,
    PowerReading,
    RailInfo,
    RailReading,
    SourceInfo,
)
from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.rails import NOT_CONNECTED, WHOLE_BOARD_RAILS, board_power
from joulegate_agent.metering.sysfs import SysfsRoot

_LOGGER = logging.getLogger(__name__)

BINARY = "/usr/bin/tegrastats"
INTERVAL_MS = 1000
FIRST_LINE_TIMEOUT_S = 5.0
STALE_AFTER_INTERVALS = 3
"""A reading older than this many intervals is not a reading: tegrastats stalled or died."""
RESTART_AFTER_S = 5.0
HUNG_AFTER_INTERVALS = 10
"""A running tegrastats silent for this many intervals is hung: it is killed, then restarted."""
MAX_LINE_CHARS = 4096
MAX_DIGITS = 9
"""More digits than this (over 1 MW in mW) is not a rail's power."""

_RAIL = re.compile(
    r"(?<!\S)([A-Z][A-Z0-9_]*) (\d+)(mW)?/\d+(?:mW)?(?:/\d+(?:mW)?)?(?!\S)",
)


@dataclass(frozen=True, slots=True)
class TegrastatsLine:
    """The rails of one line, in the order printed, in watts."""

    rails: tuple[tuple[str, float], ...]

    @property
    def whole_board(self) -> str | None:
        names = [name for name, _ in self.rails]
        return next((name for name in WHOLE_BOARD_RAILS if name in names), None)


def parse_line(line: str) -> TegrastatsLine | None:
    """The rails of a tegrastats line, or None when it names none (or is not tegrastats output).

    Other fields (`RAM 2448/3964MB`, `CPU [...]`, `cpu@48.5C`) never match: a rail's values are
    plain numbers or end in mW. A rail printed twice keeps its first value; `NC` channels (wired
    to nothing, AGX Orin) are left out, as the file sources do.
    """
    if len(line) > MAX_LINE_CHARS:
        return None
    rails: dict[str, float] = {}
    for match in _RAIL.finditer(line):
        name, digits = match.group(1), match.group(2)
        if name == NOT_CONNECTED or len(digits.lstrip("0")) > MAX_DIGITS:
            continue
        rails.setdefault(name, int(digits) / 1000.0)
    return TegrastatsLine(tuple(rails.items())) if rails else None


class TegrastatsSource:
    """Runs `tegrastats --interval N` and keeps the latest line; `read` never waits for it.

    If tegrastats exits, it is started again every RESTART_AFTER_S until it runs; readings are
    unavailable meanwhile. One that stops printing is killed, and so restarted too.
    """

    def __init__(self, binary: Path, display_path: str, interval_ms: int = INTERVAL_MS) -> None:
        self._display_path = display_path
        self._interval_s = interval_ms / 1000.0
        self._argv = [str(binary), "--interval", str(interval_ms)]
        self._lock = threading.Lock()
        self._latest: TegrastatsLine | None = None
        self._latest_at = 0.0
        self._heard_at = 0.0  # the last line, or the start of the current process
        self._first = threading.Event()
        self._stop = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._rails: tuple[str, ...] = ()
        self._whole: str | None = None

    def start(self, timeout_s: float = FIRST_LINE_TIMEOUT_S) -> None:
        """Start tegrastats and wait for its first line with rails; NotDetected if none comes."""
        try:
            process = self._spawn()
        except OSError as err:
            raise NotDetected(f"{self._display_path} could not be run: {err}") from err
        self._reader = threading.Thread(
            target=self._run, args=(process,), name="joulegate-tegrastats", daemon=True
        )
        self._reader.start()
        if not self._first.wait(timeout_s) or self._latest is None:
            self.close()
            raise NotDetected(
                f"{self._display_path} printed no power rail within {timeout_s:g} s "
                "(it needs the INA3221 driver; some rails need root)"
            )
        self._rails = tuple(name for name, _ in self._latest.rails)
        self._whole = self._latest.whole_board

    @property
    def info(self) -> SourceInfo:
        whole = self._whole
        return SourceInfo(
            kind="tegrastats",
            path=self._display_path,
            boundary=f"{MODULE_INPUT} ({whole})" if whole else SUM_OF_RAILS,
            rails=tuple(RailInfo(name, name == whole) for name in self._rails),
            notes=(
                f"tegrastats prints every {self._interval_s:g} s: power between lines is held, "
                "so short inferences are metered coarsely; the INA3221 files are better",
            ),
            resolution_s=self._interval_s,
        )

    def read(self) -> PowerReading:
        now = time.monotonic()
        with self._lock:
            latest, at = self._latest, self._latest_at
            heard, process = self._heard_at, self._process
        if latest is None or now - at > STALE_AFTER_INTERVALS * self._interval_s:
            hung = now - heard > HUNG_AFTER_INTERVALS * self._interval_s
            if hung and process is not None and process.poll() is None:
                _LOGGER.warning("%s stopped printing: killing it", self._display_path)
                with self._lock:
                    self._heard_at = now  # one kill; the restart resets it again
                process.kill()  # its reader sees the output end, and starts another
            return PowerReading(None, tuple(RailReading(name, None) for name in self._rails))
        watts = dict(latest.rails)
        rails = tuple(RailReading(name, watts.get(name)) for name in self._rails)
        return PowerReading(board_power(rails, self._whole), rails)

    def close(self) -> None:
        with self._lock:
            self._stop.set()  # under the lock: _spawn sees it, or close() sees its process
            process = self._process
        if process is not None:
            _end(process)
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        with self._lock:
            self._latest = None

    def _spawn(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(  # noqa: S603 - a fixed path and fixed arguments
            self._argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        with self._lock:
            closed = self._stop.is_set()
            if not closed:
                self._process, self._heard_at = process, time.monotonic()
        if closed:  # close() ran while it was starting
            _end(process)
        return process

    def _run(self, process: subprocess.Popen[str]) -> None:
        while True:
            self._pump(process)
            self._first.set()  # start() stops waiting if the first run printed nothing
            if self._stop.is_set() or self._latest is None:
                return  # closed, or never a source (start() says why)
            _LOGGER.warning(
                "%s exited (status %s); starting it again in %g s",
                self._display_path,
                process.poll(),
                RESTART_AFTER_S,
            )
            while True:
                if self._stop.wait(RESTART_AFTER_S):
                    return
                try:
                    process = self._spawn()
                    break
                except OSError as err:
                    _LOGGER.debug("%s could not be started again: %s", self._display_path, err)

    def _pump(self, process: subprocess.Popen[str]) -> None:
        stdout = process.stdout
        if stdout is None:
            return
        with stdout:
            while line := stdout.readline(MAX_LINE_CHARS + 1):
                parsed = parse_line(line)
                with self._lock:
                    if self._stop.is_set():
                        break
                    self._heard_at = time.monotonic()
                    if parsed is not None:
                        self._latest, self._latest_at = parsed, self._heard_at
                if parsed is not None:
                    self._first.set()
        process.wait()


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=2.0)


def detect_tegrastats(sysfs: SysfsRoot) -> TegrastatsSource:
    binary = sysfs.path(BINARY)
    if not binary.is_file():
        raise NotDetected(f"no {BINARY} (it comes with Jetson Linux)")
    source = TegrastatsSource(binary, sysfs.display(binary))
    source.start()
    return source
