"""Fake sysfs trees shaped like real boxes, built in a temporary directory.

Each builder lays out what the board shows under /sys (and nvpmodel's files under /etc and /var),
with the real drivers' folder names, units and symlinks, so the sources are tested against the
same shapes they meet on a device. Values are the builders' constants, so tests can compute what
they expect from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def write(root: Path, path: str, value: object) -> Path:
    """Write one sysfs file the way the kernel shows it: text with a trailing newline."""
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"{value}\n", encoding="utf-8")
    return target


def write_all(root: Path, folder: str, files: Mapping[str, object]) -> Path:
    for name, value in files.items():
        write(root, f"{folder}/{name}", value)
    return root / folder.lstrip("/")


def link(root: Path, path: str, target: str) -> None:
    """A relative symlink, as /sys/class/* and /sys/bus/*/drivers/* are on a real box."""
    at = root / path.lstrip("/")
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(os.path.relpath(root / target.lstrip("/"), at.parent))


# --- INA3221 on JetPack 4: ina3221x IIO driver, mV / mA / mW -----------------------------------

IioRail = tuple[str, int, int, int]  # label, mV, mA, mW, in channel order

NANO_RAILS: tuple[IioRail, ...] = (
    ("POM_5V_IN", 5032, 506, 2545),
    ("POM_5V_GPU", 5032, 0, 0),
    ("POM_5V_CPU", 5032, 109, 549),
)
XAVIER_NX_RAILS: tuple[IioRail, ...] = (
    ("VDD_IN", 5104, 1088, 5553),
    ("VDD_CPU_GPU_CV", 5104, 164, 837),
    ("VDD_SOC", 5104, 296, 1510),
)
AGX_XAVIER_CHIPS: tuple[tuple[IioRail, ...], ...] = (
    (("GPU", 19136, 48, 918), ("CPU", 19136, 80, 1531), ("SOC", 19136, 130, 2487)),
    (("CV", 19136, 0, 0), ("VDDRQ", 19136, 40, 765), ("SYS5V", 4984, 420, 2093)),
)


def _iio_chip(root: Path, bus_addr: str, device: int, rails: tuple[IioRail, ...]) -> Path:
    real = f"/sys/devices/platform/i2c@{bus_addr}/{bus_addr}"
    files: dict[str, object] = {"name": "ina3221x", "running_mode": 1}
    for n, (label, mv, ma, mw) in enumerate(rails):
        files |= {
            f"rail_name_{n}": label,
            f"in_voltage{n}_input": mv,
            f"in_current{n}_input": ma,
            f"in_power{n}_input": mw,
            f"in_current{n}_trigger_input": 0,
            f"in_power{n}_trigger_input": 0,
            f"warn_current_limit_{n}": "32760 ma",
            f"crit_current_limit_{n}": "32760 ma",
        }
    chip = write_all(root, f"{real}/iio:device{device}", files)
    link(root, f"/sys/bus/i2c/drivers/ina3221x/{bus_addr}", real)
    return chip


# --- INA3221 on JetPack 5/6/7: mainline ina3221 hwmon driver, mV / mA, no power file -----------

HwmonRail = tuple[str, int, int]  # label, mV, mA, in channel order

ORIN_NANO_RAILS: tuple[HwmonRail, ...] = (
    ("VDD_IN", 5008, 952),
    ("VDD_CPU_GPU_CV", 5008, 103),
    ("VDD_SOC", 5008, 285),
)
AGX_ORIN_CHIPS: tuple[tuple[HwmonRail, ...], ...] = (
    (("VDD_GPU_SOC", 19152, 125), ("VDD_CPU_CV", 19152, 42), ("VIN_SYS_5V0", 4992, 760)),
    (("NC", 4, 1), ("VDDQ_VDD2_1V8AO", 4992, 150), ("NC", 0, 0)),
)


def hwmon_chip(root: Path, bus_addr: str, hwmon: int, rails: tuple[HwmonRail, ...]) -> Path:
    real = f"/sys/devices/platform/bus@0/c240000.i2c/i2c-1/{bus_addr}"
    files: dict[str, object] = {"name": "ina3221", "samples": 512, "update_interval": 140}
    for n, (label, mv, ma) in enumerate(rails, start=1):
        files |= {
            f"in{n}_label": label,
            f"in{n}_input": mv,
            f"curr{n}_input": ma,
            f"curr{n}_max": 32760,
            f"curr{n}_crit": 32760,
            f"shunt{n}_resistor": 5000,
            f"in{n + 3}_input": ma * 5,  # shunt voltage, µV
        }
    files["in7_input"] = 0  # sum channel
    chip = write_all(root, f"{real}/hwmon/hwmon{hwmon}", files)
    link(root, f"/sys/bus/i2c/drivers/ina3221/{bus_addr}", real)
    link(root, f"/sys/class/hwmon/hwmon{hwmon}", f"{real}/hwmon/hwmon{hwmon}")
    return chip


def hwmon_watts(rails: tuple[HwmonRail, ...]) -> list[tuple[str, float]]:
    """What each rail draws: the driver has no power file, so P = V x I."""
    return [(label, mv * ma / 1e6) for label, mv, ma in rails]


# --- heat, clocks and power modes -------------------------------------------------------------

NANO_ZONES = {
    "AO-therm": 40500,
    "CPU-therm": 38500,
    "GPU-therm": 37000,
    "PLL-therm": 36500,
    "PMIC-Die": 100000,
    "thermal-fan-est": 37800,
}
XAVIER_ZONES = {
    "AO-therm": 41000,
    "CPU-therm": 43500,
    "GPU-therm": 42000,
    "PLL-therm": 41500,
    "AUX-therm": 40500,
    "PMIC-Die": 100000,
    "thermal-fan-est": 42200,
    "Tboard_tegra": 39000,
    "Tdiode_tegra": 40000,
}
ORIN_ZONES = {
    "cpu-thermal": 47531,
    "gpu-thermal": 46968,
    "cv0-thermal": -256000,
    "cv1-thermal": -256000,
    "cv2-thermal": -256000,
    "soc0-thermal": 46000,
    "soc1-thermal": 45500,
    "soc2-thermal": 45968,
    "tj-thermal": 47531,
    "tboard_tegra": 38000,
    "tdiode_tegra": 39250,
}
NANO_MODES = {0: "MAXN", 1: "5W"}
XAVIER_NX_MODES = {
    0: "MODE_15W_2CORE",
    1: "MODE_15W_4CORE",
    2: "MODE_15W_6CORE",
    3: "MODE_10W_2CORE",
}
AGX_MODES = {0: "MAXN", 1: "MODE_10W", 2: "MODE_15W", 3: "MODE_30W_ALL"}
ORIN_NANO_MODES = {0: "15W", 1: "25W", 2: "MAXN_SUPER", 3: "7W"}


def thermal_zones(root: Path, zones: Mapping[str, int]) -> None:
    for n, (kind, milli_c) in enumerate(zones.items()):
        folder = f"/sys/devices/virtual/thermal/thermal_zone{n}"
        write_all(
            root,
            folder,
            {"type": kind, "temp": milli_c, "trip_point_0_temp": 99000, "trip_point_0_type": "hot"},
        )


def cooling_devices(root: Path, devices: Mapping[str, tuple[int, int]]) -> list[Path]:
    """type -> (cur_state, max_state)."""
    return [
        write_all(
            root,
            f"/sys/class/thermal/cooling_device{n}",
            {"type": kind, "cur_state": cur, "max_state": top},
        )
        for n, (kind, (cur, top)) in enumerate(devices.items())
    ]


def cpus(root: Path, count: int, khz: int) -> None:
    for n in range(count):
        write_all(
            root,
            f"/sys/devices/system/cpu/cpu{n}/cpufreq",
            {"scaling_cur_freq": khz, "scaling_max_freq": khz, "cpuinfo_max_freq": khz},
        )


def gpu_devfreq(root: Path, name: str, hz: int) -> Path:
    return write_all(root, f"/sys/class/devfreq/{name}", {"cur_freq": hz, "max_freq": hz})


def nvpmodel(root: Path, mode: int, names: Mapping[int, str]) -> None:
    """The files `nvpmodel` leaves behind: its config and the mode it last set."""
    models = "".join(
        f"< POWER_MODEL ID={n} NAME={name} >\nCPU_ONLINE CORE_0 1\nGPU MAX_FREQ -1\n\n"
        for n, name in names.items()
    )
    write(
        root,
        "/etc/nvpmodel.conf",
        "< PARAM TYPE=FILE NAME=CPU_ONLINE >\nCORE_0 /sys/devices/system/cpu/cpu0/online\n\n"
        f"{models}< PM_CONFIG DEFAULT={next(iter(names))} >",
    )
    write(root, "/var/lib/nvpmodel/status", f"pmode:{mode:04d}")


def soctherm_oc(root: Path) -> Path:
    """Orin's under-voltage / over-current event counters, a hwmon device of their own."""
    real = "/sys/devices/platform/c310000.soctherm/hwmon/hwmon0"
    folder = write_all(
        root,
        real,
        {"name": "soctherm_oc", "oc1_event_cnt": 0, "oc2_event_cnt": 0, "oc3_event_cnt": 0},
    )
    link(root, "/sys/class/hwmon/hwmon0", real)
    return folder


# --- boards -----------------------------------------------------------------------------------


def nano_jp4(root: Path) -> Path:
    """Jetson Nano, JetPack 4: IIO at 6-0040, POM_5V_* rails in mW."""
    chip = _iio_chip(root, "6-0040", 0, NANO_RAILS)
    thermal_zones(root, NANO_ZONES)
    cooling_devices(root, {"pwm-fan": (0, 255), "cpu-balanced": (0, 4), "gpu-balanced": (0, 4)})
    cpus(root, 4, 1479000)
    gpu_devfreq(root, "57000000.gpu", 921600000)
    nvpmodel(root, 0, NANO_MODES)
    return chip


def xavier_nx_jp4(root: Path) -> Path:
    """Xavier NX, JetPack 4: IIO at 7-0040, VDD_IN is the module input."""
    chip = _iio_chip(root, "7-0040", 0, XAVIER_NX_RAILS)
    thermal_zones(root, XAVIER_ZONES)
    cooling_devices(root, {"pwm-fan": (64, 255)})
    cpus(root, 6, 1420800)
    gpu_devfreq(root, "17000000.gv11b", 1109250000)
    nvpmodel(root, 2, XAVIER_NX_MODES)
    return chip


def agx_xavier_jp4(root: Path) -> tuple[Path, Path]:
    """AGX Xavier, JetPack 4: two IIO chips, no whole-module rail."""
    chips = (
        _iio_chip(root, "1-0040", 0, AGX_XAVIER_CHIPS[0]),
        _iio_chip(root, "1-0041", 1, AGX_XAVIER_CHIPS[1]),
    )
    thermal_zones(root, XAVIER_ZONES)
    cpus(root, 8, 2265600)
    gpu_devfreq(root, "17000000.gv11b", 1377000000)
    nvpmodel(root, 0, AGX_MODES)
    return chips


def orin_nano(root: Path) -> Path:
    """Orin Nano 8GB, JetPack 6: hwmon at 1-0040, soctherm_oc counters, Super power modes."""
    soctherm_oc(root)
    chip = hwmon_chip(root, "1-0040", 1, ORIN_NANO_RAILS)
    thermal_zones(root, ORIN_ZONES)
    cooling_devices(root, {"pwm-fan": (2, 3)})
    cpus(root, 6, 1728000)
    gpu_devfreq(root, "17000000.gpu", 1020000000)
    nvpmodel(root, 2, ORIN_NANO_MODES)
    return chip


def agx_orin(root: Path) -> tuple[Path, Path]:
    """AGX Orin, JetPack 6: hwmon chips at 1-0040 and 1-0041, two channels labelled NC."""
    soctherm_oc(root)
    chips = (
        hwmon_chip(root, "1-0040", 1, AGX_ORIN_CHIPS[0]),
        hwmon_chip(root, "1-0041", 2, AGX_ORIN_CHIPS[1]),
    )
    thermal_zones(root, ORIN_ZONES)
    cooling_devices(root, {"pwm-fan": (1, 3)})
    cpus(root, 12, 2201600)
    gpu_devfreq(root, "17000000.ga10b", 1300500000)
    nvpmodel(root, 0, {0: "MAXN", 1: "MODE_15W", 2: "MODE_30W", 3: "MODE_50W"})
    return chips


# --- other Linux boxes ------------------------------------------------------------------------


def _class_hwmon(root: Path, n: int, device: str, files: Mapping[str, object]) -> Path:
    real = f"/sys/devices/{device}/hwmon/hwmon{n}"
    folder = write_all(root, real, files)
    link(root, f"/sys/class/hwmon/hwmon{n}", real)
    return folder


INA219_UW = 3250000


def generic_hwmon(root: Path) -> Path:
    """A PC-like box with an INA219 on I2C: power1_input in µW, beside sensors without power."""
    _class_hwmon(root, 0, "platform/coretemp.0", {"name": "coretemp", "temp1_input": 45000})
    _class_hwmon(
        root, 1, "platform/nct6775.656", {"name": "nct6798", "in0_input": 1032, "in1_input": 1016}
    )
    return _class_hwmon(
        root,
        2,
        "platform/i2c-3/3-0040",
        {
            "name": "ina219",
            "in0_input": 8,
            "in1_input": 5104,
            "curr1_input": 637,
            "power1_input": INA219_UW,
        },
    )


LTC4151 = (12048, 250)  # mV, mA


def volt_curr_hwmon(root: Path) -> Path:
    """A hot-swap controller with voltage and current but no power file (LTC4151)."""
    mv, ma = LTC4151
    return _class_hwmon(
        root,
        0,
        "platform/i2c-1/1-006f",
        {"name": "ltc4151", "in1_input": mv, "in2_input": 1000, "curr1_input": ma},
    )


BATTERY_UV, BATTERY_UA = 7800000, 1200000
BATTERY_UW = 5400000


def battery(root: Path, *, power_now: bool = False, current_sign: int = 1) -> Path:
    """A battery-powered board: BAT0 in µV / µA (or µW), and a mains adapter without readings."""
    write_all(root, "/sys/class/power_supply/AC", {"type": "Mains", "online": 0})
    files: dict[str, object] = {"type": "Battery", "status": "Discharging", "capacity": 81}
    if power_now:
        files["power_now"] = BATTERY_UW
    else:
        files |= {"voltage_now": BATTERY_UV, "current_now": current_sign * BATTERY_UA}
    return write_all(root, "/sys/class/power_supply/BAT0", files)


RAPL_MAX_UJ = 262143328850


def rapl(root: Path, package_uj: int, *, psys_uj: int | None = None) -> Path:
    """RAPL: package-0 with its core/uncore subzones (psys too, on laptops that have it)."""
    base = "/sys/devices/virtual/powercap/intel-rapl"
    write(root, f"{base}/enabled", 1)
    link(root, "/sys/class/powercap/intel-rapl", base)
    zones = {"intel-rapl:0": ("package-0", package_uj)}
    zones |= {
        "intel-rapl:0/intel-rapl:0:0": ("core", 1000),
        "intel-rapl:0/intel-rapl:0:1": ("uncore", 20),
    }
    if psys_uj is not None:
        zones["intel-rapl:1"] = ("psys", psys_uj)
    for folder, (name, uj) in zones.items():
        write_all(
            root,
            f"{base}/{folder}",
            {"name": name, "energy_uj": uj, "max_energy_range_uj": RAPL_MAX_UJ, "enabled": 1},
        )
        link(root, f"/sys/class/powercap/{folder.rsplit('/', 1)[-1]}", f"{base}/{folder}")
    return root / f"{base}/intel-rapl:0".lstrip("/")


# --- power knobs: GPU devfreq and CPU cpufreq as on a real box (class links to real folders) ---

ORIN_NANO_GPU_HZ = (
    306000000,
    408000000,
    510000000,
    612000000,
    714000000,
    816000000,
    918000000,
    1020000000,
)
ORIN_NANO_CPU_KHZ = (
    115200,
    192000,
    268800,
    345600,
    422400,
    499200,
    576000,
    652800,
    729600,
    806400,
    883200,
    960000,
    1036800,
    1113600,
    1190400,
    1267200,
    1344000,
    1420800,
    1497600,
    1574400,
    1651200,
    1728000,
)


def gpu_devfreq_knob(
    root: Path,
    name: str = "17000000.gpu",
    available_hz: tuple[int, ...] = ORIN_NANO_GPU_HZ,
    *,
    min_hz: int | None = None,
) -> Path:
    """The GPU's devfreq folder under its platform device, linked from /sys/class/devfreq."""
    device = f"/sys/devices/platform/bus@0/{name}"
    write(root, f"{device}/load", 0)
    folder = write_all(
        root,
        f"{device}/devfreq/{name}",
        {
            "cur_freq": available_hz[-1],
            "max_freq": available_hz[-1],
            "min_freq": min_hz if min_hz is not None else available_hz[0],
            "available_frequencies": " ".join(str(f) for f in available_hz),
            "governor": "nvhost_podgov",
        },
    )
    link(root, f"{device}/devfreq/{name}/device", device)
    link(root, f"/sys/class/devfreq/{name}", f"{device}/devfreq/{name}")
    return folder


def cpufreq_policies(
    root: Path,
    policies: Mapping[int, range],
    available_khz: tuple[int, ...] | None = ORIN_NANO_CPU_KHZ,
    *,
    min_khz: int = 115200,
    max_khz: int = 1728000,
) -> list[Path]:
    """cpufreq policy folders, each CPU's cpufreq a link to its policy. `available_khz` None:
    a driver without a frequency list (only cpuinfo_min_freq / cpuinfo_max_freq)."""
    folders = []
    for number, members in policies.items():
        files: dict[str, object] = {
            "scaling_cur_freq": max_khz,
            "scaling_max_freq": max_khz,
            "scaling_min_freq": min_khz,
            "cpuinfo_min_freq": min_khz,
            "cpuinfo_max_freq": max_khz,
            "related_cpus": " ".join(str(cpu) for cpu in members),
        }
        if available_khz is not None:
            files["scaling_available_frequencies"] = " ".join(str(f) for f in available_khz)
        policy = f"/sys/devices/system/cpu/cpufreq/policy{number}"
        folders.append(write_all(root, policy, files))
        for cpu in members:
            link(root, f"/sys/devices/system/cpu/cpu{cpu}/cpufreq", policy)
    return folders


def orin_nano_super(root: Path) -> Path:
    """Orin Nano Super, JetPack 6, with the knobs the power levels use: the GPU's devfreq with its
    frequency list, two CPU clusters' cpufreq policies, and nvpmodel's config."""
    soctherm_oc(root)
    chip = hwmon_chip(root, "1-0040", 1, ORIN_NANO_RAILS)
    thermal_zones(root, ORIN_ZONES)
    gpu_devfreq_knob(root)
    cpufreq_policies(root, {0: range(0, 4), 4: range(4, 6)})
    nvpmodel(root, 2, ORIN_NANO_MODES)
    return chip
