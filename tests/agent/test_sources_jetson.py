"""Jetson INA3221 sources, read from fake trees shaped like each board's sysfs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from joulegate_agent.metering.sources import detect_sources
from joulegate_agent.metering.sources.base import RailReading
from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.jetson_hwmon import detect_jetson_hwmon
from joulegate_agent.metering.sources.jetson_iio import detect_jetson_iio
from joulegate_agent.metering.sysfs import SysfsRoot
from tests.agent.fakes import sysfs_trees as trees


def rails_w(rails: Sequence[RailReading]) -> dict[str, float | None]:
    return {r.name: r.power_w for r in rails}


# --- JetPack 4, IIO ----------------------------------------------------------------------------


def test_nano_jp4_rails_come_from_rail_name_files_in_mw(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    reading = detect_jetson_iio(SysfsRoot(tmp_path)).read()
    assert rails_w(reading.rails) == {
        label: pytest.approx(mw / 1000) for label, _, _, mw in trees.NANO_RAILS
    }


def test_nano_jp4_rails_carry_volts_and_amps(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    rail = detect_jetson_iio(SysfsRoot(tmp_path)).read().rails[0]
    assert (rail.voltage_v, rail.current_a) == (5.032, 0.506)


def test_nano_jp4_board_power_is_pom_5v_in(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    source = detect_jetson_iio(SysfsRoot(tmp_path))
    assert source.read().board_w == pytest.approx(2.545)
    assert source.info.boundary == "module input rail (POM_5V_IN)"
    assert [r.name for r in source.info.rails if r.whole_board] == ["POM_5V_IN"]


def test_nano_jp4_reads_power_file_not_trigger_file(tmp_path: Path) -> None:
    chip = trees.nano_jp4(tmp_path)
    assert (chip / "in_power0_trigger_input").read_text().strip() == "0"
    assert detect_jetson_iio(SysfsRoot(tmp_path)).read().board_w == pytest.approx(2.545)


def test_nano_jp4_notes_that_continuous_mode_refreshes_slowly(tmp_path: Path) -> None:
    trees.nano_jp4(tmp_path)
    (note,) = detect_jetson_iio(SysfsRoot(tmp_path)).info.notes
    assert "0.4 s" in note


def test_xavier_nx_jp4_board_power_is_vdd_in(tmp_path: Path) -> None:
    trees.xavier_nx_jp4(tmp_path)
    source = detect_jetson_iio(SysfsRoot(tmp_path))
    assert source.read().board_w == pytest.approx(5.553)
    assert source.info.boundary == "module input rail (VDD_IN)"
    assert source.info.path == "/sys/bus/i2c/drivers/ina3221x/7-0040/iio:device0"


def test_agx_xavier_board_power_is_sum_of_rails_across_two_chips(tmp_path: Path) -> None:
    trees.agx_xavier_jp4(tmp_path)
    source = detect_jetson_iio(SysfsRoot(tmp_path))
    expected = sum(mw for chip in trees.AGX_XAVIER_CHIPS for _, _, _, mw in chip) / 1000
    assert source.read().board_w == pytest.approx(expected)
    assert source.info.boundary == "sum of module rails"
    assert not any(r.whole_board for r in source.info.rails)
    assert [r.name for r in source.info.rails] == ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]


# --- JetPack 5/6, hwmon ------------------------------------------------------------------------


def test_orin_nano_rail_power_is_volts_times_amps(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    reading = detect_jetson_hwmon(SysfsRoot(tmp_path)).read()
    expected = dict(trees.hwmon_watts(trees.ORIN_NANO_RAILS))
    assert rails_w(reading.rails) == {name: pytest.approx(w) for name, w in expected.items()}
    assert (reading.rails[0].voltage_v, reading.rails[0].current_a) == (5.008, 0.952)


def test_orin_nano_board_power_is_vdd_in(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    assert source.read().board_w == pytest.approx(5.008 * 0.952)
    assert source.info.boundary == "module input rail (VDD_IN)"
    assert source.info.path == "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"


def test_orin_nano_ignores_shunt_and_sum_channels(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    rails = detect_jetson_hwmon(SysfsRoot(tmp_path)).info.rails
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]


def test_hwmon_notes_the_chips_own_averaging(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    assert detect_jetson_hwmon(SysfsRoot(tmp_path)).info.notes == (
        "1-0040: averages 512 samples, new value every 140 ms",
    )


def test_a_rail_labelled_vin_is_the_whole_board_as_on_jetson_thor(tmp_path: Path) -> None:
    rails = (("VDD_GPU", 19152, 40), ("VDD_CPU_SOC_MSS", 5000, 1302), ("VIN", 19152, 1393))
    trees.hwmon_chip(tmp_path, "2-0040", 1, rails)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    assert source.info.boundary == "module input rail (VIN)"
    assert source.read().board_w == pytest.approx(19.152 * 1.393)


def test_agx_orin_board_power_is_sum_of_rails_without_nc(tmp_path: Path) -> None:
    trees.agx_orin(tmp_path)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    connected = [
        w for chip in trees.AGX_ORIN_CHIPS for name, w in trees.hwmon_watts(chip) if name != "NC"
    ]
    assert source.read().board_w == pytest.approx(sum(connected))
    assert source.info.boundary == "sum of module rails"


def test_agx_orin_rails_come_from_both_chips_and_leave_out_nc(tmp_path: Path) -> None:
    trees.agx_orin(tmp_path)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    assert [r.name for r in source.info.rails] == [
        "VDD_GPU_SOC",
        "VDD_CPU_CV",
        "VIN_SYS_5V0",
        "VDDQ_VDD2_1V8AO",
    ]
    assert source.info.path.split(", ") == [
        "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1",
        "/sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon2",
    ]


def test_rail_names_follow_the_label_files(tmp_path: Path) -> None:
    chip = trees.orin_nano(tmp_path)
    (chip / "in2_label").write_text("VDD_SOMETHING_NEW\n")
    rails = detect_jetson_hwmon(SysfsRoot(tmp_path)).info.rails
    assert [r.name for r in rails] == ["VDD_IN", "VDD_SOMETHING_NEW", "VDD_SOC"]


def test_unlabelled_channel_is_not_a_rail(tmp_path: Path) -> None:
    chip = trees.orin_nano(tmp_path)
    (chip / "in3_label").unlink()
    rails = detect_jetson_hwmon(SysfsRoot(tmp_path)).info.rails
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV"]


def test_no_ina3221_is_not_detected(tmp_path: Path) -> None:
    with pytest.raises(NotDetected, match="ina3221"):
        detect_jetson_hwmon(SysfsRoot(tmp_path))
    with pytest.raises(NotDetected, match="ina3221x"):
        detect_jetson_iio(SysfsRoot(tmp_path))


def test_jetson_kind_finds_hwmon_on_jetpack_6_and_iio_on_jetpack_4(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path / "orin")
    trees.nano_jp4(tmp_path / "nano")
    assert [s.info.kind for s in detect_sources(tmp_path / "orin", "jetson")] == ["jetson_hwmon"]
    assert [s.info.kind for s in detect_sources(tmp_path / "nano", "jetson")] == ["jetson_iio"]


# --- sensors that go bad mid-run ---------------------------------------------------------------


def test_vanished_rail_file_makes_only_that_rail_unavailable(tmp_path: Path) -> None:
    chip = trees.orin_nano(tmp_path)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    (chip / "curr3_input").unlink()
    reading = source.read()
    assert rails_w(reading.rails)["VDD_SOC"] is None
    assert reading.board_w == pytest.approx(5.008 * 0.952)


def test_vanished_whole_board_rail_makes_board_power_unavailable(tmp_path: Path) -> None:
    chip = trees.orin_nano(tmp_path)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    (chip / "in1_input").unlink()
    reading = source.read()
    assert reading.board_w is None
    assert rails_w(reading.rails)["VDD_SOC"] == pytest.approx(5.008 * 0.285)


def test_sum_is_unavailable_when_any_rail_is_unreadable(tmp_path: Path) -> None:
    chips = trees.agx_orin(tmp_path)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    (chips[1] / "in2_input").write_text("garbage\n")
    assert source.read().board_w is None


def test_garbage_rail_file_is_logged_once_while_the_source_keeps_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chip = trees.orin_nano(tmp_path)
    source = detect_jetson_hwmon(SysfsRoot(tmp_path))
    (chip / "curr2_input").write_text("\x00\x7f?\n")
    with caplog.at_level(logging.INFO, logger="joulegate_agent.metering.sysfs"):
        readings = [source.read() for _ in range(5)]
    assert all(rails_w(r.rails)["VDD_CPU_GPU_CV"] is None for r in readings)
    assert all(r.board_w is not None for r in readings)
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr2_input: unreadable value"
    )


def test_recovered_rail_reads_again_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chip = trees.nano_jp4(tmp_path)
    source = detect_jetson_iio(SysfsRoot(tmp_path))
    power = chip / "in_power2_input"
    power.unlink()
    with caplog.at_level(logging.INFO, logger="joulegate_agent.metering.sysfs"):
        source.read()
        source.read()
        power.write_text("612\n")
        recovered = [source.read() for _ in range(3)]
    assert all(rails_w(r.rails)["POM_5V_CPU"] == pytest.approx(0.612) for r in recovered)
    assert [(r.levelname, r.getMessage().split(": ")[-1]) for r in caplog.records] == [
        ("WARNING", "No such file or directory"),
        ("INFO", "readable again"),
    ]
