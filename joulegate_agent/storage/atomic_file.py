"""Small files the agent must never leave half-written (token, device id): a crash or power cut
during the write leaves either the old file or the new one."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, text: str, mode: int) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)  # O_CREAT's mode is narrowed by the umask, and ignored for an old file
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def make_private_dir(path: Path) -> None:
    """Create `path` (and its parents) for its owner only, 0700: it holds the token and the
    ledger. One that exists already is left as it is (it may be a folder the user chose)."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
