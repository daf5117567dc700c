"""Property tests for every reader of the box's own files: power rails, RAPL, heat, power mode.

Fake trees shaped like real boards (tests/agent/fakes/sysfs_trees.py) give the files;
hypothesis then puts anything in them: garbage bytes, text that is not UTF-8, NaN and infinities,
numbers far beyond 64 bits, Unicode digits, empty files, and reads that fail (permission denied,
file gone, I/O error). Whatever they hold, a read must not raise, and what comes out must be a
number the agent can use: finite, and energy that never runs backwards. tegrastats' text, the
fallback source, has its own properties in test_properties_tegrastats.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from joulegate_agent.metering.meter import Meter
from joulegate_agent.metering.sampler import Sampler
from joulegate_agent.metering.sources import probe_sources
from joulegate_agent.metering.sources.base import PowerReading, SourceInfo
from joulegate_agent.metering.sysfs import SysfsRoot
from joulegate_agent.metering.thermal import ThermalReader
from tests.agent.fakes import sysfs_trees
from tests.reliability.harness import property_settings

Value = bytes | OSError

SPECIAL = [
    b"",
    b"\n",
    b"nan\n",
    b"NaN",
    b"inf",
    b"-inf\n",
    b"1e400",
    b"-1e400",
    b"9" * 400,
    b"-" + b"9" * 30,
    b"18446744073709551616",
    b"1_000",
    b"0x1f",
    b" 42 \n",
    "\u0663\u0664".encode(),  # Arabic-Indic digits: int() reads them
    b"\xff\xfe\x00",
    b"pmode:99999999999999999999999",
    b"< POWER_MODEL ID=7 NAME=>",
]
ERRORS: list[OSError] = [
    PermissionError(13, "Permission denied"),
    FileNotFoundError(2, "No such file or directory"),
    OSError(5, "Input/output error"),
    OSError(61, "No data available"),
]
VALUES: st.SearchStrategy[Value] = st.one_of(
    st.binary(max_size=24),
    st.integers().map(lambda n: f"{n}\n".encode()),
    st.floats().map(lambda f: f"{f!r}\n".encode()),
    st.text(max_size=24).map(str.encode),
    st.sampled_from(SPECIAL),
    st.sampled_from(ERRORS),
)
SETTINGS = property_settings()


class HostileFiles:
    """A SysfsRoot reader: the tree's real files, except those given hostile contents."""

    def __init__(self) -> None:
        self.values: dict[Path, Value] = {}

    def __call__(self, path: Path) -> str:
        value = self.values.get(path)
        if value is None:
            return path.read_bytes().decode()
        if isinstance(value, OSError):
            raise value
        return value.decode()  # may raise UnicodeDecodeError, as the real reader does


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


BOARDS: dict[str, Callable[[Path], object]] = {
    "orin_nano": sysfs_trees.orin_nano,
    "agx_orin": sysfs_trees.agx_orin,
    "nano_jp4": sysfs_trees.nano_jp4,
    "agx_xavier_jp4": sysfs_trees.agx_xavier_jp4,
    "generic_hwmon": sysfs_trees.generic_hwmon,
    "volt_curr_hwmon": sysfs_trees.volt_curr_hwmon,
    "battery": lambda root: sysfs_trees.battery(root, power_now=True),
    "battery_v_i": lambda root: sysfs_trees.battery(root, current_sign=-1),
    "rapl": lambda root: sysfs_trees.rapl(root, 5_000_000, psys_uj=9_000_000),
}


def finite_or_none(value: float | None) -> bool:
    return value is None or math.isfinite(value)


class FixedSource:
    """A power source that returns the readings a test gives it."""

    def __init__(self) -> None:
        self.reading = PowerReading(board_w=None)

    @property
    def info(self) -> SourceInfo:
        return SourceInfo("test", "-", "test", ())

    def read(self) -> PowerReading:
        return self.reading

    def close(self) -> None:
        pass


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_power_sources_survive_any_file_contents(board: str, tmp_path: Path) -> None:
    BOARDS[board](tmp_path)
    files = files_of(tmp_path)
    hostile = HostileFiles()
    sysfs = SysfsRoot(tmp_path, reader=hostile)
    found, _reasons = probe_sources(sysfs, "auto")
    assert found, board
    source = found[0]

    @SETTINGS
    @given(st.lists(st.dictionaries(st.sampled_from(files), VALUES, max_size=8), max_size=4))
    def reads(rounds: list[dict[Path, Value]]) -> None:
        meter = Meter(clock=lambda: 0.0)
        sampler = Sampler(source, meter, rate_hz=10.0, clock=iter(range(1, 100)).__next__)
        energies = [meter.total_j]
        for values in rounds:
            hostile.values = values
            reading = source.read()
            assert finite_or_none(reading.board_w), reading
            assert finite_or_none(reading.energy_j), reading
            for rail in reading.rails:
                assert finite_or_none(rail.power_w), rail
                assert finite_or_none(rail.voltage_v), rail
                assert finite_or_none(rail.current_a), rail
            sampler.sample_once()
            energies.append(meter.total_j)
        hostile.values = {}
        assert all(math.isfinite(e) for e in energies), energies
        assert energies == sorted(energies), energies  # energy never runs backwards
        assert finite_or_none(meter.latest_w)

    reads()


@pytest.mark.parametrize("board", ["orin_nano", "nano_jp4", "agx_orin"])
def test_thermal_reader_survives_any_file_contents(board: str, tmp_path: Path) -> None:
    BOARDS[board](tmp_path)
    files = files_of(tmp_path)
    hostile = HostileFiles()
    sysfs = SysfsRoot(tmp_path, reader=hostile)

    @SETTINGS
    @given(st.dictionaries(st.sampled_from(files), VALUES, max_size=10), st.booleans())
    def reads(values: dict[Path, Value], under_load: bool) -> None:
        hostile.values = values
        reader = ThermalReader(sysfs)  # the nvpmodel config is read here
        for _ in range(2):  # the second read compares event counters with the first
            reading = reader.read(under_load=under_load)
            assert all(math.isfinite(t) for t in reading.zones.values()), reading
            assert finite_or_none(reading.max_c)
            assert all(isinstance(reason, str) for reason in reading.throttling)
            mode = reading.power_mode
            assert mode is None or (isinstance(mode.id, int) and isinstance(mode.name, str))
        hostile.values = {}

    reads()


@SETTINGS
@given(st.text(max_size=40), st.sampled_from(["int", "float", "text"]))
def test_sysfs_values_parse_or_give_none(text: str, kind: str) -> None:
    sysfs = SysfsRoot(Path("/nonexistent"), reader=lambda _path: text)
    path = Path("/nonexistent/value")
    if kind == "int":
        number = sysfs.read_int(path)
        assert number is None or -(2**63) <= number < 2**64
    elif kind == "float":
        value = sysfs.read_float(path)
        assert value is None or math.isfinite(value)
    else:
        assert sysfs.read_text(path) == text.strip()


READINGS = st.builds(
    PowerReading,
    board_w=st.one_of(st.none(), st.floats()),
    energy_j=st.one_of(st.none(), st.floats()),
)


@SETTINGS
@given(st.lists(READINGS, min_size=1, max_size=30), st.integers(0, 29), st.integers(0, 29))
def test_meter_keeps_finite_growing_energy_whatever_a_source_says(
    readings: list[PowerReading], opened: int, closed: int
) -> None:
    """Whatever a source returns (NaN, infinities, negative watts, a counter that jumps or
    runs backwards), the lifetime energy stays finite and never decreases, and a window's energy
    is finite and not negative."""
    meter = Meter(clock=lambda: 0.0)
    source = FixedSource()
    ticks = iter(float(t) * 0.1 for t in range(1, 1000))
    sampler = Sampler(source, meter, rate_hz=10.0, clock=lambda: next(ticks))
    start, end = sorted((opened, closed))
    key = None
    window = None
    totals = [meter.total_j]
    for index, reading in enumerate(readings):
        if index == start:
            key = meter.open_window(start=index * 0.1)
        source.reading = reading
        sampler.sample_once()
        totals.append(meter.total_j)
        if index == end and key is not None:
            window = meter.end_window(key)
    assert all(math.isfinite(t) for t in totals), totals
    assert totals == sorted(totals), totals
    if window is not None and window.result is not None:
        result = window.result
        assert math.isfinite(result.energy_j)
        assert result.energy_j >= 0
        assert result.marginal_j is None or result.marginal_j >= 0
        assert finite_or_none(result.avg_w)
        assert finite_or_none(result.peak_w)
