"""What a loaded entry holds at runtime, and the entry's type: only `__init__`, the platforms and
the actions read it, so the coordinators below them never import it back."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .client import JoulegateClient
from .coordinator import JoulegateDataUpdateCoordinator
from .gate import JoulegateGateCoordinator
from .models import Info


@dataclass(kw_only=True)
class JoulegateData:
    """The entry's coordinators: the agent's, and the surplus gate's once its inputs are chosen."""

    coordinator: JoulegateDataUpdateCoordinator
    gate: JoulegateGateCoordinator | None = None

    @property
    def client(self) -> JoulegateClient:
        """The agent's client."""
        return self.coordinator.client

    @property
    def info(self) -> Info:
        """The agent's info (read again when it restarts)."""
        return self.coordinator.info


type JoulegateConfigEntry = ConfigEntry[JoulegateData]
