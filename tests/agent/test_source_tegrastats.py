"""The tegrastats fallback: its three spellings parsed, and a fake `tegrastats` run as the real
one would be (a script at /usr/bin/tegrastats under the fake root, printing at its interval)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from joulegate_agent.cli.doctor import build_report
from joulegate_agent.metering.sources import detect_sources, probe_sources
from joulegate_agent.metering.sources.base import MODULE_INPUT, SUM_OF_RAILS
from joulegate_agent.metering.sources.errors import NotDetected
from joulegate_agent.metering.sources.tegrastats import (
    STALE_AFTER_INTERVALS,
    TegrastatsSource,
    detect_tegrastats,
    parse_line,
)
from joulegate_agent.metering.sysfs import SysfsRoot
from tests.agent.fakes import sysfs_trees as trees

NANO_JP4 = (
    "RAM 1862/3964MB (lfb 25x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [12%@1479,4%@1479,off,off] EMC_FREQ 4%@1600 GR3D_FREQ 0%@76 APE 25 PLL@36.5C "
    "CPU@38C PMIC@50C GPU@36.5C AO@47.5C thermal@37.25C POM_5V_IN 2545/2547 POM_5V_GPU 0/0 "
    "POM_5V_CPU 549/529"
)
ORIN_JP6 = (
    "11-26-2026 12:00:01 RAM 2448/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [3%@729,1%@729,0%@729,2%@729,off,off] GR3D_FREQ 0% cpu@48.468C soc2@46.937C "
    "gpu@-256C tj@48.468C VDD_IN 4761mW/4778mW VDD_CPU_GPU_CV 515mW/501mW VDD_SOC 1428mW/1428mW"
)
THOR_JP7 = (
    "RAM 9000/125000MB tj@55.1C VDD_GPU 0mW/0mW/0mW VDD_CPU_SOC_MSS 6510mW/6510mW/6498mW "
    "VIN_SYS_5V0 6520mW/6520mW/6517mW VIN 26686mW/26686mW/26602mW"
)
AGX_ORIN_JP5 = (
    "RAM 5022/30536MB VDD_GPU_SOC 3032mW/3032mW VDD_CPU_CV 758mW/758mW "
    "VIN_SYS_5V0 3215mW/3215mW NC 0mW/0mW VDDQ_VDD2_1V8AO 405mW/405mW NC 0mW/0mW"
)


def test_jetpack_4_lines_have_no_unit_and_name_the_rails_pom() -> None:
    line = parse_line(NANO_JP4)
    assert line is not None
    assert line.rails == (("POM_5V_IN", 2.545), ("POM_5V_GPU", 0.0), ("POM_5V_CPU", 0.549))
    assert line.whole_board == "POM_5V_IN"


def test_jetpack_6_lines_read_the_current_milliwatts_not_the_average() -> None:
    line = parse_line(ORIN_JP6)
    assert line is not None
    assert dict(line.rails) == {"VDD_IN": 4.761, "VDD_CPU_GPU_CV": 0.515, "VDD_SOC": 1.428}
    assert line.whole_board == "VDD_IN"


def test_jetpack_7_lines_carry_three_values_per_rail_and_thor_names_its_input_vin() -> None:
    line = parse_line(THOR_JP7)
    assert line is not None
    assert line.rails == (
        ("VDD_GPU", 0.0),
        ("VDD_CPU_SOC_MSS", 6.51),
        ("VIN_SYS_5V0", 6.52),
        ("VIN", 26.686),
    )
    assert line.whole_board == "VIN"


def test_a_line_without_an_input_rail_names_no_whole_board_rail_and_skips_nc() -> None:
    line = parse_line(AGX_ORIN_JP5)
    assert line is not None
    assert [name for name, _ in line.rails] == [
        "VDD_GPU_SOC",
        "VDD_CPU_CV",
        "VIN_SYS_5V0",
        "VDDQ_VDD2_1V8AO",
    ]
    assert line.whole_board is None


@pytest.mark.parametrize(
    "text",
    [
        "RAM 2448/3964MB SWAP 0/1982MB IRAM 0/252kB",
        "CPU [12%@1479,off] GR3D_FREQ 0%@76 cpu@48.5C",
        "",
        "VDD_IN 4761W/4778W",
        "vdd_in 4761mW/4778mW",
        "VDD_IN 4761mW",
    ],
)
def test_lines_without_a_rail_are_not_readings(text: str) -> None:
    assert parse_line(text) is None


def test_a_number_too_long_to_be_a_power_is_skipped() -> None:
    line = parse_line("VDD_IN 12345678901234567890mW/1mW VDD_SOC 1428mW/1428mW")
    assert line is not None
    assert line.rails == (("VDD_SOC", 1.428),)


# --- the process --------------------------------------------------------------------------------


def fake_tegrastats(root: Path, lines: list[str], *, then: str = "stay") -> Path:
    """A /usr/bin/tegrastats that prints `lines` over and over at --interval, as the real one.

    then="exit": print each line once and exit. then="hang-once": the first run prints each line
    once and then stays silent without exiting; later runs print as usual.
    """
    marker = root / "hung-once"
    script = textwrap.dedent(
        f"""\
        #!{sys.executable}
        import os, sys, time
        interval = int(sys.argv[sys.argv.index("--interval") + 1]) / 1000
        lines = {lines!r}
        first_run = not os.path.exists({str(marker)!r})
        open({str(marker)!r}, "a").close()
        while True:
            for line in lines:
                print(line, flush=True)
                time.sleep(interval)
            if {then!r} == "exit":
                sys.exit(3)
            if {then!r} == "hang-once" and first_run:
                time.sleep(3600)
        """
    )
    binary = trees.write(root, "/usr/bin/tegrastats", script)
    binary.chmod(0o755)
    return binary


def started(root: Path, interval_ms: int = 50) -> TegrastatsSource:
    source = TegrastatsSource(root / "usr/bin/tegrastats", "/usr/bin/tegrastats", interval_ms)
    source.start()
    return source


def wait_for(source: TegrastatsSource, board_w: float | None, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while source.read().board_w != board_w:
        assert time.monotonic() < deadline, f"board_w stayed {source.read().board_w}"
        time.sleep(0.01)


def test_the_source_follows_what_tegrastats_prints(tmp_path: Path) -> None:
    fake_tegrastats(tmp_path, [ORIN_JP6, ORIN_JP6.replace("VDD_IN 4761mW", "VDD_IN 9120mW")])
    source = started(tmp_path)
    try:
        wait_for(source, 9.12)
        wait_for(source, 4.761)
        reading = source.read()
        assert [(r.name, r.power_w) for r in reading.rails] == [
            ("VDD_IN", 4.761),
            ("VDD_CPU_GPU_CV", 0.515),
            ("VDD_SOC", 1.428),
        ]
        assert source.info.boundary == f"{MODULE_INPUT} (VDD_IN)"
        assert [r.name for r in source.info.rails if r.whole_board] == ["VDD_IN"]
    finally:
        source.close()


def test_a_board_without_an_input_rail_is_metered_as_the_sum(tmp_path: Path) -> None:
    fake_tegrastats(tmp_path, [AGX_ORIN_JP5])
    source = started(tmp_path)
    try:
        assert source.info.boundary == SUM_OF_RAILS
        assert source.read().board_w == pytest.approx(3.032 + 0.758 + 3.215 + 0.405)
    finally:
        source.close()


def test_readings_go_stale_when_tegrastats_stops_printing_and_come_back_when_it_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_tegrastats(tmp_path, [ORIN_JP6], then="exit")
    source = started(tmp_path, interval_ms=100)
    try:
        wait_for(source, None, within_s=STALE_AFTER_INTERVALS * 0.1 + 2.0)
        assert "exited (status 3)" in caplog.text
        wait_for(source, 4.761, within_s=10.0)  # started again after RESTART_AFTER_S
    finally:
        source.close()


def test_a_tegrastats_that_stops_printing_is_killed_and_started_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_tegrastats(tmp_path, [ORIN_JP6], then="hang-once")
    source = started(tmp_path, interval_ms=50)
    try:
        hung = source._process
        wait_for(source, None, within_s=2.0)
        deadline = time.monotonic() + 2.0
        while hung is not None and hung.poll() is None:  # read() is what notices the silence
            assert time.monotonic() < deadline, "the silent tegrastats was not killed"
            source.read()
            time.sleep(0.05)
        assert "stopped printing: killing it" in caplog.text
        wait_for(source, 4.761, within_s=10.0)
        assert source._process is not hung
    finally:
        source.close()


def test_closing_stops_the_tegrastats_process_and_its_readings(tmp_path: Path) -> None:
    fake_tegrastats(tmp_path, [ORIN_JP6])
    source = started(tmp_path, interval_ms=1)  # lines still in the pipe when it closes
    process = source._process
    source.close()
    assert process is not None
    assert process.poll() is not None
    time.sleep(0.05)
    assert source.read().board_w is None


def test_a_tegrastats_that_prints_no_rails_is_not_a_source(tmp_path: Path) -> None:
    fake_tegrastats(tmp_path, ["RAM 2448/3964MB CPU [3%@729]"])
    with pytest.raises(NotDetected, match=r"printed no power rail within 0\.5 s"):
        TegrastatsSource(tmp_path / "usr/bin/tegrastats", "/usr/bin/tegrastats", 50).start(0.5)


def test_no_tegrastats_binary_is_not_a_source(tmp_path: Path) -> None:
    with pytest.raises(NotDetected, match="no /usr/bin/tegrastats"):
        detect_tegrastats(SysfsRoot(tmp_path))


def test_a_tegrastats_that_cannot_run_is_not_a_source(tmp_path: Path) -> None:
    trees.write(tmp_path, "/usr/bin/tegrastats", "not a program").chmod(0o644)
    with pytest.raises(NotDetected, match="could not be run"):
        detect_tegrastats(SysfsRoot(tmp_path))


@pytest.mark.usefixtures("no_pynvml")
def test_auto_falls_back_to_tegrastats_only_when_no_file_source_is_found(tmp_path: Path) -> None:
    fake_tegrastats(tmp_path, [ORIN_JP6])
    (source,) = detect_sources(tmp_path)
    try:
        assert source.info.kind == "tegrastats"
    finally:
        source.close()
    trees.orin_nano(tmp_path)
    found, reasons = probe_sources(tmp_path)
    assert [s.info.kind for s in found] == ["jetson_hwmon"]
    assert "tegrastats" not in reasons


def test_tegrastats_can_be_asked_for_by_name(tmp_path: Path) -> None:
    trees.orin_nano(tmp_path)
    fake_tegrastats(tmp_path, [ORIN_JP6])
    (source,) = detect_sources(tmp_path, "tegrastats")
    try:
        assert source.info.kind == "tegrastats"
        assert source.info.path == "/usr/bin/tegrastats"
    finally:
        source.close()


def test_doctor_reports_the_fallback_and_why_it_is_coarse(tmp_path: Path) -> None:
    fake_tegrastats(tmp_path, [ORIN_JP6])
    report = build_report(tmp_path, "tegrastats", settle_s=0)
    (source,) = report["sources"]
    assert (source["kind"], report["board_w"]) == ("tegrastats", 4.761)
    assert "power between lines is held" in " ".join(source["notes"])
