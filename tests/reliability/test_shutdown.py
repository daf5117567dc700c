"""`joulegate-agent serve` stops at once on SIGTERM, even with a deferred request waiting."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from demo.procs import free_port
from tests.reliability.harness import agent_process


def test_sigterm_answers_a_waiting_deferred_request_and_exits_promptly(tmp_path: Path) -> None:
    agent = agent_process(tmp_path, upstream=f"http://127.0.0.1:{free_port()}")
    agent.start()
    statuses: list[int] = []
    request = urllib.request.Request(
        f"{agent.url}/v1/chat/completions",
        data=json.dumps({"model": "m", "messages": []}).encode(),
        headers={**agent.headers, "X-Joulegate-Defer-Until": "600"},
    )

    def send() -> None:
        try:
            urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as err:
            statuses.append(err.code)

    client = threading.Thread(target=send)
    try:
        client.start()
        time.sleep(0.5)
        started = time.monotonic()
        code = agent.kill(signal.SIGTERM)
        elapsed = time.monotonic() - started
        client.join(10)
    finally:
        agent.kill()
    assert code == 0
    assert elapsed < 5.0
    assert statuses == [503]
