"""The demo's rigs: simulated agents, each with its own simulated LLM, behind one house's surplus.

Rig A is the demo's first rig as it always was (its ports, its data folder). Rig B is a less
efficient box: its board draws more for the same work (the agent's wall-power gain) and its model
decodes more slowly, so each of its tokens costs about three times the energy. Both LLMs follow
their agent's power level (`simulate-llm --power-mode-file`), so a level the integration sets
changes the speed as well as the draw. Each rig is its own Joulegate entry, on the same house
sensors, so one site shares the surplus: rig A first (priority 2, most tokens per joule), rig B
with the rest (fastest). A second box on the same machine needs a device id of its own (a real one
has its own /etc/machine-id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.ha_client import JOULEGATE, HomeAssistantClient, HomeAssistantError
from demo.procs import Service, agent_service, llm_service
from demo.stack import wait_entry_loaded
from joulegate_agent.identity import DEVICE_ID_FILE
from joulegate_agent.power.simulated import MODE_FILE


@dataclass(frozen=True, slots=True)
class Rig:
    """One simulated box: where it listens, where it keeps its data, how efficient it is."""

    key: str
    title: str  # the Joulegate entry's title in Home Assistant
    agent_port: int
    llm_port: int
    data_dir: Path
    tokens_per_s: float  # the LLM's decode rate at the board's default level
    gain: float  # the agent's calibration gain: wall power per watt the board reads
    device_id: str | None  # None: the agent derives it (rig A, as before)
    level_mode: str  # the options' level mode: how the rig follows the sun
    priority: int  # its priority among the rigs on the house's grid meter

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    @property
    def llm_url(self) -> str:
        return f"http://127.0.0.1:{self.llm_port}"

    def token(self) -> str:
        return (self.data_dir / "token").read_text(encoding="utf-8").strip()

    def prepare(self) -> None:
        """Give a second box on this machine a device id of its own before its agent starts."""
        if self.device_id is None:
            return
        path = self.data_dir / DEVICE_ID_FILE
        if not path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_text(self.device_id + "\n", encoding="utf-8")
            path.chmod(0o600)

    def llm(self, log_dir: Path) -> Service:
        """`simulate-llm` decoding at the rate of the agent's power level."""
        return llm_service(
            self.llm_port,
            log_dir,
            self.tokens_per_s,
            power_mode_file=self.data_dir / MODE_FILE,
            name=f"simulated LLM{self._suffix(' ')}",
            log_name=f"simulate-llm{self._suffix('-')}.log",
        )

    def agent(self, log_dir: Path) -> Service:
        extra = () if self.gain == 1.0 else ("--gain", str(self.gain))
        return agent_service(
            self.agent_port,
            self.data_dir,
            self.llm_port,
            log_dir,
            *extra,
            name=f"agent{self._suffix(' ')}",
            log_name=f"agent{self._suffix('-')}.log",
        )

    def _suffix(self, separator: str) -> str:
        """Rig A's services and logs keep the names the single-rig demo gave them."""
        return "" if self.key == "a" else separator + self.key


# Rig B: 1.4x the draw and half the decode rate, so 2.8x the energy per token.
B_GAIN = 1.4
B_SPEED = 0.5


def demo_rigs(
    count: int, data: Path, *, agent_port: int, llm_port: int, tokens_per_s: float
) -> list[Rig]:
    """Rig A on the given ports and data folder; rig B on the next ports, in agent-b/."""
    rigs = [
        Rig(
            "a",
            "Rig A",
            agent_port,
            llm_port,
            data / "agent",
            tokens_per_s,
            1.0,
            None,
            "efficient",
            2,
        ),
        Rig(
            "b",
            "Rig B (less efficient)",
            agent_port + 1,
            llm_port + 1,
            data / "agent-b",
            tokens_per_s * B_SPEED,
            B_GAIN,
            "demo0rig0b000002",
            "fastest",
            1,
        ),
    ]
    if not 1 <= count <= len(rigs):
        raise ValueError(f"the demo runs 1 or {len(rigs)} rigs, not {count}")
    return rigs[:count]


async def ensure_rig_entries(
    ha: HomeAssistantClient, rigs: list[Rig], *, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """One loaded Joulegate entry per rig, found by its title, added through the config flow.

    Entries of the demo's Home Assistant that belong to no rig (an older run's, or one whose
    agent's token changed) are deleted first, so a second run always ends up connected.
    """
    titles = {rig.title for rig in rigs}
    found: dict[str, dict[str, Any]] = {}
    for entry in await ha.config_entries(JOULEGATE):
        if entry["title"] in titles and entry["state"] == "loaded":
            found[entry["title"]] = entry
        else:
            await ha.delete_config_entry(entry["entry_id"])
    entries = []
    for rig in rigs:
        if rig.title in found:
            entries.append(found[rig.title])
            continue
        answer = {"host": "127.0.0.1", "port": rig.agent_port, "token": rig.token()}
        result = await ha.config_flow(JOULEGATE, answer)
        if result.get("type") != "create_entry":
            raise HomeAssistantError(
                f"adding {rig.title} did not create an entry: {result}", body=result
            )
        entry_id = result["result"]["entry_id"]
        await ha.ws({"type": "config_entries/update", "entry_id": entry_id, "title": rig.title})
        entries.append(await wait_entry_loaded(ha, entry_id, timeout=timeout))
    return entries
