"""Reading sysfs: values a sensor can show that are no reading at all."""

from __future__ import annotations

from pathlib import Path

from joulegate_agent.metering.sources.rails import Channel
from joulegate_agent.metering.sysfs import SysfsRoot


def test_sysfs_integers_wider_than_64_bits_are_garbage(tmp_path: Path) -> None:
    values = {"a": "9" * 400, "b": str(2**64), "c": str(-(2**63)), "d": str(2**64 - 1)}
    sysfs = SysfsRoot(tmp_path, reader=lambda path: values[path.name])
    assert [sysfs.read_int(tmp_path / name) for name in "abcd"] == [
        None,
        None,
        -(2**63),
        2**64 - 1,
    ]


def test_volts_times_amps_that_overflow_are_no_reading(tmp_path: Path) -> None:
    values = {"in": "1e300", "curr": "1e300"}
    sysfs = SysfsRoot(tmp_path, reader=lambda path: values[path.name])
    rail = Channel("x", voltage=tmp_path / "in", current=tmp_path / "curr").read(sysfs)
    assert rail.power_w is None
