"""The agent's one error family: every error it raises on purpose is a JoulegateError.

Each module keeps its own errors (ConfigError, SpoolFullError, KnobError, ...) and their other
base where callers rely on it (ValueError, KeyError, RuntimeError); this is their common root, so
the agent's own refusals can be told from bugs and from the libraries' errors. meter_client.py is
the exception: it is standard library only, to be copied anywhere.

Files of the data directory that the agent cannot use at start (UnusableDataError): restarting
does not mend them, so the CLI prints one line (the file, what is wrong with it, what to do) and
exits with EX_CONFIG, which the shipped systemd unit does not restart on.
"""

from __future__ import annotations

from pathlib import Path

EX_CONFIG = 78
"""sysexits.h: configuration error (examples/joulegate-agent.service: RestartPreventExitStatus)."""


class JoulegateError(Exception):
    """The root of the agent's own errors."""


class UnusableDataError(JoulegateError):
    """A file in the data directory that the agent cannot use."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        super().__init__(f"{path}: {problem}; {remedy}")
        self.path = path
