"""calibrate against the simulated LLM, restore-power and power-dropin."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from joulegate_agent.agent import Agent
from joulegate_agent.api.app import build_app
from joulegate_agent.cli.main import main
from joulegate_agent.config import AgentConfig
from joulegate_agent.power.calibrate import calibrate, format_table
from joulegate_agent.power.simulated import MODE_FILE
from joulegate_agent.simulation.llm import SimulatedLLM, SimulatorSettings
from tests.agent.fakes import sysfs_trees as trees
from tests.agent.fakes.sysfs_trees import ORIN_NANO_GPU_HZ
from tests.agent.test_power import CPU0_MAX, GPU_MAX, controller_on, read

pytestmark = pytest.mark.usefixtures("no_pynvml")

UNIT = "examples/joulegate-agent.service"


async def test_calibrate_fills_the_table_for_every_simulated_level(tmp_path: Path) -> None:
    data = tmp_path / "data"
    llm = TestServer(
        SimulatedLLM(
            SimulatorSettings(
                tokens_per_s=250.0, prefill_tokens_per_s=0, power_mode_file=data / MODE_FILE
            )
        ).app(),
        host="127.0.0.1",
    )
    await llm.start_server()
    agent = Agent(
        AgentConfig(
            host="127.0.0.1",
            data_dir=data,
            source="simulated",
            zeroconf=False,
            upstream=str(llm.make_url("")).rstrip("/"),
            power_dwell_s=0.0,
        )
    )
    await agent.start()
    server = TestServer(build_app(agent), host="127.0.0.1")
    await server.start_server()
    try:
        table = await calibrate(
            str(server.make_url("")), agent.token, runs=2, max_tokens=16, settle_s=0.0
        )
    finally:
        await server.close()
        await agent.stop()
        await llm.close()
    assert [(e["level"], e["measured"], e["inferences"]) for e in table] == [
        ("7W", True, 2),
        ("15W", True, 2),
        ("25W", True, 2),
        ("MAXN_SUPER", True, 2),
    ]
    rates = [entry["models"][0]["tokens_per_s"] for entry in table]
    assert rates == sorted(rates)  # the simulated LLM decodes faster at each higher mode
    assert "MAXN_SUPER" in format_table(table)


def test_restore_power_puts_back_what_a_crashed_agent_left(tmp_path: Path) -> None:
    root = tmp_path / "root"
    trees.orin_nano_super(root)
    crashed = controller_on(root, tmp_path / "data")
    crashed.set(crashed.level("L1"), lease_s=3600)
    assert main(["restore-power", "--data-dir", str(tmp_path / "data")]) == 0
    assert read(root, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]
    assert read(root, CPU0_MAX) == 1728000
    assert main(["restore-power", "--data-dir", str(tmp_path / "data")]) == 0  # nothing left


def test_restore_power_fails_loudly_when_a_setting_cannot_go_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    trees.orin_nano_super(root)
    controller = controller_on(root, tmp_path / "data")
    controller.set(controller.level("L1"), lease_s=3600)
    (root / GPU_MAX).unlink()
    (root / GPU_MAX).mkdir()
    assert main(["restore-power", "--data-dir", str(tmp_path / "data")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_power_dropin_opens_exactly_the_knob_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trees.orin_nano_super(tmp_path)
    assert main(["power-dropin", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "[Service]",
        "ReadWritePaths=/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu "
        "/sys/devices/system/cpu/cpufreq/policy0 /sys/devices/system/cpu/cpufreq/policy4",
    ]


def test_the_shipped_unit_restores_power_after_every_stop_and_reports_what_it_may_set() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((Path(__file__).resolve().parents[2] / UNIT).read_text())
    service = unit["Service"]
    assert service["ExecStopPost"].split()[1:3] == ["restore-power", "--config"]
    assert service["ExecStartPre"].startswith("-")  # a doctor that finds problems never blocks
    assert service["ExecStartPre"].split()[1] == "doctor"
    assert service["ProtectKernelTunables"] == "true"  # /sys stays read-only but for the drop-in
