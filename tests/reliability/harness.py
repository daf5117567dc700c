"""Real processes on 127.0.0.1 for the reliability tests: the agent, the simulated LLM server.

Every process is started in its own session (so a kill reaches only it), logs to a file, and is
killed by its own pid when the test ends. Nothing here listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from demo.procs import free_port, simulated_agent_argv

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
DATABASE_FILE = "joulegate.db"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Process:
    """One child process, started in its own session, logging to `log_path`."""

    name: str
    argv: list[str]
    log_path: Path
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def spawn(self) -> None:
        """Start it and return at once (it may not answer yet)."""
        assert not self.running, f"{self.name} is already running"
        env = {**os.environ, **self.env}
        env.pop("COVERAGE_PROCESS_START", None)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Wait until the health URL answers 200; return how long that took."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            if http_ok(self.health_url, timeout=0.5):
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.log_tail()}")

    def start(self, timeout: float = START_TIMEOUT_S) -> float:
        self.spawn()
        return self.wait_ready(timeout)

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` to this process only, and reap it; return its exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(timeout=10)
        self.popen = None
        return code

    def stop(self) -> int | None:
        """SIGTERM (a clean stop), SIGKILL if it does not go within 10 s."""
        return self.kill(signal.SIGTERM)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


@dataclass
class AgentProcess(Process):
    data_dir: Path = Path()
    port: int = 0
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_FILE


def agent_process(
    tmp: Path,
    *,
    upstream: str | None,
    token: str = "reliability-token-0123456789abcdef",
    port: int | None = None,
    extra: tuple[str, ...] = (),
    name: str = "agent",
) -> AgentProcess:
    """`python -m joulegate_agent serve` on the simulated source, bound to 127.0.0.1."""
    port = port or free_port()
    data_dir = tmp / f"{name}-data"
    return AgentProcess(
        name=name,
        argv=simulated_agent_argv(port, data_dir, upstream, *extra),
        log_path=tmp / f"{name}.log",
        health_url=f"http://{HOST}:{port}/api/v1/health",
        env={"JOULEGATE_TOKEN": token},
        data_dir=data_dir,
        port=port,
        token=token,
    )


def simulator_process(
    tmp: Path, *, tokens_per_s: float = 50.0, port: int | None = None, name: str = "llm"
) -> Process:
    """`python -m joulegate_agent simulate-llm`, the simulated llama.cpp/OpenAI/Ollama server."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "joulegate_agent",
        "simulate-llm",
        "--host",
        HOST,
        "--port",
        str(port),
        "--tokens-per-s",
        str(tokens_per_s),
        "--prefill-tokens-per-s",
        "0",
    ]
    return Process(
        name=name,
        argv=argv,
        log_path=tmp / f"{name}.log",
        health_url=f"http://{HOST}:{port}/health",
    )


def upstream_url(process: Process) -> str:
    return process.health_url.removesuffix("/health")


@dataclass(frozen=True)
class DatabaseCheck:
    """What a copy of the agent's database says, checked while the agent is down."""

    integrity: str
    rows: int
    inferences_counter: int
    inferences_counted: int
    output_tokens_counter: int
    output_tokens_counted: int
    energy_counter_j: float
    energy_counted_j: float


def check_database_copy(database: Path, scratch: Path) -> DatabaseCheck:
    """Copy the database (and its WAL, as a crash left them) and check the copy.

    The copy is checked, not the original: opening and closing the original would checkpoint
    its WAL, and the agent's own recovery of a hot WAL is part of what is being tested.
    """
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    copy = scratch / database.name
    for suffix in ("", "-wal"):
        source = database.with_name(database.name + suffix)
        if source.exists():
            shutil.copyfile(source, copy.with_name(copy.name + suffix))
    connection = sqlite3.connect(copy)
    try:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        if "inferences" not in tables:  # killed before the first migration committed
            return DatabaseCheck(integrity, 0, 0, 0, 0, 0, 0.0, 0.0)
        counters = dict(connection.execute("SELECT name, value FROM counters").fetchall())
        rows, counted, tokens, energy = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(outcome != 'refused'), 0),"
            " COALESCE(SUM(MAX(COALESCE(output_tokens, 0), 0)), 0),"
            " COALESCE(SUM(MAX(energy_j, 0)), 0) FROM inferences"
        ).fetchone()
    finally:
        connection.close()
    return DatabaseCheck(
        integrity=integrity,
        rows=rows,
        inferences_counter=round(counters.get("inferences", 0)),
        inferences_counted=counted,
        output_tokens_counter=round(counters.get("output_tokens", 0)),
        output_tokens_counted=tokens,
        energy_counter_j=float(counters.get("inference_energy_j", 0.0)),
        energy_counted_j=float(energy),
    )


def counters_of(status: dict[str, Any]) -> dict[str, float]:
    """The lifetime counters of a /api/v1/status body, which must never decrease."""
    energy = status["energy"]
    inference = status["inference"]
    return {
        "board_wh": energy["board_wh"],
        "inference_wh": energy["inference_wh"],
        "marginal_inference_wh": energy["marginal_inference_wh"],
        "count": inference["count"],
        "output_tokens": inference["output_tokens"],
    }


def property_settings(examples: int = 150) -> settings:
    """Hypothesis settings of the property tests: the same cases every run (CI stays stable);
    JOULEGATE_PROPERTY_EXAMPLES=N runs N per test, JOULEGATE_PROPERTY_RANDOM=1 new ones each run
    (a longer hunt)."""
    return settings(
        max_examples=int(os.environ.get("JOULEGATE_PROPERTY_EXAMPLES", examples)),
        derandomize=os.environ.get("JOULEGATE_PROPERTY_RANDOM") != "1",
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
