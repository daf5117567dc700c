"""Temperatures, throttling reasons and power mode, read from fake Jetson trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulegate_agent.metering.thermal import PowerMode, ThermalReader
from joulegate_agent.simulation.board import IDLE_C, SimulatedOrinNano
from tests.agent.fakes import sysfs_trees as trees


def test_orin_zones_are_in_celsius_without_switched_off_sensors(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    zones = ThermalReader(tmp_path).read().zones
    assert zones == {
        kind: milli_c / 1000 for kind, milli_c in trees.ORIN_ZONES.items() if milli_c != -256000
    }
    assert "cv0-thermal" not in zones


def test_nano_skips_the_dummy_pmic_die_zone(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    zones = ThermalReader(tmp_path).read().zones
    assert "PMIC-Die" not in zones
    assert zones["CPU-therm"] == 38.5


def test_max_is_the_hottest_zone(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    assert ThermalReader(tmp_path).read().max_c == 47.531


def test_box_without_thermal_zones_has_no_max(tmp_path: Path) -> None:
    reading = ThermalReader(tmp_path).read()
    assert (reading.zones, reading.max_c, reading.throttling, reading.power_mode) == (
        {},
        None,
        (),
        None,
    )


def test_spinning_fan_is_not_throttling(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)  # its pwm-fan is at state 2 of 3
    assert ThermalReader(tmp_path).read(under_load=True).throttling == ()


def test_active_cooling_device_is_a_throttling_reason(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    trees.write(tmp_path, "/sys/class/thermal/cooling_device2/cur_state", 3)
    assert ThermalReader(tmp_path).read().throttling == (
        "cooling device gpu-balanced active (state 3 of 4)",
    )


def test_cpu_clock_well_below_its_limit_under_load_is_throttling(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.write(tmp_path, "/sys/devices/system/cpu/cpu4/cpufreq/scaling_cur_freq", 729600)
    trees.write(tmp_path, "/sys/devices/system/cpu/cpu5/cpufreq/scaling_cur_freq", 1113600)
    assert ThermalReader(tmp_path).read(under_load=True).throttling == (
        "CPU clock 729 MHz, well below its 1728 MHz limit under load",
    )


def test_cpu_clock_slightly_below_its_limit_is_not_throttling(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.write(tmp_path, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", 1510400)
    assert ThermalReader(tmp_path).read(under_load=True).throttling == ()


def test_low_clocks_while_idle_are_not_throttling(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.write(tmp_path, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", 115200)
    trees.write(tmp_path, "/sys/class/devfreq/17000000.gpu/cur_freq", 306000000)
    assert ThermalReader(tmp_path).read(under_load=False).throttling == ()


def test_gpu_clock_below_its_limit_under_load_is_throttling(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    trees.write(tmp_path, "/sys/class/devfreq/17000000.gpu/cur_freq", 612000000)
    assert ThermalReader(tmp_path).read(under_load=True).throttling == (
        "GPU clock 612 MHz, below its 1020 MHz limit under load",
    )


def test_gpu_devfreq_is_found_by_chip_name_too(tmp_path: Path) -> None:
    trees.agx_orin(tmp_path)  # 17000000.ga10b
    trees.write(tmp_path, "/sys/class/devfreq/17000000.ga10b/cur_freq", 420750000)
    assert ThermalReader(tmp_path).read(under_load=True).throttling == (
        "GPU clock 420 MHz, below its 1300 MHz limit under load",
    )


def test_under_voltage_events_since_the_last_read_are_reported(tmp_path: Path) -> None:
    oc = trees.soctherm_oc(tmp_path)
    reader = ThermalReader(tmp_path)
    reader.read()
    (oc / "oc1_event_cnt").write_text("3\n")
    assert reader.read().throttling == ("under-voltage events (oc1_event_cnt +3)",)
    assert reader.read().throttling == ()


def test_over_current_events_are_reported(tmp_path: Path) -> None:
    oc = trees.soctherm_oc(tmp_path)
    reader = ThermalReader(tmp_path)
    reader.read()
    (oc / "oc3_event_cnt").write_text("1\n")
    assert reader.read().throttling == ("over-current events (oc3_event_cnt +1)",)


def test_events_counted_before_the_first_read_are_not_reported(tmp_path: Path) -> None:
    oc = trees.soctherm_oc(tmp_path)
    (oc / "oc1_event_cnt").write_text("12\n")
    assert ThermalReader(tmp_path).read().throttling == ()


def test_power_mode_comes_from_nvpmodel_status_and_its_config(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    assert ThermalReader(tmp_path).read().power_mode == PowerMode(2, "MAXN_SUPER")


def test_power_mode_change_is_seen_on_the_next_read(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    reader = ThermalReader(tmp_path)
    assert reader.read().power_mode == PowerMode(0, "MAXN")
    trees.write(tmp_path, "/var/lib/nvpmodel/status", "pmode:0001")
    assert reader.read().power_mode == PowerMode(1, "5W")


def test_power_mode_without_a_name_in_the_config_gets_its_number(tmp_path: Path) -> None:
    trees.write(tmp_path, "/var/lib/nvpmodel/status", "pmode:0004")
    assert ThermalReader(tmp_path).read().power_mode == PowerMode(4, "mode 4")


def test_a_board_with_nvpmodel_has_power_modes_while_its_status_file_is_rewritten(
    tmp_path: Path,
) -> None:
    trees.orin_nano(tmp_path)
    (tmp_path / "var/lib/nvpmodel/status").unlink()  # nvpmodel replacing it at this moment
    reader = ThermalReader(tmp_path)
    assert (reader.read().power_mode, reader.power_modes) == (None, True)


def test_a_box_without_nvpmodel_has_no_power_modes(tmp_path: Path) -> None:
    trees.generic_hwmon(tmp_path)
    assert ThermalReader(tmp_path).power_modes is False


def test_the_simulated_board_has_no_power_modes(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    board = SimulatedOrinNano(load=lambda: 0, clock=trees.Clock(), seed=1)
    assert ThermalReader(tmp_path, simulated=board).power_modes is False


def test_simulated_reader_reports_the_simulated_temperature(tmp_path: Path) -> None:
    clock = trees.Clock()
    board = SimulatedOrinNano(load=lambda: 0, clock=clock, seed=1)
    reading = ThermalReader(tmp_path, simulated=board).read(under_load=True)
    assert reading.max_c == pytest.approx(IDLE_C)
    assert set(reading.zones) == {"cpu-thermal", "soc0-thermal", "gpu-thermal"}
    assert (reading.throttling, reading.power_mode) == ((), None)
