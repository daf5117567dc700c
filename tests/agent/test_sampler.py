"""The sampler: keeps its rate, and survives a sensor that goes away and comes back."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from joulegate_agent.metering.meter import Meter
from joulegate_agent.metering.sampler import Sampler
from joulegate_agent.metering.sources import detect_sources
from tests.agent import sysfs_trees


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
