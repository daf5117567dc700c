"""Helpers shared by the Joulegate integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from ipaddress import ip_address
from typing import Any

from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.joulegate.binary_sensor import INFERENCE_ALLOWED
from custom_components.joulegate.number import NUMBERS
from custom_components.joulegate.select import BATTERY_POLICY, GATE_MODE
from custom_components.joulegate.sensor import GATE_SENSORS

from .fakes.agent import FakeAgent

DEVICE_ID = "3f2a9c0d1e7b4a51"
ENTRY_ID = "01JOULEGATETESTENTRY000001"

# The factory fixtures' types: `mock_agent_factory(**info)` starts another fake agent,
# `mock_config_entry_factory(agent, **fields)` makes an entry pointing at an agent.
type MockAgentFactory = Callable[..., Awaitable[FakeAgent]]
type MockConfigEntryFactory = Callable[..., MockConfigEntry]

# Every entity the surplus gate may have; which ones an entry has depends on its inputs.
GATE_ENTITY_KEYS = frozenset(
    description.key
    for description in (*GATE_SENSORS, *NUMBERS, GATE_MODE, BATTERY_POLICY, INFERENCE_ALLOWED)
)


def saved_file(key: str, data: dict[str, Any], version: int = 1) -> dict[str, Any]:
    """A Home Assistant Store file as `hass_storage` holds it on disk (for a start to find)."""
    return {"version": version, "minor_version": 1, "key": key, "data": data}


async def wait_until(predicate: Callable[[], Any], within: float = 5.0) -> None:
    """Let the event loop run until `predicate()` is true (event-stream work).

    Polling is the point: the state it waits for is made by Home Assistant's own
    background tasks, which offer nothing to wait on.
    """
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def form_defaults(result: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults a flow's form offers, by field."""
    return {
        str(key): key.default() for key in result["data_schema"].schema if callable(key.default)
    }


def zeroconf_info(port: int, properties: dict[str, Any] | None = None) -> ZeroconfServiceInfo:
    """An mDNS announcement of the agent, as Home Assistant's zeroconf hands it over."""
    address = ip_address("127.0.0.1")
    return ZeroconfServiceInfo(
        ip_address=address,
        ip_addresses=[address],
        port=port,
        hostname="orin-rooftop.local.",
        type="_joulegate._tcp.local.",
        name="orin-rooftop._joulegate._tcp.local.",
        properties={"device_id": DEVICE_ID, "api_version": "1"}
        if properties is None
        else properties,
    )
