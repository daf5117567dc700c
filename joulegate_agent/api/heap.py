"""Keeps the agent's resident memory flat under load where the C library is glibc (Jetson Linux,
Debian, Ubuntu).

asyncio's selector transports read every socket with `recv(256 KiB)`: Python allocates a 256 KiB
bytes object and shrinks it to what arrived. glibc serves a request that size with mmap only until
a larger block is freed; then it raises its mmap threshold, serves the 256 KiB requests from the
heap, and the shrunk leftovers pin the heap apart so that it grows for as long as requests come
(0.4 MiB a minute under 50 streams; python/cpython#85451). A fixed threshold keeps those buffers
in mmap, handed back to the system the moment they are freed.
"""

from __future__ import annotations

import ctypes
import logging

_LOGGER = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""mallopt(3)'s parameter number; setting it also turns glibc's dynamic adjustment off."""

MMAP_THRESHOLD_BYTES = 128 * 1024
"""glibc's own starting value: socket reads (256 KiB) stay above it, small objects below."""


def pin_mmap_threshold() -> bool:
    """True when the C library took the setting (glibc); False where it has no such knob."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        _LOGGER.debug("no mallopt in this C library: the malloc threshold stays as it is")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
