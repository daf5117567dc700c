"""One platform setting that changes the box's draw: its values (lowest draw first), how to read
and write it, and whether this process may write it.

A knob never raises on a read. A write that fails raises KnobError with the file and the reason.
Knobs that live in files (sysfs, the simulated board's mode file) journal their original text so
`restore-power` can put it back without knowing what kind of knob it was.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from joulegate_agent.errors import JoulegateError

Writable = Callable[[Path], str | None]
"""Why this process cannot write a file (None: it can)."""


class KnobError(JoulegateError):
    """A knob could not be set; the message names the file or call and the reason."""


@dataclass(frozen=True, slots=True)
class Original:
    """What to put back: a file's text, or an NVML power limit in mW for GPU `index`."""

    kind: str  # "file" or "nvml_power_limit"
    target: str  # the real path, or the GPU index
    value: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target, "value": self.value}


class Knob(Protocol):
    @property
    def id(self) -> str:
        """Stable name: gpu_max_freq, cpu_max_freq, nvml_power_limit, concurrency, ..."""

    @property
    def values(self) -> tuple[int, ...]:
        """Settable values, lowest draw first."""

    @property
    def paths(self) -> tuple[str, ...]:
        """What a write touches, as shown to people (box paths, or an NVML call)."""

    @property
    def hardware(self) -> bool:
        """False for a knob that only changes the agent (the concurrency level)."""

    def label(self, value: int) -> str: ...

    def read(self) -> int | None: ...

    def write(self, value: int) -> None: ...

    def cannot_set(self) -> str | None:
        """Why this process cannot set the knob, or None."""

    def originals(self) -> list[Original]:
        """The current settings, to journal before the first write."""

    def restored(self) -> None:
        """The journal has put the originals back: bring in-process state in line."""


def file_writable(path: Path) -> str | None:
    """Whether this process may write `path`, as the kernel would answer (EROFS inside a
    systemd sandbox, EACCES for a normal user)."""
    if os.access(path, os.W_OK):
        return None
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return "read-only filesystem (a systemd unit's ProtectSystem/ProtectKernelTunables)"
    return "permission denied (root only)"


def _read_text(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode().strip()
    except (OSError, ValueError):
        return None


def write_text(path: Path, text: str) -> None:
    """Write a sysfs attribute in one write(2), as `echo value > file` does."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as err:
        why = errno.errorcode.get(err.errno or 0, "") if err.strerror is None else err.strerror
        raise KnobError(f"cannot write {text!r} to {path}: {why}") from err


class FileKnob:
    """An integer setting in one or more files (one per CPU policy), all set to the same value."""

    def __init__(
        self,
        *,
        id: str,
        files: tuple[Path, ...],
        shown: tuple[str, ...],
        values: tuple[int, ...],
        unit_scale: float,
        unit: str,
        writable: Writable = file_writable,
    ) -> None:
        self._id = id
        self._files = files
        self._shown = shown
        self._values = values
        self._scale = unit_scale
        self._unit = unit
        self._writable = writable

    @property
    def id(self) -> str:
        return self._id

    @property
    def values(self) -> tuple[int, ...]:
        return self._values

    @property
    def paths(self) -> tuple[str, ...]:
        return self._shown

    @property
    def hardware(self) -> bool:
        return True

    @property
    def files(self) -> tuple[Path, ...]:
        return self._files

    def label(self, value: int) -> str:
        return f"{value * self._scale:g} {self._unit}"

    def read(self) -> int | None:
        text = _read_text(self._files[0])
        try:
            return None if text is None else int(text)
        except ValueError:
            return None

    def write(self, value: int) -> None:
        for path in self._files:
            write_text(path, str(value))

    def cannot_set(self) -> str | None:
        reasons = [
            f"{shown}: {why}"
            for path, shown in zip(self._files, self._shown, strict=True)
            if (why := self._writable(path)) is not None
        ]
        return "; ".join(reasons) or None

    def originals(self) -> list[Original]:
        return [
            Original("file", str(path), text)
            for path in self._files
            if (text := _read_text(path)) is not None
        ]

    def restored(self) -> None:
        """Nothing held in memory."""


class NvmlPowerLimitKnob:
    """The NVML power limit of one GPU, in mW, between its constraints.

    Setting it needs root (the driver refuses others); the agent's unit does not grant that, so
    on a GPU box the levels are listed and read, and changed only where an admin allows it.
    """

    def __init__(self, nvml: ModuleType, handle: Any, index: int, values: tuple[int, ...]) -> None:
        self._nvml = nvml
        self._handle = handle
        self._index = index
        self._values = values

    @property
    def id(self) -> str:
        return f"nvml_power_limit_gpu{self._index}"

    @property
    def values(self) -> tuple[int, ...]:
        return self._values

    @property
    def paths(self) -> tuple[str, ...]:
        return (f"nvmlDeviceSetPowerManagementLimit(GPU {self._index})",)

    @property
    def hardware(self) -> bool:
        return True

    def label(self, value: int) -> str:
        return f"{value / 1000:g} W"

    def read(self) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetPowerManagementLimit(self._handle))
        except self._nvml.NVMLError:
            return None

    def write(self, value: int) -> None:
        set_nvml_limit(self._nvml, self._handle, self._index, value)

    def cannot_set(self) -> str | None:
        if os.geteuid() != 0:
            return "NVML power limits can be set by root only"
        return None

    def originals(self) -> list[Original]:
        value = self.read()
        return [] if value is None else [Original("nvml_power_limit", str(self._index), str(value))]

    def restored(self) -> None:
        """Nothing held in memory."""


def set_nvml_limit(nvml: ModuleType, handle: Any, index: int, milliwatts: int) -> None:
    try:
        nvml.nvmlDeviceSetPowerManagementLimit(handle, milliwatts)
    except nvml.NVMLError as err:
        raise KnobError(f"cannot set GPU {index}'s power limit to {milliwatts} mW: {err}") from err


class ConcurrencyKnob:
    """How many inferences the agent lets through at once; 0 stands for no limit of its own.

    It only changes the agent, never the box, so it needs no privilege and nothing to restore
    beyond the configured limit. In front of a server that runs one request at a time (Ollama on
    a small board, llama-server --parallel 1) it changes nothing: that server already serialises.
    """

    def __init__(
        self,
        values: tuple[int, ...],
        read: Callable[[], int | None],
        write: Callable[[int | None], None],
        configured: int | None,
    ) -> None:
        self._values = values
        self._read = read
        self._write = write
        self._configured = configured

    @property
    def id(self) -> str:
        return "concurrency"

    @property
    def values(self) -> tuple[int, ...]:
        return self._values

    @property
    def paths(self) -> tuple[str, ...]:
        return ("the agent's own limit on inferences at once",)

    @property
    def hardware(self) -> bool:
        return False

    def label(self, value: int) -> str:
        return "no limit" if value == 0 else f"{value} at once"

    def read(self) -> int | None:
        return self._read() or 0

    def write(self, value: int) -> None:
        self._write(value or None)

    def cannot_set(self) -> str | None:
        return None

    def originals(self) -> list[Original]:
        return []

    def restored(self) -> None:
        self._write(self._configured)
