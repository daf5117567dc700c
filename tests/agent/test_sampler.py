"""The sampler: keeps its rate, and survives a sensor that goes away and comes back."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest

from joulegate_agent.metering.meter import Meter
from joulegate_agent.metering.sampler import Sampler
from joulegate_agent.metering.sources import detect_sources
from joulegate_agent.metering.sources.base import PowerReading, SourceInfo
from tests.agent.fakes import sysfs_trees


def orin_sampler(tmp_path: Path) -> tuple[Sampler, Path]:
    chip = sysfs_trees.orin_nano(tmp_path)
    source = detect_sources(tmp_path, "jetson")[0]
    return Sampler(source, Meter(), rate_hz=10.0), chip


def test_board_power_is_fed_to_the_meter(tmp_path: Path) -> None:
    sampler, _ = orin_sampler(tmp_path)
    sampler.sample_once()
    assert sampler.meter.latest_w == pytest.approx(
        dict(sysfs_trees.hwmon_watts(sysfs_trees.ORIN_NANO_RAILS))["VDD_IN"]
    )


def test_a_vanished_board_rail_counts_no_energy_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sampler, chip = orin_sampler(tmp_path)
    sampler.sample_once()
    (chip / "in1_input").unlink()
    energy_before = sampler.meter.total_j
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            sampler.sample_once()
    assert sampler.meter.total_j == energy_before
    assert sampler.latest is not None
    assert sampler.latest.board_w is None
    assert sum("Board power is unavailable" in r.message for r in caplog.records) == 1


def test_sampling_resumes_when_the_rail_comes_back(tmp_path: Path) -> None:
    sampler, chip = orin_sampler(tmp_path)
    (chip / "in1_input").rename(chip / "in1_input.away")
    sampler.sample_once()
    (chip / "in1_input.away").rename(chip / "in1_input")
    sampler.sample_once()
    time.sleep(0.05)
    sampler.sample_once()
    assert sampler.meter.total_j > 0


def test_garbage_in_a_rail_file_does_not_stop_the_sampler(tmp_path: Path) -> None:
    sampler, chip = orin_sampler(tmp_path)
    (chip / "curr1_input").write_text("\x00garbage\n")
    sampler.sample_once()
    assert sampler.latest is not None
    assert sampler.latest.board_w is None


def test_the_thread_samples_at_about_its_rate_and_reports_its_worst_gap(tmp_path: Path) -> None:
    sampler, _ = orin_sampler(tmp_path)
    sampler.rate_hz = 50.0
    sampler.start()
    time.sleep(0.5)
    sampler.stop()
    assert 10 <= sampler.meter.samples <= 30
    assert 0.0 < sampler.worst_gap_s < 0.5


def test_rate_outside_the_supported_range_is_refused(tmp_path: Path) -> None:
    sampler, _ = orin_sampler(tmp_path)
    with pytest.raises(ValueError, match="sample rate"):
        Sampler(sampler.source, Meter(), rate_hz=0.0)


class Readings:
    """A power source that returns the readings it was given, one per read."""

    def __init__(self, readings: list[PowerReading]) -> None:
        self._readings = iter(readings)

    @property
    def info(self) -> SourceInfo:
        return SourceInfo("test", "-", "test", ())

    def read(self) -> PowerReading:
        return next(self._readings)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, 1e12])
def test_implausible_board_power_is_not_metered(bad: float, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    meter = Meter(clock=lambda: 0.0)
    ticks = iter([0.1, 0.2, 0.3, 0.4])
    source = Readings([PowerReading(5.0), PowerReading(bad), PowerReading(5.0), PowerReading(5.0)])
    sampler = Sampler(source, meter, clock=lambda: next(ticks))
    sampler.sample_once()
    sampler.sample_once()
    assert sampler.latest is not None
    assert sampler.latest.board_w is None  # not shown as the board's power either
    sampler.sample_once()
    sampler.sample_once()
    assert math.isclose(meter.total_j, 0.5)  # only the last segment, 5 W for 0.1 s
    assert "unavailable" in caplog.text


def test_an_energy_counter_that_runs_back_is_not_integrated() -> None:
    meter = Meter(clock=lambda: 0.0)
    ticks = iter([1.0, 2.0, 3.0])
    source = Readings(
        [
            PowerReading(5.0, energy_j=100.0),
            PowerReading(5.0, energy_j=50.0),  # reset or garbage: the watts are used instead
            PowerReading(5.0, energy_j=55.0),
        ]
    )
    sampler = Sampler(source, meter, clock=lambda: next(ticks))
    for _ in range(3):
        sampler.sample_once()
    assert math.isclose(meter.total_j, 10.0)
