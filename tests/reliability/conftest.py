"""Fixtures of the reliability tests: real processes, always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.reliability.harness import Process

P = TypeVar("P", bound=Process)


class Processes:
    """Keeps every process a test starts, and kills what is still running at its end."""

    def __init__(self) -> None:
        self._all: list[Process] = []

    def add(self, process: P) -> P:
        self._all.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self._all):
            process.kill()


@pytest.fixture
def processes() -> Iterator[Processes]:
    kept = Processes()
    try:
        yield kept
    finally:
        kept.stop_all()
