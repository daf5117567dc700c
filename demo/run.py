"""`./scripts/demo` (`python -m demo`): the whole Joulegate system on this machine, for real.

Starts, all on 127.0.0.1:
  1. `joulegate-agent simulate-llm`: a simulated local LLM server per rig, decoding at the rate
     of its agent's power level;
  2. `joulegate-agent serve --source simulated --upstream ...`: per rig, an agent on a simulated
     Jetson Orin Nano, metering every request it proxies to that LLM; two rigs by default, the
     second less efficient (demo/rigs.py);
  3. Home Assistant (`hass -c .demo-data/homeassistant`) with the integration linked in, an owner
     user made through onboarding's API, and each agent added through the config flow's API, all
     on the same house sensors (one surplus);
  4. a sped-up sunny day (pvlib clear sky, passing clouds, a house load, a home battery) that
     drives the house's PV, grid and battery sensors in Home Assistant;
  5. a stream of inference requests through the agent's proxy, some of them deferrable, and a
     small OpenAI batch (`demo/batch.py`) that the rig runs on sunshine.
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

from demo import batch as demo_batch
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
    hass_service,
    port_is_free,
    stop_all,
)
from demo.rigs import Rig, demo_rigs, ensure_rig_entries
from demo.stack import (
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
    parser.add_argument(
        "--rigs",
        type=int,
        default=2,
        choices=(1, 2),
        help="simulated rigs behind the house's surplus (default 2: rig B draws 1.4x and decodes "
        "at half the rate; it uses the next agent and LLM ports)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more of Home Assistant's log")
    return parser.parse_args(argv)


@dataclass(slots=True)
class Demo:
    args: argparse.Namespace
    services: list[Service] = field(default_factory=list)
    driver: HouseDriver | None = None
    traffic: list[Traffic] = field(default_factory=list)
    agents: list[tuple[Rig, AgentReader]] = field(default_factory=list)
    gate_entities: dict[str, str] = field(default_factory=dict)  # rig key -> its gate entity

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
    ports = [("Home Assistant", args.ha_port)]
    for n in range(args.rigs):
        ports += [("agent", args.agent_port + n), ("LLM", args.llm_port + n)]
    busy = [f"{name} port {port}" for name, port in ports if not port_is_free(port)]
    if busy:
        raise SystemExit(
            f"error: {', '.join(busy)} already in use on 127.0.0.1 (another demo running?). "
            "Stop it, or pick others with --ha-port/--agent-port/--llm-port."
        )


async def _setup(demo: Demo, session: aiohttp.ClientSession) -> HomeAssistantClient:
    args = demo.args
    data = demo.data
    logs = data / "logs"
    ha_dir = data / "homeassistant"
    rigs = demo_rigs(
        args.rigs,
        data,
        agent_port=args.agent_port,
        llm_port=args.llm_port,
        tokens_per_s=args.tokens_per_s,
    )
    site = Site()
    started = time.monotonic()

    def elapsed() -> str:
        return f"{time.monotonic() - started:5.1f} s"

    # 1-2. Per rig, the simulated LLM and the agent in front of it.
    for rig in rigs:
        rig.prepare()
        llm = demo.start(rig.llm(logs))
        agent = demo.start(rig.agent(logs))
        await wait_http_async(f"{rig.llm_url}/health", timeout=60, service=llm)
        await wait_http_async(f"{rig.agent_url}/api/v1/health", timeout=60, service=agent)
        _say(
            f"[{elapsed()}] {rig.title}: agent up at {rig.agent_url}, proxying to the simulated "
            f"LLM at {rig.llm_url}"
        )

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
    demo.agents = [(rig, AgentReader(session, rig.agent_url, rig.token())) for rig in rigs]
    demo.driver = HouseDriver(ha, [reader for _, reader in demo.agents], house, clock)
    await demo.driver.restore()
    await demo.driver.step(0.0)

    # Every rig's entry on the same house sensors: one surplus behind them all.
    rig_entities: dict[str, dict[str, str]] = {}
    for rig, entry in zip(rigs, await ensure_rig_entries(ha, rigs), strict=True):
        entities, note = await _configure_rig(ha, rig, entry["entry_id"])
        rig_entities[rig.title] = entities
        if gate := entities.get("gate"):
            demo.gate_entities[rig.key] = gate
        _say(f"[{elapsed()}] Joulegate integration set up ({entry['title']}): {note}")
    entities = rig_entities[rigs[0].title]
    await energy_setup.configure(ha, rig_entities)

    # The dashboard, with this agent's entity ids.
    prefix = entity_prefix(entities)
    dashboard = render_dashboard(EXAMPLE_DASHBOARD.read_text(), prefix)
    (ha_dir / DASHBOARD_FILE).write_text(dashboard)
    states = await ha.states()
    house_ids = {sensor.entity_id for sensor in HOUSE_SENSORS}
    missing = sorted(e for e in dashboard_entities(dashboard) - set(states) if e not in house_ids)
    if missing:
        _say(f"  note: the dashboard mentions entities Home Assistant does not have: {missing}")

    # The requests (each rig has its own users), and a batch of work that waits for the sun.
    if args.request_interval > 0:
        demo.traffic = [
            Traffic(
                session,
                rig.agent_url,
                rig.token(),
                seed=args.seed + n,
                mean_interval_s=args.request_interval,
            )
            for n, rig in enumerate(rigs)
        ]
    batch, submitted = await demo_batch.submit(session, rigs[0].agent_url, rigs[0].token())
    _say(
        f"[{elapsed()}] batch {batch['id']} ({batch['request_counts']['total']} requests) "
        f"{'submitted' if submitted else 'from an earlier run still in progress'}: "
        f"{rigs[0].key.upper()} runs it while its gate admits batch work"
    )

    _say()
    _say("=" * 78)
    _say(f"  Joulegate demo is running ({elapsed().strip()} to start).")
    _say()
    _say(f"  Home Assistant: {ha_url}/{DASHBOARD_URL_PATH}")
    _say(f"  Energy:         {ha_url}/energy/electricity   (an hour's bar once the hour is over)")
    _say(f"  user name:      {creds.username}")
    _say(f"  password:       {creds.password}")
    _say()
    for rig in rigs:
        _say(f"  {rig.title}:")
        _say(f"    agent API:    {rig.agent_url}/api/v1/status   (token: {rig.data_dir / 'token'})")
        _say(f"    agent proxy:  {rig.agent_url}/v1/chat/completions   (API key: the token)")
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


async def _configure_rig(
    ha: HomeAssistantClient, rig: Rig, entry_id: str
) -> tuple[dict[str, str], str]:
    """The gate's options on the house sensors (the rig's level mode and priority), its policy
    and minimum off time; the entry's entities by key, and a sentence about the gate."""
    note = await gate_setup.configure(
        ha, entry_id, level_mode=rig.level_mode, priority=rig.priority
    )
    await wait_entry_loaded(ha, entry_id)
    entities = await wait_until(
        lambda: _entities_with_board_power(ha, entry_id),
        timeout=60,
        what="the Joulegate entities",
    )
    if await gate_setup.set_policy(ha, entities, gate_setup.POLICY):
        note += f", policy {gate_setup.POLICY}"
    if await gate_setup.shorten_min_off(ha, entities):
        note += f", minimum off time {gate_setup.DEMO_MIN_OFF_S:.0f} s"
    await _show_in_wh(ha, entities)
    return entities, note


async def _entities_with_board_power(
    ha: HomeAssistantClient, entry_id: str
) -> dict[str, str] | None:
    entities = await joulegate_entities(ha, entry_id)
    return entities if "board_power" in entities else None


def _status_line(demo: Demo, ha_gates: dict[str, dict[str, Any]]) -> str:
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
    for n, (rig, reader) in enumerate(demo.agents):
        status = reader.status
        if not status:
            continue
        gate = status.get("gate") or {}
        word = "open" if gate.get("open") else "closed"
        ha_gate = ha_gates.get(rig.key) or {}
        reason = ha_gate.get("attributes", {}).get("reason") or gate.get("reason") or ""
        level = status.get("power_level")
        inference = status.get("inference") or {}
        count = int(inference.get("count") or 0)
        energy = status.get("energy") or {}
        per = (float(energy.get("inference_wh") or 0) / count * 1000) if count else 0.0
        part = (
            f"{rig.key.upper()}: gate {word}{f' ({reason})' if reason else ''}"
            f"{f' at {level}' if level else ''}; {count} inferences"
            f"{f', {per:.1f} mWh each' if count else ''}"
        )
        waiting = (status.get("batches") or {}).get("requests_waiting")
        if waiting:
            part += f"; batch: {waiting} requests waiting"
        if n < len(demo.traffic):
            stats = demo.traffic[n].stats
            part += f"; requests: {stats.ok} ok, {stats.refused} refused"
        parts.append(part)
    return " | ".join(parts)


async def _report(demo: Demo, ha: HomeAssistantClient, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        ha_gates: dict[str, dict[str, Any]] = {}
        for key, entity_id in demo.gate_entities.items():
            with contextlib.suppress(Exception):
                if state := await ha.state(entity_id):
                    ha_gates[key] = state
        _say(_status_line(demo, ha_gates))


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
        tasks += [asyncio.create_task(traffic.run()) for traffic in demo.traffic]
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
