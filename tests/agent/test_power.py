"""Power levels on fake boxes: the knobs found, the ladder, the lease and dwell, the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from joulegate_agent.metering.sysfs import SysfsRoot
from joulegate_agent.power.controller import DwellError, PowerController, ReadOnlyError
from joulegate_agent.power.discovery import ConcurrencyHooks, PowerDiscovery, discover
from joulegate_agent.power.journal import JOURNAL_FILE, RestoreJournal
from joulegate_agent.power.knobs import KnobError
from joulegate_agent.power.ladder import MAX_LEVELS
from tests.agent.fakes import sysfs_trees as trees
from tests.agent.fakes.sysfs_trees import ORIN_NANO_CPU_KHZ, ORIN_NANO_GPU_HZ, Clock

GPU_MAX = "sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu/max_freq"
CPU0_MAX = "sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq"
CPU4_MAX = "sys/devices/system/cpu/cpufreq/policy4/scaling_max_freq"

pytestmark = pytest.mark.usefixtures("no_pynvml")


def read(root: Path, path: str) -> int:
    return int((root / path).read_text())


def found_on(root: Path, **kwargs: object) -> PowerDiscovery:
    return discover(SysfsRoot(root), **kwargs)  # type: ignore[arg-type]


def controller_on(
    root: Path,
    data: Path,
    *,
    default: str | None = None,
    dwell_s: float = 0.0,
    clock: Clock | None = None,
) -> PowerController:
    return PowerController(
        found_on(root),
        RestoreJournal(data),
        default_level=default,
        dwell_s=dwell_s,
        clock=clock or Clock(),
    )


@pytest.fixture
def jetson(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    trees.orin_nano_super(root)
    return root


# --- discovery --------------------------------------------------------------------------------


def test_a_jetson_offers_its_gpu_and_cpu_clock_caps(jetson: Path) -> None:
    found = found_on(jetson)
    knobs = {knob.id: knob for knob in found.knobs}
    assert set(knobs) == {"gpu_max_freq", "cpu_max_freq"}
    assert knobs["gpu_max_freq"].values == ORIN_NANO_GPU_HZ
    assert knobs["gpu_max_freq"].paths == ("/sys/class/devfreq/17000000.gpu/max_freq",)
    assert knobs["cpu_max_freq"].values == ORIN_NANO_CPU_KHZ
    assert knobs["cpu_max_freq"].paths == (
        "/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq",
        "/sys/devices/system/cpu/cpufreq/policy4/scaling_max_freq",
    )


def test_gpu_frequencies_below_its_min_freq_are_not_offered(tmp_path: Path) -> None:
    trees.gpu_devfreq_knob(tmp_path, min_hz=612000000)
    (knob,) = found_on(tmp_path).knobs
    assert knob.values == (612000000, 714000000, 816000000, 918000000, 1020000000)


def test_cpu_caps_spread_over_cpuinfo_range_when_the_driver_lists_no_frequencies(
    tmp_path: Path,
) -> None:
    trees.cpufreq_policies(tmp_path, {0: range(0, 8)}, None, min_khz=800000, max_khz=3000000)
    (knob,) = found_on(tmp_path).knobs
    assert knob.values == (800000, 1240000, 1680000, 2120000, 2560000, 3000000)


def test_the_ladder_has_at_most_six_rungs_from_every_knob_lowest_to_highest(jetson: Path) -> None:
    ladder = found_on(jetson).ladder
    assert len(ladder) == MAX_LEVELS
    assert [level.name for level in ladder] == ["L1", "L2", "L3", "L4", "L5", "L6"]
    lowest = dict((knob.id, value) for knob, value in ladder[0].settings)
    highest = dict((knob.id, value) for knob, value in ladder[-1].settings)
    assert lowest == {"gpu_max_freq": ORIN_NANO_GPU_HZ[0], "cpu_max_freq": ORIN_NANO_CPU_KHZ[0]}
    assert highest == {"gpu_max_freq": ORIN_NANO_GPU_HZ[-1], "cpu_max_freq": ORIN_NANO_CPU_KHZ[-1]}
    gpu = [dict((k.id, v) for k, v in level.settings)["gpu_max_freq"] for level in ladder]
    assert gpu == sorted(gpu)
    assert ladder[0].describe() == "gpu_max_freq 306 MHz, cpu_max_freq 115.2 MHz"


def test_a_box_without_hardware_knobs_gets_a_ladder_of_inferences_at_once(tmp_path: Path) -> None:
    limit: list[int | None] = [None]
    hooks = ConcurrencyHooks(lambda: limit[0], lambda n: limit.__setitem__(0, n), None)
    found = found_on(tmp_path, concurrency=hooks)
    assert [level.describe() for level in found.ladder] == [
        "concurrency 1 at once",
        "concurrency 2 at once",
        "concurrency 4 at once",
        "concurrency no limit",
    ]


def test_the_concurrency_level_never_goes_above_the_configured_limit(tmp_path: Path) -> None:
    hooks = ConcurrencyHooks(lambda: 3, lambda n: None, 3)
    found = found_on(tmp_path, concurrency=hooks)
    assert [knob.values for knob in found.knobs] == [(1, 2, 3)]


def test_hardware_knobs_make_the_ladder_and_concurrency_stays_out_of_it(jetson: Path) -> None:
    hooks = ConcurrencyHooks(lambda: None, lambda n: None, None)
    found = found_on(jetson, concurrency=hooks)
    assert "concurrency" in {knob.id for knob in found.knobs}
    assert all(knob.id != "concurrency" for level in found.ladder for knob, _ in level.settings)


def test_nvpmodel_modes_are_listed_but_not_used_as_levels(jetson: Path) -> None:
    found = found_on(jetson)
    assert found.nvpmodel_modes == {0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}
    assert any("nvpmodel modes are not used" in note for note in found.notes)


# --- the controller: lease, default, dwell ----------------------------------------------------


def test_setting_a_level_caps_gpu_and_cpu_clocks(jetson: Path, tmp_path: Path) -> None:
    controller = controller_on(jetson, tmp_path / "data")
    controller.set(controller.level("L1"), lease_s=60)
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[0]
    assert read(jetson, CPU0_MAX) == read(jetson, CPU4_MAX) == ORIN_NANO_CPU_KHZ[0]
    assert controller.current_name == "L1"
    assert controller.to_json()["source"] == "lease"


def test_the_originals_are_journalled_before_the_first_change(jetson: Path, tmp_path: Path) -> None:
    controller = controller_on(jetson, tmp_path / "data")
    controller.set(controller.level("L2"), lease_s=60)
    controller.set(controller.level("L1"), lease_s=60)
    journal = json.loads((tmp_path / "data" / JOURNAL_FILE).read_text())
    values = {Path(o["target"]).name: o["value"] for o in journal["originals"]}
    assert values == {"max_freq": str(ORIN_NANO_GPU_HZ[-1]), "scaling_max_freq": "1728000"}


def test_a_lease_that_runs_out_falls_back_to_the_default_level(
    jetson: Path, tmp_path: Path
) -> None:
    clock = Clock()
    controller = controller_on(jetson, tmp_path / "data", default="L4", clock=clock)
    controller.start()
    controller.set(controller.level("L1"), lease_s=30, reason="little sun")
    clock.t += 29.9
    assert controller.current_name == "L1"
    clock.t += 0.2
    assert controller.current_name == "L4"
    state = controller.to_json()
    assert state["source"] == "default"
    assert state["reason"].startswith("lease ran out at ")
    assert (
        read(jetson, GPU_MAX)
        == dict((k.id, v) for k, v in controller.level("L4").settings)["gpu_max_freq"]
    )


def test_without_a_default_a_lease_that_runs_out_gives_the_box_its_own_settings(
    jetson: Path, tmp_path: Path
) -> None:
    clock = Clock()
    controller = controller_on(jetson, tmp_path / "data", clock=clock)
    controller.set(controller.level("L1"), lease_s=10)
    clock.t += 11
    assert controller.current_name is None
    assert controller.to_json()["source"] == "original"
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]
    assert not (tmp_path / "data" / JOURNAL_FILE).exists()


def test_a_change_sooner_than_the_dwell_time_is_refused(jetson: Path, tmp_path: Path) -> None:
    clock = Clock()
    controller = controller_on(jetson, tmp_path / "data", dwell_s=120, clock=clock)
    controller.set(controller.level("L3"), lease_s=300)
    clock.t += 100
    with pytest.raises(DwellError) as refused:
        controller.set(controller.level("L5"), lease_s=300)
    assert refused.value.retry_after_s == pytest.approx(20)
    assert controller.current_name == "L3"
    clock.t += 21
    controller.set(controller.level("L5"), lease_s=300)
    assert controller.current_name == "L5"


def test_renewing_the_lease_on_the_level_in_force_ignores_the_dwell_time(
    jetson: Path, tmp_path: Path
) -> None:
    clock = Clock()
    controller = controller_on(jetson, tmp_path / "data", dwell_s=120, clock=clock)
    controller.set(controller.level("L3"), lease_s=60)
    clock.t += 50
    state = controller.set(controller.level("L3"), lease_s=60)
    assert state["lease_remaining_s"] == 60


def test_a_read_only_agent_refuses_to_set_a_level(jetson: Path, tmp_path: Path) -> None:
    controller = PowerController(
        found_on(jetson), RestoreJournal(tmp_path / "data"), read_only=True, clock=Clock()
    )
    with pytest.raises(ReadOnlyError):
        controller.set(controller.level("L1"), lease_s=60)
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]


def test_a_knob_this_process_cannot_write_is_refused_before_anything_changes(
    jetson: Path, tmp_path: Path
) -> None:
    def cpu_read_only(path: Path) -> str | None:
        return "read-only filesystem" if path.name == "scaling_max_freq" else None

    found = found_on(jetson, writable=cpu_read_only)
    controller = PowerController(found, RestoreJournal(tmp_path / "data"), clock=Clock())
    with pytest.raises(KnobError, match=r"cpu_max_freq .*read-only filesystem"):
        controller.set(controller.level("L1"), lease_s=60)
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]
    assert controller.current_name is None


def test_a_write_the_kernel_refuses_puts_every_knob_back(jetson: Path, tmp_path: Path) -> None:
    controller = controller_on(jetson, tmp_path / "data")
    (jetson / CPU4_MAX).unlink()
    (jetson / CPU4_MAX).mkdir()  # writing it now fails, after the GPU and policy0 were written
    with pytest.raises(KnobError, match="cannot write"):
        controller.set(controller.level("L1"), lease_s=60)
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]
    assert read(jetson, CPU0_MAX) == 1728000
    assert controller.current_name is None


# --- restore ----------------------------------------------------------------------------------


def test_closing_the_controller_restores_the_box(jetson: Path, tmp_path: Path) -> None:
    controller = controller_on(jetson, tmp_path / "data")
    controller.set(controller.level("L1"), lease_s=60)
    assert controller.close() == []
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]
    assert read(jetson, CPU0_MAX) == read(jetson, CPU4_MAX) == 1728000
    assert not (tmp_path / "data" / JOURNAL_FILE).exists()


def test_the_next_start_restores_what_a_crashed_run_left_changed(
    jetson: Path, tmp_path: Path
) -> None:
    crashed = controller_on(jetson, tmp_path / "data")
    crashed.set(crashed.level("L2"), lease_s=3600)  # then the process dies: no close()
    assert read(jetson, GPU_MAX) != ORIN_NANO_GPU_HZ[-1]
    restarted = controller_on(jetson, tmp_path / "data")
    assert restarted.start() == []
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]
    assert read(jetson, CPU4_MAX) == 1728000
    assert not (tmp_path / "data" / JOURNAL_FILE).exists()


def test_a_second_crash_keeps_the_settings_from_before_the_first_change(
    jetson: Path, tmp_path: Path
) -> None:
    first = controller_on(jetson, tmp_path / "data")
    first.set(first.level("L2"), lease_s=3600)
    second = controller_on(jetson, tmp_path / "data")  # started without restoring (start not run)
    second.set(second.level("L1"), lease_s=3600)
    RestoreJournal(tmp_path / "data").restore()
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]


def test_a_restore_that_fails_keeps_the_journal_for_the_next_try(
    jetson: Path, tmp_path: Path
) -> None:
    controller = controller_on(jetson, tmp_path / "data")
    controller.set(controller.level("L1"), lease_s=60)
    (jetson / CPU4_MAX).unlink()
    (jetson / CPU4_MAX).mkdir()
    failures = RestoreJournal(tmp_path / "data").restore()
    assert len(failures) == 1
    assert "policy4" in failures[0]
    assert (tmp_path / "data" / JOURNAL_FILE).exists()
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]


def test_an_unreadable_journal_is_moved_aside_and_reported(jetson: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / JOURNAL_FILE).write_text("{not json")
    controller = controller_on(jetson, data)
    failures = controller.start()
    assert len(failures) == 1
    assert "cannot be read" in failures[0]
    assert (data / (JOURNAL_FILE + ".corrupt")).exists()
    controller.set(controller.level("L1"), lease_s=60)  # a fresh journal for the new change
    assert controller.close() == []
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]


def test_a_journal_that_cannot_be_written_changes_nothing(jetson: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("a file where the data directory should be")
    controller = controller_on(jetson, data)
    with pytest.raises(KnobError, match="cannot write the restore journal"):
        controller.set(controller.level("L1"), lease_s=60)
    assert read(jetson, GPU_MAX) == ORIN_NANO_GPU_HZ[-1]
    assert controller.current_name is None


def test_nvml_levels_are_refused_without_root_and_nothing_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.agent.test_doctor import FakePowerNvml

    nvml = FakePowerNvml(constraints=(150_000, 700_000), limit=700_000)
    nvml.install(monkeypatch)
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    controller = PowerController(
        found_on(tmp_path), RestoreJournal(tmp_path / "data"), clock=Clock()
    )
    assert [level.describe() for level in controller.levels] == [
        "nvml_power_limit_gpu0 150 W",
        "nvml_power_limit_gpu0 333 W",
        "nvml_power_limit_gpu0 517 W",
        "nvml_power_limit_gpu0 700 W",
    ]
    with pytest.raises(KnobError, match="set by root only"):
        controller.set(controller.level("L1"), lease_s=60)
    assert nvml.set_calls == []
    controller.close()
    assert nvml.shutdowns == nvml.inits
