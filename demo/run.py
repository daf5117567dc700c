"""`./scripts/demo` (`python -m demo`): the whole Joulegate system on this machine, for real.

Starts, all on 127.0.0.1:
  1. `joulegate-agent simulate-llm`: a simulated local LLM server;
  2. `joulegate-agent serve --source simulated --upstream ...`: the agent on a simulated Jetson
     Orin Nano, metering every request it proxies to that LLM;
  3. Home Assistant (`hass -c .demo-data/homeassistant`) with the integration linked in, an owner
     user made through onboarding's API, and the agent added through the config flow's API;
  4. a sped-up sunny day (pvlib clear sky, passing clouds, a house load, a home battery) that
     drives the house's PV, grid and battery sensors in Home Assistant;
  5. a stream of inference requests through the agent's proxy, some of them deferrable.
Then it prints where to log in. Ctrl-C stops everything; a second run reuses what the first
one set up (user, entry, history).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import aiohttp

from demo import energy_setup, gate_setup
from demo.driver import AgentReader, HouseDriver
from demo.ha_client import HomeAssistantClient
from demo.ha_config import (
    DASHBOARD_FILE,
    DASHBOARD_URL_PATH,
    EXAMPLE_DASHBOARD,
    HOUSE_SENSORS,
    dashboard_entities,
    render_dashboard,
    write_config,
)
from demo.procs import (
    REPO_ROOT,
    Service,
    agent_service,
    hass_service,
    llm_service,
    port_is_free,
    stop_all,
)
from demo.stack import (
    ensure_joulegate_entry,
    ensure_owner,
    entity_prefix,
    joulegate_entities,
    wait_entry_loaded,
    wait_for_home_assistant,
    wait_http_async,
    wait_running,
    wait_until,
)
from demo.sunny_day import House, SimClock, Site, speed_for, start_time
from demo.traffic import Traffic


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Run the agent, a real Home Assistant with the Joulegate integration, a "
        "simulated sunny day and a stream of inference requests, all on 127.0.0.1.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / ".demo-data",
        help="where the agent's ledger, Home Assistant's config and the logs live "
        "(default: .demo-data)",
    )
    parser.add_argument("--fresh", action="store_true", help="delete the data dir first")
    parser.add_argument("--ha-port", type=int, default=8123, help="Home Assistant (8123)")
    parser.add_argument("--agent-port", type=int, default=8787, help="the agent (8787)")
    parser.add_argument("--llm-port", type=int, default=8080, help="the simulated LLM (8080)")
    parser.add_argument(
        "--day-minutes",
        type=float,
        default=25.0,
        help="wall-clock minutes for the simulated day from 05:00 to 22:00 (default 25; "
        "the night passes 5 times faster)",
    )
    parser.add_argument(
        "--start", default="06:00", help="simulated time of day to start at (default 06:00)"
    )
    parser.add_argument(
        "--date",
        default=None,
        help="simulated date, YYYY-MM-DD (default: 21 May of this year)",
    )
    parser.add_argument("--seed", type=int, default=1, help="clouds, loads and requests")
    parser.add_argument(
        "--request-interval",
        type=float,
        default=6.0,
        help="mean seconds between inference requests (default 6; 0: send none)",
    )
    parser.add_argument(
        "--tokens-per-s", type=float, default=25.0, help="the simulated LLM's decode rate"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more of Home Assistant's log")
    return parser.parse_args(argv)


@dataclass(slots=True)
class Demo:
    args: argparse.Namespace
    services: list[Service] = field(default_factory=list)
    driver: HouseDriver | None = None
    traffic: Traffic | None = None
    agent: AgentReader | None = None
    gate_entity: str | None = None

    @property
    def data(self) -> Path:
        path: Path = self.args.data_dir
        return path.resolve()

    def start(self, service: Service) -> Service:
        self.services.append(service.start())
        return service


def _say(text: str = "") -> None:
    print(text, flush=True)


def _check_ports(args: argparse.Namespace) -> None:
    busy = [
        f"{name} port {port}"
        for name, port in (
            ("Home Assistant", args.ha_port),
            ("agent", args.agent_port),
            ("LLM", args.llm_port),
        )
        if not port_is_free(port)
    ]
    if busy:
        raise SystemExit(
            f"error: {', '.join(busy)} already in use on 127.0.0.1 (another demo running?). "
            "Stop it, or pick others with --ha-port/--agent-port/--llm-port."
        )


async def _setup(demo: Demo, session: aiohttp.ClientSession) -> HomeAssistantClient:
    args = demo.args
    data = demo.data
    logs = data / "logs"
    agent_dir = data / "agent"
    ha_dir = data / "homeassistant"
    site = Site()
    started = time.monotonic()

    def elapsed() -> str:
        return f"{time.monotonic() - started:5.1f} s"

    # 1-2. The simulated LLM, and the agent in front of it.
    llm = demo.start(llm_service(args.llm_port, logs, args.tokens_per_s))
    agent = demo.start(agent_service(args.agent_port, agent_dir, args.llm_port, logs))
    llm_url = f"http://127.0.0.1:{args.llm_port}"
    agent_url = f"http://127.0.0.1:{args.agent_port}"
    await wait_http_async(f"{llm_url}/health", timeout=60, service=llm)
    await wait_http_async(f"{agent_url}/api/v1/health", timeout=60, service=agent)
    token = (agent_dir / "token").read_text().strip()
    _say(f"[{elapsed()}] agent up at {agent_url}, proxying to the simulated LLM at {llm_url}")

    # 3. Home Assistant.
    write_config(
        ha_dir, port=args.ha_port, site=site, log_level="info" if args.verbose else "warning"
    )
    hass = demo.start(hass_service(ha_dir, logs))
    ha_url = f"http://127.0.0.1:{args.ha_port}"
    ha = HomeAssistantClient(ha_url, session)
    _say(f"[{elapsed()}] starting Home Assistant (log: {hass.log_path})")
    await wait_for_home_assistant(ha_url, hass, timeout=300)
    creds = await ensure_owner(ha, data / "credentials.json", token_name="Joulegate demo")  # noqa: S106 - a label
    await wait_running(ha, timeout=180)
    _say(f"[{elapsed()}] Home Assistant up at {ha_url}")

    # The sped-up day: its first reading gives the house's sensors their states, which the
    # gate's options check.
    day = date.fromisoformat(args.date) if args.date else date(date.today().year, 5, 21)
    at = datetime.strptime(args.start, "%H:%M").time()
    house = House(site=site, seed=args.seed, first_day=day)
    clock = SimClock(start_time(day, at, site.time_zone), speed=speed_for(args.day_minutes))
    demo.agent = AgentReader(session, agent_url, token)
    demo.driver = HouseDriver(ha, demo.agent, house, clock)
    await demo.driver.restore()
    await demo.driver.step(0.0)

    entry = await ensure_joulegate_entry(ha, "127.0.0.1", args.agent_port, token)
    entry_id = entry["entry_id"]
    gate_note = await gate_setup.configure(ha, entry_id)
    await wait_entry_loaded(ha, entry_id)
    entities = await wait_until(
        lambda: _entities_with_board_power(ha, entry_id),
        timeout=60,
        what="the Joulegate entities",
    )
    if await gate_setup.set_policy(ha, entities, gate_setup.POLICY):
        gate_note += f", policy {gate_setup.POLICY}"
    if await gate_setup.shorten_min_off(ha, entities):
        gate_note += f", minimum off time {gate_setup.DEMO_MIN_OFF_S:.0f} s"
    demo.gate_entity = entities.get("gate")
    await _show_in_wh(ha, entities)
    await energy_setup.configure(ha, entities)
    _say(f"[{elapsed()}] Joulegate integration set up ({entry['title']}): {gate_note}")

    # The dashboard, with this agent's entity ids.
    prefix = entity_prefix(entities)
    dashboard = render_dashboard(EXAMPLE_DASHBOARD.read_text(), prefix)
    (ha_dir / DASHBOARD_FILE).write_text(dashboard)
    states = await ha.states()
    house_ids = {sensor.entity_id for sensor in HOUSE_SENSORS}
    missing = sorted(e for e in dashboard_entities(dashboard) - set(states) if e not in house_ids)
    if missing:
        _say(f"  note: the dashboard mentions entities Home Assistant does not have: {missing}")

    # The requests.
    if args.request_interval > 0:
        demo.traffic = Traffic(
            session, agent_url, token, seed=args.seed, mean_interval_s=args.request_interval
        )

    _say()
    _say("=" * 78)
    _say(f"  Joulegate demo is running ({elapsed().strip()} to start).")
    _say()
    _say(f"  Home Assistant: {ha_url}/{DASHBOARD_URL_PATH}")
    _say(f"  Energy:         {ha_url}/energy   (hourly bars: after the first full hour)")
    _say(f"  user name:      {creds.username}")
    _say(f"  password:       {creds.password}")
    _say()
    _say(f"  agent API:      {agent_url}/api/v1/status   (token: {agent_dir / 'token'})")
    _say(f"  agent proxy:    {agent_url}/v1/chat/completions   (API key: the token)")
    _say(f"  logs:           {logs}")
    _say(
        f"  simulated day:  {day:%d %B}, from {at:%H:%M}; 05:00-22:00 takes "
        f"{args.day_minutes:g} minutes"
    )
    _say("  Ctrl-C stops everything. Run it again: same user, entry and history; a new day.")
    _say("=" * 78)
    _say()
    return ha


# The rig's energy, which a small rig makes in minutes: shown in Wh rather than 0.000 kWh. This is
# the display unit a user can pick in the entity's settings; the integration suggests kWh (the
# inference energy totals are in Wh already).
SHOW_IN_WH = ("energy",)


async def _show_in_wh(ha: HomeAssistantClient, entities: dict[str, str]) -> None:
    states = await ha.states()
    for key in SHOW_IN_WH:
        entity_id = entities.get(key)
        state = states.get(entity_id or "")
        if entity_id and state and state["attributes"].get("unit_of_measurement") == "kWh":
            await ha.ws(
                {
                    "type": "config/entity_registry/update",
                    "entity_id": entity_id,
                    "options_domain": "sensor",
                    "options": {"unit_of_measurement": "Wh"},
                }
            )


async def _entities_with_board_power(
    ha: HomeAssistantClient, entry_id: str
) -> dict[str, str] | None:
    entities = await joulegate_entities(ha, entry_id)
    return entities if "board_power" in entities else None


def _status_line(demo: Demo, ha_gate: dict[str, Any] | None) -> str:
    parts: list[str] = []
    flows = demo.driver.latest if demo.driver else None
    if flows is not None:
        battery = flows.battery_w
        doing = "charging" if battery < -20 else "discharging" if battery > 20 else "idle"
        parts.append(
            f"{flows.sim_time:%H:%M} PV {flows.pv_w / 1000:3.1f} kW"
            f"{' (cloud)' if flows.shade > 0.3 else ''}, house {flows.house_w / 1000:3.1f} kW, "
            f"battery {flows.battery_soc:3.0f} % {doing}, grid {flows.grid_w / 1000:+4.1f} kW"
        )
    status = demo.agent.status if demo.agent else None
    if status:
        gate = status.get("gate") or {}
        word = "open" if gate.get("open") else "closed"
        reason = (ha_gate or {}).get("attributes", {}).get("reason") or gate.get("reason") or ""
        inference = status.get("inference") or {}
        count = int(inference.get("count") or 0)
        energy = status.get("energy") or {}
        per = (float(energy.get("inference_wh") or 0) / count * 1000) if count else 0.0
        parts.append(
            f"gate {word}{f' ({reason})' if reason else ''}; {count} inferences"
            f"{f', {per:.1f} mWh each' if count else ''}"
        )
    if demo.traffic is not None:
        stats = demo.traffic.stats
        parts.append(f"requests: {stats.ok} ok, {stats.refused} refused")
    return " | ".join(parts)


async def _report(demo: Demo, ha: HomeAssistantClient, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        ha_gate = None
        if demo.gate_entity:
            with contextlib.suppress(Exception):
                ha_gate = await ha.state(demo.gate_entity)
        _say(_status_line(demo, ha_gate))


async def _watch(demo: Demo) -> None:
    while True:
        await asyncio.sleep(1.0)
        for service in demo.services:
            service.check_running()


async def _run(demo: Demo) -> None:
    async with aiohttp.ClientSession() as session:
        ha = await _setup(demo, session)
        tasks = [asyncio.create_task(_watch(demo)), asyncio.create_task(_report(demo, ha, 15.0))]
        if demo.driver is not None:
            tasks.append(asyncio.create_task(demo.driver.run()))
        if demo.traffic is not None:
            tasks.append(asyncio.create_task(demo.traffic.run()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _main(demo: Demo) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(_run(demo))
    stopper = asyncio.create_task(stop.wait())
    code = 0
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            try:
                work.result()
            except Exception as err:
                _say(f"\nerror: {err}")
                code = 1
        else:
            _say("\nstopping (Ctrl-C again to kill at once)...")
    finally:
        work.cancel()
        stopper.cancel()
        await asyncio.gather(work, stopper, return_exceptions=True)
        # Newest first: Home Assistant, then the agent, then the LLM. A second Ctrl-C kills.
        loop.remove_signal_handler(signal.SIGINT)
        loop.add_signal_handler(signal.SIGINT, lambda: _kill_all(demo))
        await asyncio.to_thread(stop_all, list(reversed(demo.services)), 30.0)
        _say("demo stopped")
    return code


def _kill_all(demo: Demo) -> None:
    for service in demo.services:
        if service.proc is not None and service.running():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    _check_ports(args)
    if args.fresh and args.data_dir.exists():
        known = {"agent", "homeassistant", "logs", "credentials.json"}
        found = {p.name for p in args.data_dir.iterdir()}
        if found and not found & known:
            raise SystemExit(
                f"error: {args.data_dir} does not look like the demo's data: not deleted"
            )
        shutil.rmtree(args.data_dir)
    return asyncio.run(_main(Demo(args)))


if __name__ == "__main__":
    sys.exit(main())
