"""Files of the data directory that the agent cannot use at start.

Restarting does not mend them, so the CLI prints one line (the file, what is wrong with it, what
to do) and exits with EX_CONFIG, which the shipped systemd unit does not restart on.
"""

from __future__ import annotations

from pathlib import Path

EX_CONFIG = 78
"""sysexits.h: configuration error (examples/joulegate-agent.service: RestartPreventExitStatus)."""


class UnusableDataError(Exception):
    """A file in the data directory that the agent cannot use."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        super().__init__(f"{path}: {problem}; {remedy}")
        self.path = path
