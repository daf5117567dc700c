"""The restore journal: the box's original settings, on disk before the first change.

Clock caps set through sysfs last until the next boot, and an NVML power limit until the driver
reloads, so a crashed agent would leave the box slowed down. The journal is written (and synced)
before any knob is touched; restoring writes every original back and then deletes the journal.
The next start, and the unit's ExecStopPost (`joulegate-agent restore-power`), restore from it
when the agent could not.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
from pathlib import Path

from joulegate_agent.power.knobs import KnobError, Original, set_nvml_limit, write_text
from joulegate_agent.storage.atomic_file import replace_file

_LOGGER = logging.getLogger(__name__)

JOURNAL_FILE = "power-restore.json"


class RestoreJournal:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / JOURNAL_FILE

    @property
    def pending(self) -> bool:
        return self.path.exists()

    def save(self, originals: list[Original]) -> None:
        """Keep `originals` unless a journal is already there: the first one holds the settings
        from before any change."""
        if self.pending:
            return
        text = json.dumps({"originals": [o.to_json() for o in originals]}, indent=1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.path, text + "\n", 0o600)
        except OSError as err:
            raise KnobError(
                f"cannot write the restore journal {self.path} ({err.strerror or err}): "
                "nothing was changed"
            ) from err

    def load(self) -> list[Original]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return [
                Original(str(e["kind"]), str(e["target"]), str(e["value"]))
                for e in document["originals"]
            ]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise KnobError(f"the restore journal {self.path} cannot be read: {err}") from err

    def restore(self) -> list[str]:
        """Write every original back; delete the journal when all went back. Returns what
        failed (empty: all restored). A journal with failures stays for the next try."""
        failures: list[str] = []
        try:
            originals = self.load()
        except KnobError as err:
            # Kept for a person to read, out of the way of the journal of the next change.
            with contextlib.suppress(OSError):
                self.path.replace(self.path.with_name(self.path.name + ".corrupt"))
            _LOGGER.error("%s; moved aside to %s.corrupt", err, self.path.name)
            return [str(err)]
        for original in originals:
            try:
                _put_back(original)
            except KnobError as err:
                failures.append(str(err))
        if failures:
            for failure in failures:
                _LOGGER.error("Could not restore a power setting: %s", failure)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        return failures


def _put_back(original: Original) -> None:
    if original.kind == "file":
        write_text(Path(original.target), original.value)
    elif original.kind == "nvml_power_limit":
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
        except Exception as err:
            raise KnobError(f"NVML is not available to restore a power limit: {err}") from err
        try:
            index = int(original.target)
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            set_nvml_limit(nvml, handle, index, int(original.value))
        finally:
            nvml.nvmlShutdown()
    else:
        raise KnobError(f"unknown setting kind {original.kind!r} in the restore journal")
