"""Child processes of the demo and the end-to-end tests: start, wait until they answer, stop.

Every child runs in its own session (process group), so a Ctrl-C at the terminal reaches only the
demo's main process, which then stops the children in order: SIGTERM (SIGINT for the simulated
LLM server) to the child's group, SIGKILL to that group if it has not exited in time. Nothing
else is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent


class ServiceError(RuntimeError):
    """A child process failed to start, or exited when it should be running."""


class Service:
    """One child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {self.argv}\n".encode())
        self._log.flush()
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(  # noqa: S603 - argv built by the demo, no shell
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=env,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_running(self) -> None:
        """Raise ServiceError (with the end of the log) when the process has exited."""
        if self.proc is None:
            raise ServiceError(f"{self.name} was not started")
        code = self.proc.poll()
        if code is not None:
            raise ServiceError(
                f"{self.name} exited with status {code}; the end of {self.log_path}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> int | None:
        """Signal the process group (SIGTERM unless the service says otherwise), SIGKILL it after
        `timeout` s; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                _signal_group(proc.pid, self.stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    print(f"  {self.name} did not stop in {timeout:.0f} s: killing it", flush=True)
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            # Whatever the child left in its group (it should have taken them with it).
            _signal_group(proc.pid, signal.SIGKILL)
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_all(services: Sequence[Service], timeout: float = 20.0) -> None:
    """Stop services in the given order (callers pass them newest first)."""
    for service in services:
        if service.proc is None:
            continue
        was_running = service.running()
        code = service.stop(timeout)
        if was_running:
            print(f"  stopped {service.name} (exit status {code})", flush=True)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now (for tests; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status a GET of `url` answers, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http://127.0.0.1 only
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return None


def wait_http(
    url: str,
    *,
    timeout: float,
    service: Service | None = None,
    ready: Callable[[int], bool] = lambda status: status == 200,
    interval: float = 0.25,
) -> int:
    """Poll `url` until its status satisfies `ready`; fail early if `service` exits."""
    deadline = time.monotonic() + timeout
    last: int | None = None
    while True:
        if service is not None:
            service.check_running()
        last = http_status(url)
        if last is not None and ready(last):
            return last
        if time.monotonic() > deadline:
            detail = (
                f"\nThe end of its log ({service.log_path}):\n{service.tail()}" if service else ""
            )
            raise ServiceError(
                f"{url} did not answer as expected within {timeout:.0f} s (last status: {last})"
                f"{detail}"
            )
        time.sleep(interval)


def python_argv(*args: str) -> list[str]:
    """Run with this interpreter (the demo's venv)."""
    return [sys.executable, *args]


def simulated_agent_argv(port: int, data_dir: Path, upstream: str | None, *extra: str) -> list[str]:
    """`python -m joulegate_agent serve` on the simulated source, on 127.0.0.1, without mDNS."""
    return python_argv(
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
        str(data_dir),
        "--no-zeroconf",
        *(["--upstream", upstream] if upstream else []),
        *extra,
    )


def llm_service(
    port: int,
    log_dir: Path,
    tokens_per_s: float = 25.0,
    *,
    power_mode_file: Path | None = None,
    name: str = "simulated LLM",
    log_name: str = "simulate-llm.log",
) -> Service:
    """`joulegate-agent simulate-llm`: llama.cpp, OpenAI-compatible and Ollama routes; with
    `power_mode_file`, decoding at the rate of the simulated agent's power level."""
    follow = ("--power-mode-file", str(power_mode_file)) if power_mode_file else ()
    return Service(
        name,
        python_argv(
            "-m",
            "joulegate_agent",
            "simulate-llm",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--tokens-per-s",
            str(tokens_per_s),
            *follow,
        ),
        log_path=log_dir / log_name,
        cwd=REPO_ROOT,
        stop_signal=signal.SIGINT,  # it stops cleanly on Ctrl-C, and dies on SIGTERM
    )


def agent_service(
    port: int,
    data_dir: Path,
    upstream_port: int,
    log_dir: Path,
    *extra: str,
    name: str = "agent",
    log_name: str = "agent.log",
) -> Service:
    """`joulegate-agent serve` on the simulated power source, proxying to the simulated LLM."""
    env = dict(os.environ)
    env.pop("JOULEGATE_TOKEN", None)  # the token file in data_dir is the one the demo reads
    return Service(
        name,
        simulated_agent_argv(port, data_dir, f"http://127.0.0.1:{upstream_port}", *extra),
        log_path=log_dir / log_name,
        cwd=REPO_ROOT,
        env=env,
    )


def hass_service(config_dir: Path, log_dir: Path) -> Service:
    """A real Home Assistant: `hass -c CONFIG --skip-pip` (through demo/hass_main.py)."""
    return Service(
        "Home Assistant",
        python_argv(
            str(REPO_ROOT / "demo" / "hass_main.py"),
            "-c",
            str(config_dir),
            "--skip-pip",
        ),
        log_path=log_dir / "home-assistant.log",
        cwd=config_dir,
    )
