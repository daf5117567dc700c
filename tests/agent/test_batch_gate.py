"""A lease may admit batch work only: interactive traffic still waits for the sun."""

from __future__ import annotations

from pathlib import Path

from joulegate_agent.inference.gate import Gate, GateSnapshot
from tests.agent.helpers import auth, proxy_config, running_agent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_lease_admits_batch_work_and_keeps_interactive_traffic_out() -> None:
    gate = Gate(fallback_open=False)
    state = gate.set(open=True, lease_s=60, reason="deadline", scope="batch")
    assert (gate.is_open, gate.admits_batch) == (False, True)
    assert (state.open, state.admits_batch, state.scope) == (False, True, "batch")
    assert state.to_json()["batch_open"] is True


def test_a_lease_of_scope_all_admits_both() -> None:
    gate = Gate(fallback_open=False)
    state = gate.set(open=True, lease_s=60, reason="surplus")
    assert (gate.is_open, gate.admits_batch, state.scope) == (True, True, "all")


def test_a_batch_lease_that_runs_out_returns_to_the_fallback_for_both() -> None:
    clock = Clock()
    gate = Gate(fallback_open=False, clock=clock)
    gate.set(open=True, lease_s=5, scope="batch")
    clock.now = 6.0
    state = gate.state()
    assert (state.open, state.admits_batch, state.scope, state.source) == (
        False,
        False,
        "all",
        "fallback",
    )


def test_changing_only_the_scope_notifies_listeners() -> None:
    gate = Gate(fallback_open=False)
    seen: list[GateSnapshot] = []
    gate.add_listener(seen.append)
    gate.set(open=True, lease_s=60, reason="same", scope="batch")
    gate.set(open=True, lease_s=60, reason="same", scope="all")
    assert [(s.open, s.scope) for s in seen] == [(False, "batch"), (True, "all")]


async def test_put_gate_takes_a_scope_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    async with running_agent(proxy_config(tmp_path, None)) as (agent, http):
        good = await http.put(
            "/api/v1/gate",
            json={"open": True, "lease_s": 60, "reason": "deadline", "scope": "batch"},
            headers=auth(agent),
        )
        bad = await http.put(
            "/api/v1/gate", json={"open": True, "scope": "some"}, headers=auth(agent)
        )
        body = await good.json()
    assert good.status == 200
    assert (body["open"], body["batch_open"], body["scope"], body["reason"]) == (
        False,
        True,
        "batch",
        "deadline",
    )
    assert bad.status == 400
