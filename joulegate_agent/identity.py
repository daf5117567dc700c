"""Who this box is: a device id that stays stable, and the board model for Home Assistant."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from joulegate_agent.errors import UnusableDataError
from joulegate_agent.storage.atomic_file import make_private_dir, replace_file

DEVICE_ID_FILE = "device_id"


@dataclass(frozen=True, slots=True)
class Board:
    manufacturer: str
    model: str
    simulated: bool


def load_device_id(data_dir: Path, root: Path) -> str:
    """Derived from /etc/machine-id when readable (survives a wiped data directory), else random.

    Stored on first use so it never changes afterwards, whatever happens to machine-id. A stored
    id that is not text is not replaced silently: Home Assistant knows the box by it.
    """
    path = data_dir / DEVICE_ID_FILE
    if path.exists():
        try:
            stored = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise UnusableDataError(
                path,
                "the device id file is not UTF-8 text",
                "delete it and the agent makes a new id at start (Home Assistant then sees "
                "another device: reconfigure its Joulegate entry)",
            ) from None
        if stored:
            return stored
    machine_id = _read(root / "etc/machine-id")
    if machine_id:
        device_id = hashlib.sha256(f"joulegate:{machine_id}".encode()).hexdigest()[:16]
    else:
        device_id = secrets.token_hex(8)
    make_private_dir(data_dir)
    replace_file(path, device_id + "\n", 0o600)
    return device_id


def detect_board(root: Path, simulated: bool) -> Board:
    if simulated:
        return Board("NVIDIA", "Jetson Orin Nano (simulated)", simulated=True)
    model = _read(root / "proc/device-tree/model")
    if model:
        manufacturer = "NVIDIA" if "nvidia" in model.lower() or "jetson" in model.lower() else ""
        return Board(manufacturer or "Unknown", model, simulated=False)
    vendor = _read(root / "sys/class/dmi/id/sys_vendor") or "Unknown"
    product = _read(root / "sys/class/dmi/id/product_name") or "Linux computer"
    return Board(vendor, product, simulated=False)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""
