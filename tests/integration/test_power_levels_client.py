"""The client reads and sets the real agent's power levels (simulated board) on 127.0.0.1."""

from __future__ import annotations

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from custom_components.joulegate.client import JoulegateClient
from custom_components.joulegate.exceptions import JoulegateResponseError

from .real_agent import RealAgent


def client_for(hass: HomeAssistant, agent: RealAgent) -> JoulegateClient:
    return JoulegateClient(
        host="127.0.0.1", port=agent.port, token=agent.token, session=async_get_clientsession(hass)
    )


async def test_the_client_reads_the_agents_levels_and_what_each_costs(
    hass: HomeAssistant, real_agent: RealAgent
) -> None:
    client = client_for(hass, real_agent)
    power = await client.get_power()
    names = [level.name for level in power.levels]
    assert names == ["7W", "15W", "25W", "MAXN_SUPER"]
    assert [cost.level for cost in power.table] == names
    assert not any(cost.measured for cost in power.table)
    assert power.settable


async def test_the_client_sets_a_level_under_a_lease_and_hears_the_dwell(
    hass: HomeAssistant, real_agent: RealAgent
) -> None:
    client = client_for(hass, real_agent)
    power = await client.set_power(level="15W", lease_s=30, reason="surplus")
    assert (power.current, power.source) == ("15W", "lease")
    with pytest.raises(JoulegateResponseError) as refused:
        await client.set_power(level="MAXN_SUPER", lease_s=30, reason="surplus")
    assert (refused.value.status, refused.value.code) == (409, "dwell")
