"""The whole system with real processes: agent, simulated LLM, Home Assistant, on 127.0.0.1.

The integration is added through Home Assistant's config-flow REST API, its solar gate set up
through the options-flow REST API with the demo house's template sensors, and the gate is then
driven by what those sensors read: no surplus -> the agent's proxy refuses with 503; surplus ->
the request goes through, and the inference counter and energy sensors rise.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from demo.ha_client import JOULEGATE, HomeAssistantClient
from demo.ha_config import ENERGY_METERS
from tests.e2e.conftest import HouseFeeder, Stack, wait_for

pytestmark = pytest.mark.timeout(420)

try:
    from custom_components.joulegate.const import GATE_CYCLE

    CYCLE_S = GATE_CYCLE.total_seconds()
except ImportError:  # an integration without the gate: the gate test skips anyway
    CYCLE_S = 10.0

# How long the gate may take to close once the house shows no surplus: the controller closes at
# the first cycle that reads too little surplus, and pushes the decision to the agent at once.
CLOSE_WITHIN_S = CYCLE_S + 5.0
# Opening waits for a minute's worth of banked surplus (measured in Wh at the rig's need) on top.
OPEN_WITHIN_S = 240.0


def _number(stack: Stack, entity_id: str) -> float:
    state = stack.ha_state(entity_id)
    assert state is not None, f"{entity_id} does not exist"
    value = state["state"]
    assert value not in ("unavailable", "unknown"), f"{entity_id} is {value}"
    return float(value)


def test_config_flow_refuses_a_wrong_token(stack: Stack) -> None:
    async def flow(ha: HomeAssistantClient) -> dict[str, Any]:
        first = await ha.post("/api/config/config_entries/flow", {"handler": JOULEGATE})
        port = int(stack.agent_url.rsplit(":", 1)[1])
        answer = await ha.post(
            f"/api/config/config_entries/flow/{first['flow_id']}",
            {"host": "127.0.0.1", "port": port, "token": "not-the-token"},
        )
        await ha.request("DELETE", f"/api/config/config_entries/flow/{first['flow_id']}")
        return dict(answer)

    answer = stack.ha(flow)
    assert answer["type"] == "form"
    assert answer["errors"] == {"token": "invalid_auth"}


def test_config_flow_adds_the_agent(stack: Stack, entry: dict[str, Any]) -> None:
    info = stack.agent_get("/api/v1/info")
    assert entry["flow"]["title"] == info["hostname"]
    assert entry["entry"]["state"] == "loaded"
    assert entry["entry"]["domain"] == JOULEGATE

    entities = stack.entities
    for key in ("board_power", "energy", "inferences", "inference_energy", "gate"):
        assert key in entities, f"no {key} entity: {sorted(entities)}"

    board = stack.ha_state(entities["board_power"])
    assert board is not None
    assert board["attributes"]["unit_of_measurement"] == "W"
    assert board["attributes"]["device_class"] == "power"
    assert 3.0 < float(board["state"]) < 15.0  # the simulated Orin Nano idles at ~4.5 W

    energy = stack.ha_state(entities["energy"])
    assert energy is not None
    assert energy["attributes"]["state_class"] == "total_increasing"
    assert float(energy["state"]) >= 0.0
    assert _number(stack, entities["inferences"]) >= 0

    # The websocket API sees the same device the agent describes.
    devices = stack.ha(lambda ha: ha.ws({"type": "config/device_registry/list"}))
    ours = [d for d in devices if stack.entry_id in d.get("config_entries", [])]
    assert len(ours) == 1
    assert [JOULEGATE, info["device_id"]] in ours[0]["identifiers"]
    assert ours[0]["model"] == info["board"]["model"]


def _agent_gate(stack: Stack) -> dict[str, Any]:
    return stack.agent_get("/api/v1/gate")


def test_gate_follows_the_surplus(stack: Stack, house: HouseFeeder, gate: dict[str, str]) -> None:
    gate_sensor, reason_sensor = gate["gate"], gate["gate_reason"]

    # 1. The house imports from the grid: no surplus. Home Assistant leases the gate closed.
    house.set(grid_w=500.0, battery_w=0.0, battery_soc=60.0)
    wait_for(
        lambda: (g := _agent_gate(stack))["source"] == "lease" and not g["open"],
        timeout=CLOSE_WITHIN_S + CYCLE_S,
        what="Home Assistant to lease the agent's gate closed",
    )
    status, headers, body = stack.proxy_chat()
    assert status == 503, body
    assert body["error"] == "gate_closed"
    assert int(headers["Retry-After"]) >= 1
    assert stack.ha_state(gate_sensor)["state"] == "off"  # type: ignore[index]
    reason = stack.ha_state(reason_sensor)["state"]  # type: ignore[index]
    assert reason not in ("input_unavailable", "unavailable", "unknown"), reason

    inferences = _number(stack, gate["inferences"])
    inference_wh = _number(stack, gate["inference_energy"])
    board_kwh = _number(stack, gate["energy"])

    # 2. The battery is full and the house exports 3 kW: the gate opens once a minute's worth of
    # surplus is banked. A deferrable request waits in the agent's queue for it, then runs.
    house.set(grid_w=-3000.0, battery_w=0.0, battery_soc=100.0)
    started = time.monotonic()
    status, _, body = stack.proxy_chat(defer_s=OPEN_WITHIN_S, timeout=OPEN_WITHIN_S + 30)
    waited = time.monotonic() - started
    assert status == 200, body
    assert body["choices"][0]["message"]["content"]
    assert _agent_gate(stack)["open"]
    status, _, body = stack.proxy_chat("And now?")
    assert status == 200, body
    print(f"gate opened after {waited:.0f} s of surplus")

    wait_for(
        lambda: _number(stack, gate["inferences"]) >= inferences + 2,
        timeout=30,
        what="the inference counter to count both requests",
    )
    wait_for(
        lambda: _number(stack, gate["inference_energy"]) > inference_wh,
        timeout=30,
        what="the inference energy to rise",
    )
    wait_for(
        lambda: _number(stack, gate["energy"]) > board_kwh,
        timeout=30,
        what="the board energy to rise",
    )
    assert stack.ha_state(gate_sensor)["state"] == "on"  # type: ignore[index]
    assert _number(stack, gate["energy_per_inference"]) > 0
    assert _number(stack, gate["energy_per_token"]) > 0

    # 3. A cloud: the house imports again. The gate closes within the controller's delay.
    house.set(grid_w=800.0, battery_w=0.0, battery_soc=100.0)
    started = time.monotonic()
    wait_for(
        lambda: not _agent_gate(stack)["open"],
        timeout=CLOSE_WITHIN_S,
        what=f"the gate to close within {CLOSE_WITHIN_S:.0f} s of the surplus going",
        interval=0.5,
    )
    closed_after = time.monotonic() - started
    status, _, body = stack.proxy_chat()
    assert status == 503, body
    print(f"gate closed {closed_after:.1f} s after the surplus went")


def test_the_energy_dashboard_has_the_house_and_the_rig(
    stack: Stack, house: HouseFeeder, energy: dict[str, Any]
) -> None:
    """/energy has grid, solar and battery, and the rig (and its inference) as devices; the
    house's meters count; validation finds nothing wrong with the rig. Statistics are compiled
    every five minutes, so before the first compile the only finding allowed is that there are
    none yet (tests/integration/test_demo_energy.py validates with compiled statistics)."""
    prefs = stack.ha(lambda ha: ha.ws({"type": "energy/get_prefs"}))
    assert sorted(source["type"] for source in prefs["energy_sources"]) == [
        "battery",
        "grid",
        "solar",
    ]
    devices = [device["stat_consumption"] for device in prefs["device_consumption"]]
    assert devices == [stack.entities["energy"], stack.entities["inference_energy"]]

    house.set(grid_w=800.0, battery_w=300.0, battery_soc=50.0, pv_w=1200.0, house_w=2000.0)
    for meter in ENERGY_METERS:
        wait_for(
            lambda meter=meter: _number_or_none(stack, meter.entity_id) is not None,
            timeout=60,
            what=f"{meter.entity_id} to count",
        )

    validation = stack.ha(lambda ha: ha.ws({"type": "energy/validate"}))
    rig = [issue for issues in validation["device_consumption"] for issue in issues]
    assert all(issue["type"] == "statistics_not_defined" for issue in rig), rig


def _number_or_none(stack: Stack, entity_id: str) -> float | None:
    state = stack.ha_state(entity_id)
    if state is None or state["state"] in ("unavailable", "unknown"):
        return None
    return float(state["state"])
