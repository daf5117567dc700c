"""End-to-end fixtures: the real agent, the simulated LLM and a real Home Assistant, on 127.0.0.1.

They are started once per session, on free ports, in a temporary folder, with the same helpers
that `./scripts/demo` uses (the `demo` package), and stopped at the end of the session; a process
that fails to start fails the tests with the end of its log.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from demo import energy_setup, gate_setup
from demo.ha_client import JOULEGATE, HomeAssistantClient
from demo.ha_config import HOUSE_EVENT, write_config
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

T = TypeVar("T")

HASS_START_TIMEOUT = 240.0
HTTP_TIMEOUT = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: runs headless Chromium (after the other tests)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser test last: it wants the dashboard full of what the other tests made."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@dataclass
class Stack:
    """The running system, and small synchronous helpers to talk to it."""

    root: Path
    agent_url: str
    agent_token: str
    ha_url: str
    ha_token: str
    username: str
    password: str
    services: list[Service] = field(default_factory=list)
    entry_id: str | None = None
    entities: dict[str, str] = field(default_factory=dict)

    def ha(self, call: Callable[[HomeAssistantClient], Awaitable[T]]) -> T:
        """Run one call of the async Home Assistant client (demo/ha_client.py)."""

        async def run() -> T:
            async with aiohttp.ClientSession() as session:
                return await call(HomeAssistantClient(self.ha_url, session, self.ha_token))

        return asyncio.run(run())

    def ha_state(self, entity_id: str) -> dict[str, Any] | None:
        status, body = _http("GET", f"{self.ha_url}/api/states/{entity_id}", token=self.ha_token)
        if status == 404:
            return None
        assert status == 200, (status, body)
        return json.loads(body)

    def agent_get(self, path: str) -> dict[str, Any]:
        status, body = _http("GET", f"{self.agent_url}{path}", token=self.agent_token)
        assert status == 200, (status, body)
        return json.loads(body)

    def proxy_chat(
        self, prompt: str = "Is the sun out?", *, defer_s: float | None = None, timeout: float = 60
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """One OpenAI-style chat completion through the agent's proxy."""
        headers = {"X-Joulegate-Defer-Until": f"{defer_s:.0f}"} if defer_s is not None else {}
        status, body, response_headers = _http_full(
            "POST",
            f"{self.agent_url}/v1/chat/completions",
            token=self.agent_token,
            payload={
                "model": "llama3.2:3b",
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 16,
            },
            headers=headers,
            timeout=timeout,
        )
        return status, response_headers, json.loads(body) if body else {}


def _http_full(
    method: str,
    url: str,
    *,
    token: str | None = None,
    payload: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> tuple[int, bytes, dict[str, str]]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def _http(method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
    status, body, _ = _http_full(method, url, **kwargs)
    return status, body


def wait_for(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 1.0
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


# What the end-to-end tests need besides Home Assistant itself; requirements/test.lock has them.
NEEDED_MODULES = {
    "hass_frontend": "home-assistant-frontend (the frontend integration's requirement)",
    "pvlib": "pvlib",
    "playwright": "playwright",
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = [
        what for name, what in NEEDED_MODULES.items() if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.fail(
            f"{sys.executable} lacks {', '.join(missing)}: run the end-to-end tests in the "
            "project's .venv (./scripts/test sets it up from requirements/test.lock)",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("e2e")
    logs = root / "logs"
    services: list[Service] = []
    try:
        llm_port, agent_port, ha_port = free_port(), free_port(), free_port()
        llm = llm_service(llm_port, logs, tokens_per_s=200.0).start()
        services.append(llm)
        agent = agent_service(agent_port, root / "agent", llm_port, logs).start()
        services.append(agent)
        wait_http(f"http://127.0.0.1:{llm_port}/health", timeout=60, service=llm)
        agent_url = f"http://127.0.0.1:{agent_port}"
        wait_http(f"{agent_url}/api/v1/health", timeout=60, service=agent)
        agent_token = (root / "agent" / "token").read_text().strip()

        config = root / "homeassistant"
        write_config(config, port=ha_port, site=Site(), log_level="info")
        hass = hass_service(config, logs).start()
        services.append(hass)
        ha_url = f"http://127.0.0.1:{ha_port}"

        async def start_ha() -> tuple[str, str, str]:
            async with aiohttp.ClientSession() as session:
                ha = HomeAssistantClient(ha_url, session)
                await wait_for_home_assistant(ha_url, hass, timeout=HASS_START_TIMEOUT)
                creds = await ensure_owner(ha, root / "credentials.json", token_name="e2e")
                await wait_running(ha, timeout=HASS_START_TIMEOUT)
                assert creds.token
                return creds.token, creds.username, creds.password

        token, username, password = asyncio.run(start_ha())
        yield Stack(
            root=root,
            agent_url=agent_url,
            agent_token=agent_token,
            ha_url=ha_url,
            ha_token=token,
            username=username,
            password=password,
            services=services,
        )
    finally:
        stop_all(list(reversed(services)), timeout=30.0)
        leftovers = [s.name for s in services if s.running()]
        assert not leftovers, f"still running after the session: {leftovers}"


class HouseFeeder:
    """Sends the simulated house's readings to Home Assistant every 2 s, as the demo's driver
    does, but with the values a test sets."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._values = house_reading(grid_w=300.0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="house feeder", daemon=True)
        self.sent = 0

    def set(self, **values: float) -> None:
        """Change the readings and send them at once."""
        with self._lock:
            self._values = house_reading(**values)
        self.send()

    def send(self) -> None:
        with self._lock:
            values = dict(self._values)
        status, body = _http(
            "POST",
            f"{self.stack.ha_url}/api/events/{HOUSE_EVENT}",
            token=self.stack.ha_token,
            payload=values,
        )
        assert status == 200, (status, body)
        self.sent += 1

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.send()
            except (AssertionError, OSError):
                continue

    def start(self) -> HouseFeeder:
        self.send()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def house_reading(
    *,
    grid_w: float,
    battery_w: float = 0.0,
    battery_soc: float = 100.0,
    pv_w: float = 0.0,
    house_w: float = 400.0,
) -> dict[str, Any]:
    """One `joulegate_demo_house` event's data (grid + import, battery + discharge)."""
    return {
        "time": "12:00",
        "pv_w": pv_w,
        "house_w": house_w,
        "battery_w": battery_w,
        "battery_soc": battery_soc,
        "grid_w": grid_w,
        "forecast_kwh": 20.0,
        "pv_kwh": 10.0,
        "cloud_pct": 0,
    }


@pytest.fixture(scope="session")
def house(stack: Stack) -> Iterator[HouseFeeder]:
    feeder = HouseFeeder(stack).start()
    yield feeder
    feeder.stop()


@pytest.fixture(scope="session")
def entry(stack: Stack) -> dict[str, Any]:
    """The agent, added the way the frontend adds it: config flow over REST."""
    first = stack.ha(lambda ha: ha.post("/api/config/config_entries/flow", {"handler": JOULEGATE}))
    assert first["type"] == "form"
    assert first["step_id"] == "user"
    assert {f["name"] for f in first["data_schema"]} == {"host", "port", "token"}

    host, port = "127.0.0.1", int(stack.agent_url.rsplit(":", 1)[1])
    result = stack.ha(
        lambda ha: ha.post(
            f"/api/config/config_entries/flow/{first['flow_id']}",
            {"host": host, "port": port, "token": stack.agent_token},
        )
    )
    assert result["type"] == "create_entry", result
    entry_id = result["result"]["entry_id"]
    loaded = stack.ha(lambda ha: wait_entry_loaded(ha, entry_id))
    stack.entry_id = entry_id
    stack.entities = stack.ha(lambda ha: joulegate_entities(ha, entry_id))
    return {"flow": result, "entry": loaded}


@pytest.fixture(scope="session")
def gate(stack: Stack, entry: dict[str, Any], house: HouseFeeder) -> dict[str, str]:
    """The solar gate on the demo house's sensors, set up through the options flow, the rig
    following the sun with its power levels as in the demo."""
    assert stack.entry_id
    entry_id = stack.entry_id
    first = stack.ha(lambda ha: ha.options_form(entry_id))
    assert gate_setup.has_gate_options(first), first
    house.set(grid_w=500.0, battery_w=0.0, battery_soc=60.0)  # the inputs must read numbers
    result = stack.ha(
        lambda ha: ha.options_flow(
            entry_id, *gate_setup.gate_answers(stale_after_s=30, level_mode="fastest")
        )
    )
    assert result["type"] == "create_entry", result
    stack.ha(lambda ha: wait_entry_loaded(ha, entry_id))

    def gate_entities() -> dict[str, str] | None:
        entities = stack.ha(lambda ha: joulegate_entities(ha, entry_id))
        return entities if {"gate_reason", "power_level"} <= entities.keys() else None

    stack.entities = wait_for(gate_entities, timeout=60, what="the gate's entities")
    return stack.entities


@pytest.fixture(scope="session")
def energy(stack: Stack, entry: dict[str, Any]) -> dict[str, Any]:
    """The demo's Energy dashboard (demo/energy_setup.py), saved as the demo saves it."""
    rigs = {"Rig A": dict(stack.entities)}
    stack.ha(lambda ha: energy_setup.configure(ha, rigs))
    return energy_setup.energy_prefs(rigs)
