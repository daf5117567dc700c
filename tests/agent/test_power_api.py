"""GET|PUT /api/v1/power on an agent with the simulated board, and the level on ledger rows."""

from __future__ import annotations

import asyncio
import gc
import warnings
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from joulegate_agent.agent import Agent
from joulegate_agent.api.app import build_app
from joulegate_agent.config import AgentConfig, ConfigError
from joulegate_agent.power.costs import CostTables, cost_table
from joulegate_agent.power.simulated import MODE_FILE
from joulegate_agent.simulation.board import MODES
from joulegate_agent.storage.ledger import InferenceRow
from tests.agent.fakes import sysfs_trees as trees
from tests.agent.fakes.sysfs_trees import ORIN_NANO_GPU_HZ
from tests.agent.helpers import ClientFactory, auth
from tests.agent.test_power import GPU_MAX

SIMULATED_LEVELS = ["7W", "15W", "25W", "MAXN_SUPER"]


@pytest.fixture
def agent_config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        host="127.0.0.1",
        data_dir=tmp_path / "data",
        source="simulated",
        zeroconf=False,
        power_dwell_s=0.0,
    )


async def put(api: TestClient[Any, Any], agent: Agent, body: object) -> tuple[int, Any]:
    response = await api.put("/api/v1/power", json=body, headers=auth(agent))
    return response.status, await response.json()


async def test_the_simulated_board_offers_four_levels_none_measured_yet(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    response = await api.get("/api/v1/power", headers=auth(agent))
    body = await response.json()
    assert [level["name"] for level in body["levels"]] == SIMULATED_LEVELS
    assert (body["current"], body["source"]) == (None, "original")
    assert (body["default"], body["dwell_s"]) == (None, 0.0)
    assert [(row["level"], row["measured"], row["inferences"]) for row in body["table"]] == [
        (name, False, 0) for name in SIMULATED_LEVELS
    ]


async def test_info_summarises_the_levels(api: TestClient[Any, Any], agent: Agent) -> None:
    info = await (await api.get("/api/v1/info", headers=auth(agent))).json()
    assert "power_levels" in info["features"]
    assert info["power_levels"] == {
        "levels": SIMULATED_LEVELS,
        "current": None,
        "default": None,
        "settable": True,
    }


async def test_a_put_sets_the_level_the_board_draws_and_the_llm_decodes_at(
    api: TestClient[Any, Any], agent: Agent, tmp_path: Path
) -> None:
    status, body = await put(api, agent, {"level": "7W", "lease_s": 60, "reason": "cloudy"})
    assert status == 200
    assert (body["current"], body["source"], body["reason"]) == ("7W", "lease", "cloudy")
    assert 59 < body["lease_remaining_s"] <= 60
    assert (tmp_path / "data" / MODE_FILE).read_text().strip() == "7W"
    assert agent.source.mode is MODES[0]  # type: ignore[attr-defined]


async def test_a_level_may_be_named_by_its_index(api: TestClient[Any, Any], agent: Agent) -> None:
    status, body = await put(api, agent, {"level": 3, "lease_s": 60})
    assert (status, body["current"]) == (200, "MAXN_SUPER")


async def test_the_lease_runs_out_to_the_box_s_own_settings(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    await put(api, agent, {"level": "15W", "lease_s": 1})
    await asyncio.sleep(1.2)
    body = await (await api.get("/api/v1/power", headers=auth(agent))).json()
    assert (body["current"], body["source"]) == (None, "original")
    assert agent.source.mode.name == "25W"  # type: ignore[attr-defined]


async def test_a_change_within_the_dwell_time_is_a_409_with_the_wait(
    agent_config: AgentConfig, aiohttp_client: ClientFactory
) -> None:
    running = Agent(replace(agent_config, power_dwell_s=300.0))
    await running.start()
    try:
        api = await aiohttp_client(build_app(running))
        assert (await put(api, running, {"level": "15W", "lease_s": 60}))[0] == 200
        response = await api.put(
            "/api/v1/power", json={"level": "7W", "lease_s": 60}, headers=auth(running)
        )
        body = await response.json()
        assert response.status == 409
        assert body["error"] == "dwell"
        assert 299 < body["retry_after_s"] <= 300
        assert response.headers["Retry-After"] == "300"
        assert running.power.current_name == "15W"
        assert (await put(api, running, {"level": "15W", "lease_s": 60}))[0] == 200  # renewal
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({}, "invalid_body", "level must be a level's name"),
        ({"level": True}, "invalid_body", "level must be a level's name"),
        ({"level": "7W", "lease_s": 0}, "invalid_body", "lease_s must be a number from 1"),
        ({"level": "7W", "lease_s": "60"}, "invalid_body", "lease_s must be a number"),
        ({"level": "7W", "reason": 5}, "invalid_body", "reason must be a string"),
        ({"level": "7W", "leas_s": 5}, "invalid_body", "Unknown field(s): leas_s"),
        ([1], "invalid_body", "must be a JSON object"),
    ],
)
async def test_bad_input_is_a_clear_400_and_changes_nothing(
    api: TestClient[Any, Any], agent: Agent, body: object, code: str, message: str
) -> None:
    status, answer = await put(api, agent, body)
    assert status == 400
    assert answer["error"] == code
    assert message in answer["message"]
    assert agent.power.current_name is None


async def test_a_level_this_box_does_not_have_is_a_404_naming_the_levels(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    status, answer = await put(api, agent, {"level": "99W"})
    assert (status, answer["error"]) == (404, "unknown_level")
    assert "no power level '99W'; the levels are: 7W, 15W, 25W, MAXN_SUPER" in answer["message"]
    status, answer = await put(api, agent, {"level": 4})
    assert (status, answer["error"]) == (404, "unknown_level")


async def test_a_level_index_may_be_sent_as_a_whole_float(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    status, body = await put(api, agent, {"level": 1.0})
    assert (status, body["current"]) == (200, "15W")


async def test_a_body_that_is_not_json_is_a_400(api: TestClient[Any, Any], agent: Agent) -> None:
    response = await api.put("/api/v1/power", data=b"{level", headers=auth(agent))
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_json"


async def test_the_power_api_needs_the_token(api: TestClient[Any, Any]) -> None:
    assert (await api.get("/api/v1/power")).status == 401
    assert (await api.put("/api/v1/power", json={"level": "7W"})).status == 401


async def test_a_read_only_agent_answers_403(
    agent_config: AgentConfig, aiohttp_client: ClientFactory
) -> None:
    running = Agent(replace(agent_config, power_read_only=True))
    await running.start()
    try:
        api = await aiohttp_client(build_app(running))
        status, body = await put(api, running, {"level": "7W"})
        assert (status, body["error"]) == (403, "read_only")
    finally:
        await running.stop()


async def test_the_default_level_applies_at_start_and_shutdown_restores_the_board(
    agent_config: AgentConfig,
) -> None:
    running = Agent(replace(agent_config, power_default_level="15W"))
    await running.start()
    assert running.power.current_name == "15W"
    assert running.source.mode.name == "15W"  # type: ignore[attr-defined]
    await running.stop()
    assert running.source.mode.name == "25W"  # type: ignore[attr-defined]
    assert (agent_config.data_dir / MODE_FILE).read_text().strip() == "25W"
    assert not (agent_config.data_dir / "power-restore.json").exists()


def test_an_unknown_default_level_is_a_config_error(agent_config: AgentConfig) -> None:
    with pytest.raises(ConfigError, match=r"power\.default_level: no power level 'turbo'"):
        Agent(replace(agent_config, power_default_level="turbo"))


def test_an_agent_refused_for_its_config_leaves_no_ledger_open(agent_config: AgentConfig) -> None:
    gc.collect()  # earlier tests' garbage warns on its own collection, not this agent's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ConfigError):
            Agent(replace(agent_config, power_default_level="turbo"))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


async def test_each_row_records_the_level_its_window_ran_at(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    await put(api, agent, {"level": "MAXN_SUPER", "lease_s": 60})
    opened = await (await api.post("/api/v1/windows", json={}, headers=auth(agent))).json()
    row = await (
        await api.post(
            f"/api/v1/windows/{opened['window_id']}/end",
            json={"output_tokens": 10},
            headers=auth(agent),
        )
    ).json()
    assert row["power_level"] == "MAXN_SUPER"


async def test_a_window_during_which_the_level_changed_records_no_level(
    api: TestClient[Any, Any], agent: Agent
) -> None:
    await put(api, agent, {"level": "7W", "lease_s": 60})
    opened = await (await api.post("/api/v1/windows", json={}, headers=auth(agent))).json()
    await put(api, agent, {"level": "25W", "lease_s": 60})
    row = await (
        await api.post(f"/api/v1/windows/{opened['window_id']}/end", headers=auth(agent))
    ).json()
    assert row["power_level"] is None


def _row(  # noqa: PLR0917 - one row of a table of rows
    n: int,
    level: str | None,
    model: str,
    tokens: int,
    seconds: float,
    joules: float,
    marginal: float | None,
    idle: float | None,
    outcome: str = "ok",
) -> InferenceRow:
    start = datetime(2026, 6, 1, 12, n, 0, tzinfo=timezone.utc)  # a minute apart: no overlap
    return _at(n, level, model, tokens, joules, marginal, idle, outcome, start, seconds)


def _at(  # noqa: PLR0917 - one row of a table of rows
    n: int,
    level: str | None,
    model: str,
    tokens: int,
    joules: float,
    marginal: float | None,
    idle: float | None,
    outcome: str,
    start: datetime,
    seconds: float,
) -> InferenceRow:
    return InferenceRow(
        window_id=f"w{n}",
        started_at=start,
        ended_at=start + timedelta(seconds=seconds),
        duration_s=seconds,
        energy_j=joules,
        marginal_j=marginal,
        idle_w=idle,
        output_tokens=tokens,
        model=model,
        outcome=outcome,  # type: ignore[arg-type]
        gate_open=True,
        boundary="test",
        power_level=level,
    )


async def test_the_cost_table_learns_each_level_per_model_from_the_ledger(agent: Agent) -> None:
    agent.inference.ledger.record_many(
        [
            _row(1, "7W", "a", 100, 10.0, 60.0, 20.0, 4.0),
            _row(2, "7W", "a", 100, 10.0, 60.0, 22.0, 3.8),
            _row(3, "7W", "b", 50, 5.0, 40.0, 10.0, 4.0),
            _row(8, "7W", "b", 50, 5.0, 40.0, None, None),
            _row(4, "MAXN_SUPER", "a", 300, 10.0, 130.0, 82.0, 4.8),
            _row(5, "15W", "a", 100, 5.0, 40.0, 20.0, 4.2, outcome="error"),
            _row(6, None, "a", 100, 5.0, 40.0, 20.0, 4.2),
            _row(7, "15W", "a", 0, 5.0, 40.0, 20.0, 4.2),
        ]
    )
    table = {entry["level"]: entry for entry in cost_table(agent.store, SIMULATED_LEVELS)}
    assert (table["7W"]["measured"], table["7W"]["inferences"]) == (True, 4)
    model_a = table["7W"]["models"][0]
    assert model_a == {
        "model": "a",
        "inferences": 2,
        "output_tokens": 200,
        "tokens_per_s": 10.0,
        "j_per_token": 0.6,
        "marginal_inferences": 2,
        "avg_w_above_idle": 2.1,
        "marginal_j_per_token": 0.21,
        "idle_w": 3.9,
    }
    assert table["MAXN_SUPER"]["models"][0]["tokens_per_s"] == 30.0
    model_b = table["7W"]["models"][1]  # one row without an idle baseline yet
    assert (model_b["inferences"], model_b["marginal_inferences"]) == (2, 1)
    assert model_b["avg_w_above_idle"] == 2.0
    assert model_b["marginal_j_per_token"] == 0.2
    assert table["15W"] == {"level": "15W", "measured": False, "inferences": 0, "models": []}
    assert table["25W"]["measured"] is False


async def test_requests_queued_together_do_not_divide_a_levels_power_and_speed(
    agent: Agent,
) -> None:
    # Five requests sent at once to a one-slot server run one after another: their windows
    # overlap while they wait, and the 2.1 W and 11 tokens/s the box runs at are spread over
    # five windows' time. The box's figures count the time inference ran, not the sum of waits.
    start = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    agent.inference.ledger.record_many(
        [_at(n, "7W", "a", 110, 49.0, 21.0, 3.9, "ok", start, 10.0 * (n + 1)) for n in range(5)]
    )
    (level,) = [e for e in cost_table(agent.store, SIMULATED_LEVELS) if e["level"] == "7W"]
    (model,) = level["models"]
    assert model["avg_w_above_idle"] == 2.1
    assert model["tokens_per_s"] == 11.0
    assert model["marginal_j_per_token"] == round(21.0 / 110, 4)


def test_the_cost_table_is_read_from_the_ledger_at_most_once_a_minute(agent: Agent) -> None:
    # Home Assistant leases a level every 10 s and each answer carries the table: reading a
    # year of rows each time would hold the ledger's lock for seconds on a Jetson.
    start = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    now = [1000.0]
    tables = CostTables(agent.store, clock=lambda: now[0])
    agent.inference.ledger.record_many([_at(1, "7W", "a", 110, 49.0, 21.0, 3.9, "ok", start, 10.0)])
    assert _inferences(tables.read(SIMULATED_LEVELS), "7W") == 1
    later = start + timedelta(minutes=5)
    agent.inference.ledger.record_many([_at(2, "7W", "a", 110, 49.0, 21.0, 3.9, "ok", later, 10.0)])
    now[0] += 59.0
    assert _inferences(tables.read(SIMULATED_LEVELS), "7W") == 1
    now[0] += 1.0
    assert _inferences(tables.read(SIMULATED_LEVELS), "7W") == 2


def _inferences(table: list[dict[str, Any]], level: str) -> int:
    (entry,) = [e for e in table if e["level"] == level]
    return int(entry["inferences"])


def test_windows_from_two_boots_with_the_same_wall_times_are_not_merged(agent: Agent) -> None:
    # A Jetson without an RTC battery boots offline at its image's date: two boots' rows carry
    # the same wall times, but the ledger's retention clock carried on from the first boot.
    start = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    rows = [
        replace(
            _at(n, "7W", "a", 110, 49.0, 21.0, 3.9, "ok", start, 10.0),
            clock_synced=False,
            retention_ts=start.timestamp() + 10.0 + 3600.0 * n,
        )
        for n in range(2)
    ]
    agent.inference.ledger.record_many(rows)
    (level,) = [e for e in cost_table(agent.store, SIMULATED_LEVELS) if e["level"] == "7W"]
    assert level["models"][0]["avg_w_above_idle"] == 2.1


def jetson_config(tmp_path: Path) -> AgentConfig:
    trees.orin_nano_super(tmp_path / "root")
    return AgentConfig(
        host="127.0.0.1",
        data_dir=tmp_path / "data",
        root=tmp_path / "root",
        zeroconf=False,
        power_dwell_s=0.0,
    )


def gpu_cap(tmp_path: Path) -> int:
    return int((tmp_path / "root" / GPU_MAX).read_text())


@pytest.mark.usefixtures("no_pynvml")
async def test_stopping_the_agent_gives_a_jetson_back_its_own_clocks(tmp_path: Path) -> None:
    running = Agent(jetson_config(tmp_path))
    await running.start()
    running.power.set(running.power.level("L1"), lease_s=60)
    assert gpu_cap(tmp_path) == ORIN_NANO_GPU_HZ[0]
    await running.stop()
    assert gpu_cap(tmp_path) == ORIN_NANO_GPU_HZ[-1]


@pytest.mark.usefixtures("no_pynvml")
async def test_an_agent_restarted_after_a_crash_restores_the_clocks_first(tmp_path: Path) -> None:
    config = jetson_config(tmp_path)
    crashed = Agent(config)
    await crashed.start()
    crashed.power.set(crashed.power.level("L2"), lease_s=3600)
    crashed.sampler.stop()  # the process dies here: no stop(), no restore
    crashed.store.close()
    assert gpu_cap(tmp_path) == ORIN_NANO_GPU_HZ[1]
    restarted = Agent(config)
    await restarted.start()
    try:
        assert gpu_cap(tmp_path) == ORIN_NANO_GPU_HZ[-1]
        assert restarted.power.current_name is None
    finally:
        await restarted.stop()


@pytest.mark.usefixtures("no_pynvml")
async def test_a_box_without_clock_knobs_steps_the_inferences_let_through_at_once(
    tmp_path: Path,
) -> None:
    trees.generic_hwmon(tmp_path / "root")
    config = replace(jetson_config(tmp_path / "unused"), root=tmp_path / "root")
    running = Agent(config)
    await running.start()
    try:
        assert [level.name for level in running.power.levels] == ["L1", "L2", "L3", "L4"]
        running.power.set(running.power.level("L1"), lease_s=60)
        assert running.inference.limit.limit == 1
        running.power.set(running.power.level("L4"), lease_s=60)
        assert running.inference.limit.limit is None
    finally:
        await running.stop()
    assert running.inference.limit.limit is None


async def test_status_names_the_level_in_force(api: TestClient[Any, Any], agent: Agent) -> None:
    before = await (await api.get("/api/v1/status", headers=auth(agent))).json()
    await put(api, agent, {"level": "15W", "lease_s": 60})
    after = await (await api.get("/api/v1/status", headers=auth(agent))).json()
    assert (before["power_level"], after["power_level"]) == (None, "15W")


async def test_each_level_change_is_an_event(api: TestClient[Any, Any], agent: Agent) -> None:
    subscription = agent.inference.events.subscribe()
    try:
        await put(api, agent, {"level": "7W", "lease_s": 60})
        await put(api, agent, {"level": "7W", "lease_s": 60})  # a renewal changes nothing
        event = await subscription.get(timeout=1.0)
        assert event == ("power", {**agent.power.summary(), "current": "7W"})
        with pytest.raises(asyncio.TimeoutError):
            await subscription.get(timeout=0.2)
    finally:
        subscription.close()
