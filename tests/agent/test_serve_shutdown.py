"""`joulegate-agent serve` stops at once on SIGTERM, even with a deferred request waiting."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

TOKEN = "shutdown-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("the agent did not start")


def test_sigterm_releases_a_waiting_deferred_request_and_exits_promptly(tmp_path: Path) -> None:
    env = dict(os.environ, JOULEGATE_TOKEN=TOKEN)
    port = free_port()
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "joulegate_agent",
            "serve",
            "--source",
            "simulated",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--no-zeroconf",
            "--upstream",
            f"http://127.0.0.1:{free_port()}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    statuses: list[int] = []
    try:
        wait_healthy(port)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=json.dumps({"model": "m", "messages": []}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "X-Joulegate-Defer-Until": "600"},
        )

        def send() -> None:
            try:
                urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as err:
                statuses.append(err.code)

        client = threading.Thread(target=send)
        client.start()
        time.sleep(0.5)
        started = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
        elapsed = time.monotonic() - started
        client.join(10)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert elapsed < 5.0
    assert statuses == [503]
