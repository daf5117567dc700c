"""A Home Assistant killed after it counted inference energy: the long-term statistics still add up.

Its own processes (the session's Home Assistant is not killed): the simulated LLM, the agent
and a real `hass` with a file database. Inferences run through the agent's proxy, Home Assistant
counts them, then it is SIGKILLed (no stop, no final write), more inferences finish while it is
down, it starts again, and after the recorder's next 5-minute statistics compile the statistics'
sum must be the ledger's: a total that came back lower would have been counted again as a new
meter cycle (or as a falling sum). Takes up to about eight minutes: the compile runs every five.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from demo import gate_setup
from demo.ha_client import JOULEGATE, HomeAssistantClient
from demo.ha_config import write_config
from demo.procs import (
    Service,
    agent_service,
    free_port,
    hass_service,
    llm_service,
    stop_all,
    wait_http,
)
from demo.stack import (
    ensure_owner,
    joulegate_entities,
    wait_entry_loaded,
    wait_for_home_assistant,
    wait_running,
)
from demo.sunny_day import Site

from .conftest import HASS_START_TIMEOUT, HouseFeeder, Stack, wait_for

# The recorder compiles the 5-minute statistics 10 s after each five minutes (UTC).
COMPILE_EVERY = timedelta(minutes=5)
COMPILE_AFTER = timedelta(seconds=10)


def _start_hass(config: Path, logs: Path, ha_url: str, root: Path) -> tuple[Service, str]:
    hass = hass_service(config, logs).start()

    async def ready(ha: HomeAssistantClient) -> str:
        await wait_for_home_assistant(ha_url, hass, timeout=HASS_START_TIMEOUT)
        creds = await ensure_owner(ha, root / "credentials.json", token_name="crash")
        await wait_running(ha, timeout=HASS_START_TIMEOUT)
        assert creds.token
        return creds.token

    stack = Stack(root, "", "", ha_url, "", "", "")
    return hass, stack.ha(ready)


def _ledger_above_idle_wh(stack: Stack) -> float:
    """The energy above idle of every row that ran, as the gate counts it (Wh)."""
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = stack.agent_get(f"/api/v1/inferences?after={after}&limit=500")
        rows += page["items"]
        if not page["has_more"] or not page["items"]:
            break
        after = page["cursor"]
    ran = [row for row in rows if row["outcome"] != "refused"]
    joules = [row["energy_j"] if row["marginal_j"] is None else row["marginal_j"] for row in ran]
    return sum(max(0.0, j) for j in joules) / 3600


def _state(stack: Stack, entity_id: str) -> float | None:
    state = stack.ha_state(entity_id)
    try:
        return float(state["state"]) if state else None
    except ValueError:
        return None


def _history(stack: Stack, entity_id: str, since: datetime) -> list[float]:
    """Every numeric state the recorder kept for the sensor since `since`, in order."""
    query = urlencode(
        {
            "filter_entity_id": entity_id,
            "minimal_response": "",
            "no_attributes": "",
            "end_time": datetime.now(UTC).isoformat(),
        }
    )
    result = stack.ha(lambda ha: ha.get(f"/api/history/period/{quote(since.isoformat())}?{query}"))
    values: list[float] = []
    for state in result[0] if result else []:
        try:
            values.append(float(state["state"]))
        except ValueError:
            continue
    return values


def _next_compile(after: datetime) -> datetime:
    """When the statistics of the 5-minute period that holds `after` are compiled."""
    seconds = COMPILE_EVERY.total_seconds()
    end = datetime.fromtimestamp((after.timestamp() // seconds + 1) * seconds, UTC)
    return end + COMPILE_AFTER


@pytest.mark.timeout(900)
def test_a_killed_home_assistant_counts_each_row_once_in_the_statistics(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("crash")
    logs = root / "logs"
    services: list[Service] = []
    feeder: HouseFeeder | None = None
    try:
        llm_port, agent_port, ha_port = free_port(), free_port(), free_port()
        # 16 tokens at 8 tokens/s: two seconds a request, so each row's energy above idle stands
        # well clear of the simulated board's noise (at 200 tokens/s a request took 0.08 s, and
        # the two rows run while Home Assistant was down could carry none at all).
        services.append(llm_service(llm_port, logs, tokens_per_s=8.0).start())
        services.append(agent_service(agent_port, root / "agent", llm_port, logs).start())
        wait_http(f"http://127.0.0.1:{llm_port}/health", timeout=60, service=services[0])
        agent_url = f"http://127.0.0.1:{agent_port}"
        wait_http(f"{agent_url}/api/v1/health", timeout=60, service=services[1])
        agent_token = (root / "agent" / "token").read_text().strip()

        config = root / "homeassistant"
        write_config(config, port=ha_port, site=Site(), log_level="info")
        ha_url = f"http://127.0.0.1:{ha_port}"
        hass, token = _start_hass(config, logs, ha_url, root)
        services.append(hass)
        stack = Stack(root, agent_url, agent_token, ha_url, token, "", "")
        feeder = HouseFeeder(stack).start()
        feeder.set(grid_w=-500.0, battery_w=0.0, battery_soc=100.0)

        # The agent, and the solar gate on the simulated house's sensors.
        host, port = "127.0.0.1", agent_port
        created = stack.ha(
            lambda ha: ha.config_flow(JOULEGATE, {"host": host, "port": port, "token": agent_token})
        )
        assert created["type"] == "create_entry", created
        entry_id = created["result"]["entry_id"]
        stack.ha(lambda ha: wait_entry_loaded(ha, entry_id))
        options = stack.ha(
            lambda ha: ha.options_flow(entry_id, *gate_setup.gate_answers(stale_after_s=60))
        )
        assert options["type"] == "create_entry", options
        stack.ha(lambda ha: wait_entry_loaded(ha, entry_id))
        entities = wait_for(
            lambda: (
                (e := stack.ha(lambda ha: joulegate_entities(ha, entry_id)))
                and "inference_energy_above_idle" in e
                and e
            ),
            timeout=60,
            what="the gate's entities",
        )
        above_idle = entities["inference_energy_above_idle"]
        started = datetime.now(UTC)

        # Allowed by hand: every request runs, and each is a ledger row with energy.
        stack.ha(
            lambda ha: ha.post(
                "/api/services/joulegate/allow_inference",
                {"config_entry_id": entry_id, "duration": "01:00:00"},
            )
        )
        for _ in range(4):
            status, _, body = stack.proxy_chat()
            assert status == 200, body
        counted = wait_for(
            lambda: (
                (v := _state(stack, above_idle)) is not None
                and v > 0
                and v == pytest.approx(_ledger_above_idle_wh(stack), rel=1e-6)
                and v
            ),
            timeout=60,
            what="Home Assistant to count the rows",
        )
        time.sleep(3)  # the recorder commits every 2 s: the counted state is in the database

        # SIGKILL: no stop event, no final write of delayed saves.
        assert hass.pid is not None
        os.killpg(hass.pid, signal.SIGKILL)
        assert hass.proc is not None
        hass.proc.wait(30)
        services.remove(hass)
        # Rows finish while Home Assistant is down (the agent's lease still holds the gate open).
        for _ in range(2):
            status, _, body = stack.proxy_chat()
            assert status == 200, body

        hass, _ = _start_hass(config, logs, ha_url, root)
        services.append(hass)
        restarted = datetime.now(UTC)
        stack.ha(lambda ha: wait_entry_loaded(ha, entry_id))
        ledger_wh = _ledger_above_idle_wh(stack)
        final = wait_for(
            lambda: (
                (v := _state(stack, above_idle)) is not None
                and v == pytest.approx(ledger_wh, rel=1e-6)
                and v
            ),
            timeout=90,
            what="Home Assistant to count the rows that finished while it was down",
        )
        assert final > counted
        history = _history(stack, above_idle, started)
        assert history == sorted(history), f"the total went down across the crash: {history}"

        # The statistics after the recorder's next compile: sum and state are the ledger's.
        compile_at = _next_compile(restarted)
        print(f"waiting for the statistics compile at {compile_at:%H:%M:%S} UTC", flush=True)

        def compiled() -> dict[str, Any] | None:
            result = stack.ha(
                lambda ha: ha.ws(
                    {
                        "type": "recorder/statistics_during_period",
                        "start_time": (started - COMPILE_EVERY).isoformat(),
                        "statistic_ids": [above_idle],
                        "period": "5minute",
                        "types": ["sum", "state"],
                    }
                )
            )
            rows = result.get(above_idle) or []
            last = rows[-1] if rows else None
            ends_after_restart = last and last["end"] / 1000 > restarted.timestamp()
            return last if ends_after_restart else None

        time.sleep(max(0.0, (compile_at - datetime.now(UTC)).total_seconds()))
        stats = wait_for(compiled, timeout=120, what="the 5-minute statistics compile")
        print(f"ledger {ledger_wh:.6f} Wh, statistics {json.dumps(stats)}", flush=True)
        assert stats["state"] == pytest.approx(ledger_wh, rel=1e-6)
        assert stats["sum"] == pytest.approx(ledger_wh, rel=1e-6)
    finally:
        if feeder is not None:
            feeder.stop()
        stop_all(list(reversed(services)), timeout=30.0)
