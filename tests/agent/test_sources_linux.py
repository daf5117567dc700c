"""Other Linux boxes' power sources (hwmon, power_supply, RAPL, NVML), detection, calibration."""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from joulegate_agent.metering.sources import CalibratedSource, NoPowerSourceError, detect_sources
from joulegate_agent.metering.sources.base import CALIBRATED_TO_WALL, Calibration
from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.hwmon import detect_hwmon
from joulegate_agent.metering.sources.nvml import detect_nvml
from joulegate_agent.metering.sources.power_supply import detect_power_supply
from joulegate_agent.metering.sources.rapl import detect_rapl
from joulegate_agent.metering.sysfs import SysfsRoot
from tests.agent.fakes import sysfs_trees as trees

# --- SysfsRoot ---------------------------------------------------------------------------------


def test_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert SysfsRoot(tmp_path).read_int(tmp_path / "sys/nothing") is None


def test_non_finite_number_is_garbage(tmp_path: Path) -> None:
    assert SysfsRoot(tmp_path).read_float(trees.write(tmp_path, "/sys/x", "nan")) is None


def test_box_paths_map_under_the_root(tmp_path: Path) -> None:
    sysfs = SysfsRoot(tmp_path)
    assert sysfs.path("/sys/class/hwmon") == tmp_path / "sys/class/hwmon"
    assert sysfs.display(tmp_path / "sys/class/hwmon") == "/sys/class/hwmon"


def test_glob_puts_hwmon10_after_hwmon2(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        trees.write(tmp_path, f"/sys/class/hwmon/hwmon{n}/name", "x")
    names = [p.name for p in SysfsRoot(tmp_path).glob("/sys/class/hwmon/hwmon*")]
    assert names == ["hwmon1", "hwmon2", "hwmon10"]


def denying(*names: str) -> Callable[[Path], str]:
    """A reader that refuses some files, as the kernel does for a root-only file and a user."""

    def read(path: Path) -> str:
        if path.name in names:
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text(encoding="utf-8")

    return read


def test_permission_denied_is_remembered_until_the_file_is_readable_again(tmp_path: Path) -> None:
    energy = trees.write(tmp_path, "/sys/class/powercap/intel-rapl:0/energy_uj", 5)
    refused = SysfsRoot(tmp_path, reader=denying("energy_uj"))
    assert refused.read_int(energy) is None
    assert refused.denied == ("/sys/class/powercap/intel-rapl:0/energy_uj",)
    allowed = SysfsRoot(tmp_path)
    assert allowed.read_int(energy) == 5
    assert allowed.denied == ()


# --- generic hwmon -----------------------------------------------------------------------------


def test_generic_hwmon_reads_power_input_in_microwatts(tmp_path: Path) -> None:
    trees.generic_hwmon(tmp_path)
    source = detect_hwmon(SysfsRoot(tmp_path))
    reading = source.read()
    assert reading.board_w == pytest.approx(trees.INA219_UW / 1e6)
    assert [r.name for r in reading.rails] == ["ina219 power1"]
    assert source.info.boundary == "hwmon sensor (ina219 power1)"
    assert source.info.path == "/sys/class/hwmon/hwmon2"


def test_generic_hwmon_pairs_voltage_and_current_without_a_power_file(tmp_path: Path) -> None:
    trees.volt_curr_hwmon(tmp_path)
    reading = detect_hwmon(SysfsRoot(tmp_path)).read()
    mv, ma = trees.LTC4151
    assert [r.name for r in reading.rails] == ["ltc4151 in1"]
    assert reading.board_w == pytest.approx(mv * ma / 1e6)


def test_generic_hwmon_leaves_jetson_ina3221_and_soctherm_oc_alone(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    with pytest.raises(NotDetected):
        detect_hwmon(SysfsRoot(tmp_path))


# --- power_supply ------------------------------------------------------------------------------


def test_battery_power_is_microvolts_times_microamps(tmp_path: Path) -> None:
    trees.battery(tmp_path)
    source = detect_power_supply(SysfsRoot(tmp_path))
    rail = source.read().rails[0]
    assert (rail.name, rail.voltage_v, rail.current_a) == ("BAT0", 7.8, 1.2)
    assert source.read().board_w == pytest.approx(7.8 * 1.2)
    assert source.info.boundary == "power supply (BAT0)"


def test_negative_discharge_current_still_gives_positive_power(tmp_path: Path) -> None:
    trees.battery(tmp_path, current_sign=-1)
    assert detect_power_supply(SysfsRoot(tmp_path)).read().board_w == pytest.approx(7.8 * 1.2)


def test_power_now_is_used_where_the_driver_has_it(tmp_path: Path) -> None:
    trees.battery(tmp_path, power_now=True)
    reading = detect_power_supply(SysfsRoot(tmp_path)).read()
    assert reading.board_w == pytest.approx(trees.BATTERY_UW / 1e6)


def test_supply_without_readings_is_not_a_rail(tmp_path: Path) -> None:
    trees.battery(tmp_path)
    assert [r.name for r in detect_power_supply(SysfsRoot(tmp_path)).info.rails] == ["BAT0"]


# --- RAPL --------------------------------------------------------------------------------------


def test_rapl_uses_top_level_zones_only(tmp_path: Path) -> None:
    trees.rapl(tmp_path, 10_000_000)
    source = detect_rapl(SysfsRoot(tmp_path), trees.Clock())
    assert [r.name for r in source.info.rails] == ["package-0"]
    assert source.info.path == "/sys/class/powercap/intel-rapl:0"
    assert source.info.boundary == "sum of CPU packages (RAPL)"


def test_rapl_power_is_the_counter_change_over_time(tmp_path: Path) -> None:
    package = trees.rapl(tmp_path, 10_000_000)
    clock = trees.Clock()
    source = detect_rapl(SysfsRoot(tmp_path), clock)
    (package / "energy_uj").write_text("22500000\n")
    clock.t += 2.0
    reading = source.read()
    assert reading.board_w == pytest.approx(6.25)
    assert reading.energy_j == pytest.approx(12.5)


def test_rapl_energy_stays_monotonic_across_wrap(tmp_path: Path) -> None:
    package = trees.rapl(tmp_path, trees.RAPL_MAX_UJ - 1_000_000)
    clock = trees.Clock()
    source = detect_rapl(SysfsRoot(tmp_path), clock)
    energies = []
    for raw in (trees.RAPL_MAX_UJ - 400_000, 2_000_000, 5_000_000):
        (package / "energy_uj").write_text(f"{raw}\n")
        clock.t += 1.0
        energies.append(source.read().energy_j)
    assert energies == [pytest.approx(0.6), pytest.approx(3.0), pytest.approx(6.0)]


def test_rapl_power_across_wrap_is_positive(tmp_path: Path) -> None:
    package = trees.rapl(tmp_path, trees.RAPL_MAX_UJ - 1_000_000)
    clock = trees.Clock()
    source = detect_rapl(SysfsRoot(tmp_path), clock)
    (package / "energy_uj").write_text("2000000\n")
    clock.t += 0.5
    assert source.read().board_w == pytest.approx(6.0)


def test_rapl_psys_is_the_whole_platform_when_present(tmp_path: Path) -> None:
    trees.rapl(tmp_path, 10_000_000, psys_uj=50_000_000)
    source = detect_rapl(SysfsRoot(tmp_path), trees.Clock())
    assert [(r.name, r.whole_board) for r in source.info.rails] == [
        ("package-0", False),
        ("psys", True),
    ]
    assert source.info.boundary == "platform (RAPL psys)"


def test_rapl_board_follows_psys_only(tmp_path: Path) -> None:
    package = trees.rapl(tmp_path, 10_000_000, psys_uj=50_000_000)
    clock = trees.Clock()
    source = detect_rapl(SysfsRoot(tmp_path), clock)
    (package / "energy_uj").write_text("13000000\n")
    (package.parent / "intel-rapl:1" / "energy_uj").write_text("58000000\n")
    clock.t += 1.0
    assert source.read().board_w == pytest.approx(8.0)


def test_unreadable_rapl_counter_gives_no_reading_then_resumes(tmp_path: Path) -> None:
    package = trees.rapl(tmp_path, 10_000_000)
    clock = trees.Clock()
    source = detect_rapl(SysfsRoot(tmp_path), clock)
    (package / "energy_uj").unlink()
    clock.t += 1.0
    gap = source.read()
    (package / "energy_uj").write_text("14000000\n")
    clock.t += 1.0
    resumed = source.read()
    assert (gap.board_w, gap.energy_j) == (None, None)
    assert (resumed.board_w, resumed.energy_j) == (2.0, 4.0)


# --- NVML, through a stand-in pynvml -----------------------------------------------------------


class NVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    name: str | bytes
    energy_mj: int | None  # None: older than Volta, no energy counter
    power_mw: int = 0
    broken: bool = False


@dataclass
class FakeNvml:
    gpus: list[FakeGpu]
    driver_loaded: bool = True
    shutdowns: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        module = types.ModuleType("pynvml")
        module.__dict__.update(
            NVMLError=NVMLError,
            nvmlInit=self.init,
            nvmlShutdown=self.shutdown,
            nvmlDeviceGetCount=lambda: len(self.gpus),
            nvmlDeviceGetHandleByIndex=lambda i: self.gpus[i],
            nvmlDeviceGetName=lambda gpu: gpu.name,
            nvmlDeviceGetTotalEnergyConsumption=self.energy,
            nvmlDeviceGetPowerUsage=self.power,
        )
        monkeypatch.setitem(sys.modules, "pynvml", module)

    def init(self) -> None:
        if not self.driver_loaded:
            raise NVMLError("Driver Not Loaded")

    def shutdown(self) -> None:
        self.shutdowns += 1

    def energy(self, gpu: FakeGpu) -> int:
        if gpu.energy_mj is None or gpu.broken:
            raise NVMLError("Not Supported" if gpu.energy_mj is None else "GPU is lost")
        return gpu.energy_mj

    def power(self, gpu: FakeGpu) -> int:
        if gpu.broken:
            raise NVMLError("GPU is lost")
        return gpu.power_mw


def test_nvml_without_nvidia_ml_py_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(NotDetected, match="nvidia-ml-py is not installed"):
        detect_nvml()


def test_nvml_without_driver_is_not_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([FakeGpu("NVIDIA RTX A2000", 1000)], driver_loaded=False).install(monkeypatch)
    with pytest.raises(NotDetected, match="Driver Not Loaded"):
        detect_nvml()


def test_nvml_integrates_the_energy_counter_on_volta_and_newer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpu = FakeGpu("NVIDIA GeForce RTX 4090", energy_mj=5_000_000)
    FakeNvml([gpu]).install(monkeypatch)
    clock = trees.Clock()
    source = detect_nvml(clock)
    gpu.energy_mj = 5_030_000
    clock.t += 0.1
    reading = source.read()
    assert reading.energy_j == pytest.approx(5030.0)
    assert reading.board_w == pytest.approx(300.0)
    assert [r.name for r in reading.rails] == ["GPU0 NVIDIA GeForce RTX 4090"]
    assert source.info.boundary == "GPU board (NVML)"


def test_nvml_times_its_counters_step_and_never_reports_a_power_from_less(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An H200's counter moves every ~100 ms: a few ms after the start read it gave 2,302 W."""
    gpu = FakeGpu("NVIDIA H200", energy_mj=0)
    FakeNvml([gpu]).install(monkeypatch)
    clock = trees.Clock()

    def sleep(seconds: float) -> None:
        clock.t += seconds
        gpu.energy_mj = round(124_000 * (clock.t - clock.t % 0.1 - 1000.0))  # 124 W, 100-ms steps

    source = detect_nvml(clock, sleep)
    assert source.info.resolution_s == pytest.approx(0.1, abs=0.003)
    watts = []
    for _ in range(20):
        sleep(0.004)
        watts.append(source.read().board_w)
    assert all(w == pytest.approx(124.0, rel=0.5) for w in watts), watts


def test_nvml_reads_power_on_older_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([FakeGpu(b"Tesla P4", energy_mj=None, power_mw=23_500)]).install(monkeypatch)
    reading = detect_nvml().read()
    assert (reading.board_w, reading.energy_j) == (23.5, None)
    assert reading.rails[0].name == "GPU0 Tesla P4"


def test_nvml_sums_several_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([FakeGpu("A", None, 70_000), FakeGpu("B", None, 30_000)]).install(monkeypatch)
    source = detect_nvml()
    assert source.read().board_w == pytest.approx(100.0)
    assert source.info.boundary == "sum of GPU boards (NVML)"


def test_nvml_failing_gpu_makes_its_rail_and_the_board_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpu = FakeGpu("A", None, 70_000)
    FakeNvml([gpu]).install(monkeypatch)
    source = detect_nvml()
    gpu.broken = True
    reading = source.read()
    assert (reading.board_w, reading.rails[0].power_w) == (None, None)


def test_nvml_close_shuts_nvml_down(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml([FakeGpu("A", None, 70_000)])
    nvml.install(monkeypatch)
    detect_nvml().close()
    assert nvml.shutdowns == 1


# --- detection and calibration -----------------------------------------------------------------


@pytest.mark.usefixtures("no_pynvml")
def test_auto_puts_jetson_before_other_sources(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.battery(tmp_path)
    trees.rapl(tmp_path, 1)
    kinds = [s.info.kind for s in detect_sources(tmp_path)]
    assert kinds == ["jetson_hwmon", "power_supply", "rapl"]


@pytest.mark.usefixtures("no_pynvml")
def test_auto_puts_hwmon_before_power_supply_before_rapl(tmp_path: Path) -> None:
    trees.rapl(tmp_path, 1)
    trees.battery(tmp_path)
    trees.generic_hwmon(tmp_path)
    kinds = [s.info.kind for s in detect_sources(tmp_path)]
    assert kinds == ["hwmon", "power_supply", "rapl"]


def test_auto_finds_nvml_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([FakeGpu("A", None, 1000)]).install(monkeypatch)
    trees.rapl(tmp_path, 1)
    assert [s.info.kind for s in detect_sources(tmp_path)] == ["rapl", "nvml"]


@pytest.mark.usefixtures("no_pynvml")
def test_a_named_kind_only_tries_that_kind(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.battery(tmp_path)
    assert [s.info.kind for s in detect_sources(tmp_path, "power_supply")] == ["power_supply"]


@pytest.mark.usefixtures("no_pynvml")
def test_no_source_raises_with_what_was_checked_for_each_kind(tmp_path: Path) -> None:
    with pytest.raises(NoPowerSourceError) as caught:
        detect_sources(tmp_path)
    assert list(caught.value.reasons) == [
        "jetson_hwmon",
        "jetson_iio",
        "hwmon",
        "power_supply",
        "rapl",
        "nvml",
        "tegrastats",
    ]
    assert "nvidia-ml-py is not installed" in str(caught.value)
    assert "simulated source" in str(caught.value)


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown source kind 'ina'"):
        detect_sources(tmp_path, "ina")


def test_simulated_kind_needs_no_hardware(tmp_path: Path) -> None:
    (source,) = detect_sources(tmp_path, "simulated", load=lambda: 1)
    assert source.info.kind == "simulated"


@pytest.mark.usefixtures("no_pynvml")
def test_calibration_applies_to_the_board_meter_and_names_the_wall(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.battery(tmp_path)
    board, other = detect_sources(tmp_path, calibration=Calibration(gain=1.2, offset_w=1.5))
    assert board.info.boundary == CALIBRATED_TO_WALL
    assert board.read().board_w == pytest.approx(5.008 * 0.952 * 1.2 + 1.5)
    assert "calibrated from module input rail (VDD_IN)" in board.info.notes[-1]
    assert other.info.boundary == "power supply (BAT0)"


def test_identity_calibration_keeps_the_sensor_boundary(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    (source,) = detect_sources(tmp_path, "jetson", calibration=Calibration())
    assert source.info.boundary == "module input rail (VDD_IN)"


def test_calibrated_energy_counter_adds_offset_times_elapsed_time(tmp_path: Path) -> None:
    package = trees.rapl(tmp_path, 10_000_000)
    clock = trees.Clock()
    raw = detect_rapl(SysfsRoot(tmp_path), clock)
    source = CalibratedSource(raw, Calibration(gain=2.0, offset_w=3.0), clock)
    clock.t += 1.0
    source.read()
    (package / "energy_uj").write_text("14000000\n")
    clock.t += 2.0
    reading = source.read()
    assert reading.energy_j == pytest.approx(2.0 * 4.0 + 3.0 * 2.0)
    assert reading.board_w == pytest.approx(2.0 * 2.0 + 3.0)


def test_rapl_ignores_a_counter_value_outside_its_range(tmp_path: Path) -> None:
    trees.rapl(tmp_path, 1_000_000)
    script: list[str] = []  # what energy_uj reads after detection (which reads it to time its step)

    def reader(path: Path) -> str:
        if path.name == "energy_uj":
            return script.pop(0) if script else "1000000"
        return path.read_text()

    ticks = itertools.count(1.0)
    source = detect_rapl(
        SysfsRoot(tmp_path, reader=reader), clock=lambda: next(ticks), sleep=lambda _s: None
    )
    script += ["-5", str(trees.RAPL_MAX_UJ + 1), "2000000"]
    energies = [source.read().energy_j for _ in range(3)]
    assert energies == [None, None, 1.0]  # 1 J counted, not a wrap of 262 kJ
