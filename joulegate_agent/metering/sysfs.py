"""Reading sysfs under a movable root, never raising, logging each bad file once.

Sensors vanish, return garbage or are readable only by root; the agent must keep running and say
so once, not once per sample. Tests point the root at a temporary tree built to look like a box.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")
Reader = Callable[[Path], str]


def _read_file(path: Path) -> str:
    # Plain binary read: sysfs files are tiny and this runs many times a second.
    with open(path, "rb") as handle:
        return handle.read().decode()


def _int64(text: str) -> int:
    """A sysfs integer: a C long or u64; anything wider is garbage (and would overflow floats)."""
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"out of the 64-bit range: {text[:30]!r}")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _natural_key(path: Path) -> list[object]:
    """hwmon2 before hwmon10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


class OnceLog:
    """Logs that something went bad once, and that it recovered once, per key."""

    def __init__(self, logger: logging.Logger = _LOGGER) -> None:
        self._logger = logger
        self._bad: set[object] = set()

    def failed(self, key: object, why: str) -> None:
        if key not in self._bad:
            self._bad.add(key)
            self._logger.warning("%s: %s", key, why)

    def recovered(self, key: object) -> None:
        if key in self._bad:
            self._bad.discard(key)
            self._logger.info("%s: readable again", key)


class SysfsRoot:
    """The box's `/` (or a test tree) seen through never-raising reads.

    `reader` opens one file; tests inject one that raises PermissionError, as a root-only file
    does for a normal user (the tests run as root, where chmod 000 changes nothing).
    """

    def __init__(self, root: Path, *, reader: Reader = _read_file) -> None:
        self.root = root
        self._reader = reader
        self._log = OnceLog()
        self._denied: set[str] = set()
        self._failing: set[Path] = set()

    @property
    def denied(self) -> tuple[str, ...]:
        """Box paths whose last read was refused: readable only by root."""
        return tuple(sorted(self._denied))

    def path(self, absolute: str) -> Path:
        """`/sys/class/hwmon` -> the same place under the root."""
        return self.root / absolute.lstrip("/")

    def display(self, path: Path) -> str:
        """The path as it is on the box, for logs and `doctor`."""
        return "/" + path.relative_to(self.root).as_posix()

    def glob(self, pattern: str) -> list[Path]:
        """Absolute glob pattern, matches in natural order (hwmon2 before hwmon10)."""
        return sorted(self.root.glob(pattern.lstrip("/")), key=_natural_key)

    def read_text(self, path: Path) -> str | None:
        return self._read(path, str)

    def read_int(self, path: Path) -> int | None:
        return self._read(path, _int64)

    def read_float(self, path: Path) -> float | None:
        return self._read(path, _finite_float)

    def _read(self, path: Path, parse: Callable[[str], T]) -> T | None:
        try:
            value = parse(self._reader(path).strip())
        except PermissionError:
            self._fail(path, "permission denied (readable only by root?)", denied=True)
            return None
        except OSError as err:
            self._fail(path, err.strerror or str(err))
            return None
        except ValueError as err:  # includes UnicodeDecodeError
            self._fail(path, f"unreadable value ({err})")
            return None
        if self._failing and path in self._failing:
            # Only a path that failed pays for the display name: this is the sampler's hot path.
            self._failing.discard(path)
            key = self.display(path)
            self._denied.discard(key)
            self._log.recovered(key)
        return value

    def _fail(self, path: Path, why: str, *, denied: bool = False) -> None:
        key = self.display(path)
        self._failing.add(path)
        if denied:
            self._denied.add(key)
        self._log.failed(key, why)


def as_sysfs(root: Path | SysfsRoot) -> SysfsRoot:
    """Accept a plain root directory or an already configured SysfsRoot."""
    return root if isinstance(root, SysfsRoot) else SysfsRoot(root)
