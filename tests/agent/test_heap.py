"""The malloc setting that keeps the agent's memory flat: socket reads stay out of glibc's heap."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the setting exists in glibc only"
)

# Reads 100 bytes the way asyncio's transports do, after a freed 4 MiB block has raised glibc's
# dynamic mmap threshold, and says whether the bytes object landed in the [heap] mapping.
READ_AFTER_A_LARGE_FREE = textwrap.dedent(
    """
    import socket, sys
    from joulegate_agent.api.heap import pin_mmap_threshold
    pinned = sys.argv[1] == "pinned" and pin_mmap_threshold()
    large = bytes(4 << 20)
    del large
    left, right = socket.socketpair()
    left.send(b"x" * 100)
    data = right.recv(256 * 1024)
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(part, 16) for part in line.split()[0].split("-"))
            print(pinned, low <= id(data) < high)
    """
)


def read_lands_in_heap(mode: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", READ_AFTER_A_LARGE_FREE, mode],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_without_the_pin_a_socket_read_is_carved_from_the_heap() -> None:
    assert read_lands_in_heap("default") == "False True"


def test_with_the_pin_a_socket_read_stays_out_of_the_heap() -> None:
    assert read_lands_in_heap("pinned") == "True False"
