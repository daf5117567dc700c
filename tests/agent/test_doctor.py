"""`doctor`: what the agent can measure on each board, and advice where it cannot."""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from joulegate_agent.cli.doctor import build_report, format_report
from joulegate_agent.metering.sysfs import SysfsRoot
from joulegate_agent.power.discovery import NVPMODEL_NOTE
from tests.agent.fakes import sysfs_trees as trees

pytestmark = pytest.mark.usefixtures("no_pynvml")


def report_for(root: Path | SysfsRoot, kind: str = "auto") -> dict[str, Any]:
    report = build_report(root, kind, settle_s=0)
    assert json.loads(json.dumps(report)) == report  # JSON-ready as it is
    return report


@dataclass(frozen=True)
class Board:
    """What doctor should see on one board."""

    build: Callable[[Path], object]
    kind: str
    boundary: str
    board_w: float
    whole: list[str]
    mode: dict[str, object]
    max_c: float


JETSONS = {
    "nano-jp4": Board(
        trees.nano_jp4,
        "jetson_iio",
        "module input rail (POM_5V_IN)",
        2.545,
        ["POM_5V_IN"],
        {"id": 0, "name": "MAXN"},
        40.5,
    ),
    "xavier-nx-jp4": Board(
        trees.xavier_nx_jp4,
        "jetson_iio",
        "module input rail (VDD_IN)",
        5.553,
        ["VDD_IN"],
        {"id": 2, "name": "MODE_15W_6CORE"},
        43.5,
    ),
    "agx-xavier-jp4": Board(
        trees.agx_xavier_jp4,
        "jetson_iio",
        "sum of module rails",
        7.794,
        [],
        {"id": 0, "name": "MAXN"},
        43.5,
    ),
    "orin-nano-jp6": Board(
        trees.orin_nano,
        "jetson_hwmon",
        "module input rail (VDD_IN)",
        5.008 * 0.952,
        ["VDD_IN"],
        {"id": 2, "name": "MAXN_SUPER"},
        47.531,
    ),
    "agx-orin-jp6": Board(
        trees.agx_orin,
        "jetson_hwmon",
        "sum of module rails",
        19.152 * 0.125 + 19.152 * 0.042 + 4.992 * 0.760 + 4.992 * 0.150,
        [],
        {"id": 0, "name": "MAXN"},
        47.531,
    ),
}


@pytest.mark.parametrize("board", JETSONS.values(), ids=JETSONS.keys())
def test_doctor_json_describes_each_jetson(tmp_path: Path, board: Board) -> None:
    board.build(tmp_path)
    report = report_for(tmp_path)
    (source,) = report["sources"]
    assert (source["kind"], source["boundary"]) == (board.kind, board.boundary)
    assert report["boundary"] == board.boundary
    assert report["board_w"] == pytest.approx(board.board_w)
    assert [rail["name"] for rail in source["rails"] if rail["whole_board"]] == board.whole
    assert all(rail["power_w"] is not None for rail in source["rails"])
    assert report["thermal"]["power_mode"] == board.mode
    assert report["thermal"]["max_c"] == board.max_c
    assert report["problems"] == []


def test_doctor_json_for_orin_nano_in_full(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    report = report_for(tmp_path)
    assert report == {
        "root": str(tmp_path),
        "source_kind": "auto",
        "sources": [
            {
                "kind": "jetson_hwmon",
                "path": "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1",
                "boundary": "module input rail (VDD_IN)",
                "resolution_s": 0.14,
                "notes": ["1-0040: averages 512 samples, new value every 140 ms"],
                "board_w": pytest.approx(4.767616),
                "energy_j": None,
                "rails": [
                    {
                        "name": "VDD_IN",
                        "whole_board": True,
                        "voltage_v": 5.008,
                        "current_a": 0.952,
                        "power_w": pytest.approx(4.767616),
                    },
                    {
                        "name": "VDD_CPU_GPU_CV",
                        "whole_board": False,
                        "voltage_v": 5.008,
                        "current_a": 0.103,
                        "power_w": pytest.approx(0.515824),
                    },
                    {
                        "name": "VDD_SOC",
                        "whole_board": False,
                        "voltage_v": 5.008,
                        "current_a": 0.285,
                        "power_w": pytest.approx(1.42728),
                    },
                ],
            }
        ],
        "board_w": pytest.approx(4.767616),
        "boundary": "module input rail (VDD_IN)",
        "not_found": {
            "jetson_iio": "no ina3221x rail_name_N file under "
            "/sys/bus/i2c/drivers/ina3221x/*/iio:device*",
            "hwmon": "no power<n>_input, nor in<n>_input with curr<n>_input, "
            "under /sys/class/hwmon/hwmon*",
            "power_supply": "no power_now, nor voltage_now with current_now, "
            "under /sys/class/power_supply/*",
            "rapl": "no top-level RAPL zone with name and energy_uj under "
            "/sys/class/powercap/intel-rapl:*",
            "nvml": "nvidia-ml-py is not installed (pip install nvidia-ml-py)",
        },
        "thermal": {
            "zones": {
                "cpu-thermal": 47.531,
                "gpu-thermal": 46.968,
                "soc0-thermal": 46.0,
                "soc1-thermal": 45.5,
                "soc2-thermal": 45.968,
                "tj-thermal": 47.531,
                "tboard_tegra": 38.0,
                "tdiode_tegra": 39.25,
            },
            "max_c": 47.531,
            "throttling": [],
            "power_mode": {"id": 2, "name": "MAXN_SUPER"},
        },
        "power": {
            "levels": [],
            "knobs": [],
            "notes": [
                "/sys/class/devfreq/17000000.gpu/max_freq: no list of frequencies to choose from",
                *(
                    f"/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_max_freq: "
                    "no list or range of frequencies to choose from"
                    for n in range(6)
                ),
                NVPMODEL_NOTE,
            ],
            "nvpmodel_modes": {"0": "15W", "1": "25W", "2": "MAXN_SUPER", "3": "7W"},
        },
        "problems": [],
    }


def test_doctor_json_for_a_battery_box_with_rapl(tmp_path: Path) -> None:
    trees.battery(tmp_path)
    trees.rapl(tmp_path, 10_000_000)
    report = report_for(tmp_path)
    assert [s["kind"] for s in report["sources"]] == ["power_supply", "rapl"]
    assert report["board_w"] == pytest.approx(9.36)
    assert report["sources"][1]["board_w"] == 0.0  # the counter did not move in the test tree
    assert report["thermal"]["power_mode"] is None


def test_doctor_states_each_sources_resolution(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.battery(tmp_path)
    report = report_for(tmp_path)
    assert [s["resolution_s"] for s in report["sources"]] == [0.14, None]
    text = format_report(report)
    assert "resolution: a new value every 140 ms" in text
    assert "resolution: not stated by the driver (error bounds count" in text


def test_doctor_json_for_generic_hwmon(tmp_path: Path) -> None:
    trees.generic_hwmon(tmp_path)
    report = report_for(tmp_path, "hwmon")
    assert report["sources"][0]["path"] == "/sys/class/hwmon/hwmon2"
    assert report["board_w"] == pytest.approx(3.25)


def denying(*names: str) -> Callable[[Path], str]:
    """A reader that refuses some files, as the kernel does for a root-only file and a user."""

    def read(path: Path) -> str:
        if path.name in names:
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text(encoding="utf-8")

    return read


def test_doctor_names_root_only_files_and_how_to_fix_it(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    report = report_for(SysfsRoot(tmp_path, reader=denying("curr1_input")))
    root_only, no_reading = report["problems"]
    assert root_only["problem"] == (
        "files readable only by root: /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr1_input"
    )
    assert "run the agent as root" in root_only["advice"]
    assert "udev rule" in root_only["advice"]
    assert "systemd service" in root_only["advice"]
    assert no_reading["problem"] == "jetson_hwmon: no reading from VDD_IN"
    assert report["board_w"] is None


def test_doctor_explains_root_only_rapl_counters(tmp_path: Path) -> None:
    trees.rapl(tmp_path, 10_000_000)
    report = report_for(SysfsRoot(tmp_path, reader=denying("energy_uj")), "rapl")
    assert report["problems"][0]["problem"] == (
        "files readable only by root: /sys/class/powercap/intel-rapl:0/energy_uj"
    )


def test_doctor_without_any_sensor_says_what_to_check(tmp_path: Path) -> None:
    report = report_for(tmp_path)
    (problem,) = report["problems"]
    assert problem["problem"].startswith("no power sensor found (jetson_hwmon: no labelled ina3221")
    assert "ina3221 / ina3221x driver" in problem["advice"]
    assert "simulated source" in problem["advice"]
    assert (report["sources"], report["board_w"], report["boundary"]) == ([], None, None)


def test_doctor_reports_a_vanished_rail(tmp_path: Path) -> None:
    chip = trees.nano_jp4(tmp_path)
    (chip / "in_power1_input").unlink()
    (problem,) = report_for(tmp_path)["problems"]
    assert problem["problem"] == "jetson_iio: no reading from POM_5V_GPU"
    assert "logs each file once" in problem["advice"]


def test_doctor_reports_throttling_with_advice(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    trees.write(tmp_path, "/sys/class/thermal/cooling_device1/cur_state", 2)
    (problem,) = report_for(tmp_path)["problems"]
    assert problem["problem"] == "throttling: cooling device cpu-balanced active (state 2 of 4)"
    assert "cooling" in problem["advice"]


def test_doctor_on_the_simulated_source(tmp_path: Path) -> None:
    report = report_for(tmp_path, "simulated")
    assert report["sources"][0]["kind"] == "simulated"
    assert report["board_w"] == pytest.approx(4.5, abs=0.5)
    assert report["thermal"]["max_c"] == pytest.approx(42.0, abs=0.5)


def test_text_report_shows_rails_heat_mode_and_problems(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    text = format_report(report_for(tmp_path))
    lines = text.splitlines()
    assert "  1. jetson_hwmon  /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1" in lines
    assert "     boundary: module input rail (VDD_IN)" in lines
    vdd_in = next(line for line in lines if line.strip().startswith("VDD_IN"))
    assert vdd_in.split() == ["VDD_IN", "5.01", "V", "0.952", "A", "4.77", "W", "(whole", "board)"]
    assert "     board power: 4.77 W" in lines
    assert "Power mode: 2 (MAXN_SUPER)" in lines
    assert "Throttling: none" in lines
    assert lines[-1] == "Problems: none"


def test_text_report_gives_advice_for_each_problem(tmp_path: Path) -> None:
    text = format_report(report_for(tmp_path))
    assert "  - no power sensor found" in text
    assert "    advice: check that the sensor's kernel driver is loaded" in text
    assert "Power sources: none" in text
    assert "Temperatures: none" in text
    assert "Power mode: unknown" in text


# --- power levels -----------------------------------------------------------------------------


def test_doctor_lists_the_levels_found_on_a_jetson_and_that_it_can_set_them(
    tmp_path: Path,
) -> None:
    trees.orin_nano_super(tmp_path)
    power = report_for(tmp_path)["power"]
    assert [level["name"] for level in power["levels"]] == ["L1", "L2", "L3", "L4", "L5", "L6"]
    assert power["levels"][0]["description"] == "gpu_max_freq 306 MHz, cpu_max_freq 115.2 MHz"
    assert [(k["id"], k["current"], k["cannot_set"]) for k in power["knobs"]] == [
        ("gpu_max_freq", "1020 MHz", None),
        ("cpu_max_freq", "1728 MHz", None),
    ]
    text = format_report(report_for(tmp_path))
    assert "Power levels (lowest draw first):" in text
    assert "  L6           gpu_max_freq 1020 MHz, cpu_max_freq 1728 MHz" in text


def test_doctor_says_which_knobs_it_cannot_set_and_how_to_allow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trees.orin_nano_super(tmp_path)
    # The unit's view: /sys mounted read-only (the tests run as root, so say it the kernel's way).
    monkeypatch.setattr("os.access", lambda path, mode: False)
    monkeypatch.setattr("os.statvfs", lambda path: types.SimpleNamespace(f_flag=os.ST_RDONLY))
    report = report_for(tmp_path)
    assert [k["cannot_set"] for k in report["power"]["knobs"]] == [
        "/sys/class/devfreq/17000000.gpu/max_freq: read-only filesystem "
        "(a systemd unit's ProtectSystem/ProtectKernelTunables)",
        "/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq: read-only filesystem "
        "(a systemd unit's ProtectSystem/ProtectKernelTunables); "
        "/sys/devices/system/cpu/cpufreq/policy4/scaling_max_freq: read-only filesystem "
        "(a systemd unit's ProtectSystem/ProtectKernelTunables)",
    ]
    problems = [p for p in report["problems"] if p["problem"].startswith("cannot set")]
    assert [p["problem"].split(":")[0] for p in problems] == [
        "cannot set gpu_max_freq",
        "cannot set cpu_max_freq",
    ]
    assert "power-dropin" in problems[0]["advice"]


def test_doctor_lists_nvml_power_limit_levels_without_setting_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml = FakePowerNvml(constraints=(100_000, 300_000), limit=300_000)
    nvml.install(monkeypatch)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    power = report_for(tmp_path, "nvml")["power"]
    assert [level["description"] for level in power["levels"]] == [
        "nvml_power_limit_gpu0 100 W",
        "nvml_power_limit_gpu0 167 W",
        "nvml_power_limit_gpu0 233 W",
        "nvml_power_limit_gpu0 300 W",
    ]
    assert power["knobs"][0]["current"] == "300 W"
    assert power["knobs"][0]["cannot_set"] == "NVML power limits can be set by root only"
    assert nvml.set_calls == []
    assert nvml.shutdowns == nvml.inits


class FakePowerNvml:
    """pynvml for one GPU's power limit: constraints and the limit are read; sets are recorded."""

    class NVMLError(Exception):
        pass

    def __init__(self, constraints: tuple[int, int], limit: int) -> None:
        self.constraints = constraints
        self.limit = limit
        self.set_calls: list[int] = []
        self.inits = 0
        self.shutdowns = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        module = types.ModuleType("pynvml")

        def init() -> None:
            self.inits += 1

        def shutdown() -> None:
            self.shutdowns += 1

        def not_supported(*_args: object) -> None:
            raise self.NVMLError("Not Supported")

        module.__dict__.update(
            NVMLError=self.NVMLError,
            nvmlInit=init,
            nvmlShutdown=shutdown,
            nvmlDeviceGetCount=lambda: 1,
            nvmlDeviceGetHandleByIndex=lambda i: "gpu0",
            nvmlDeviceGetName=lambda h: "NVIDIA H200",
            nvmlDeviceGetTotalEnergyConsumption=lambda h: 1000,
            nvmlDeviceGetPowerUsage=lambda h: 100_000,
            nvmlDeviceGetPowerManagementLimitConstraints=lambda h: self.constraints,
            nvmlDeviceGetPowerManagementLimit=lambda h: self.limit,
            nvmlDeviceSetPowerManagementLimit=lambda h, mw: self.set_calls.append(mw),
        )
        monkeypatch.setitem(sys.modules, "pynvml", module)
