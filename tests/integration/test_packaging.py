"""The integration's packaging: manifest, translations, icons, brand image, quality scale."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import yaml
from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.helpers import selector

from custom_components.joulegate.batch_plan import PlanReason
from custom_components.joulegate.binary_sensor import BINARY_SENSORS, INFERENCE_ALLOWED
from custom_components.joulegate.const import DOMAIN
from custom_components.joulegate.inputs import LASTING_PROBLEMS, Kind
from custom_components.joulegate.number import NUMBERS
from custom_components.joulegate.select import BATTERY_POLICY, GATE_MODE
from custom_components.joulegate.sensor import GATE_SENSORS, SENSORS, _rail_sensor, _zone_sensor
from custom_components.joulegate.surplus import BatteryPolicy, GateMode, Reason

REPO = Path(__file__).parents[2]
INTEGRATION = REPO / "custom_components" / DOMAIN


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((INTEGRATION / name).read_text(encoding="utf-8"))
    return data


def test_manifest() -> None:
    """The fields HACS and Home Assistant need for a custom integration."""
    manifest = _json("manifest.json")
    for key in (
        "domain",
        "name",
        "version",
        "documentation",
        "issue_tracker",
        "codeowners",
        "iot_class",
        "config_flow",
        "integration_type",
        "zeroconf",
    ):
        assert manifest.get(key), key
    assert manifest["domain"] == DOMAIN
    assert manifest["config_flow"] is True
    assert "_joulegate._tcp.local." in manifest["zeroconf"]
    assert manifest["requirements"] == []
    # The house's load profile reads the recorder's statistics where it is set up.
    assert manifest["after_dependencies"] == ["recorder"]
    assert not (INTEGRATION / "strings.json").exists()


def test_translations_cover_every_key() -> None:
    """Every entity, error, abort and exception the code uses has English text."""
    english = _json("translations/en.json")
    entities = english["entity"]
    sensors = (*SENSORS, *GATE_SENSORS, _rail_sensor("X"), _zone_sensor("Y"))
    assert {d.translation_key for d in sensors} == set(entities["sensor"])
    binary_sensors = (*BINARY_SENSORS, INFERENCE_ALLOWED)
    assert {d.translation_key for d in binary_sensors} == set(entities["binary_sensor"])
    assert {d.translation_key for d in NUMBERS} == set(entities["number"])
    assert {GATE_MODE.translation_key, BATTERY_POLICY.translation_key} == set(entities["select"])
    assert set(entities["select"]["gate_mode"]["state"]) == set(GateMode)
    assert set(entities["select"]["battery_policy"]["state"]) == set(BatteryPolicy)
    assert set(entities["sensor"]["gate_reason"]["state"]) == set(Reason)
    assert set(entities["sensor"]["batch_plan"]["state"]) == set(PlanReason)

    source = "\n".join(path.read_text(encoding="utf-8") for path in INTEGRATION.glob("*.py"))
    config_flow = (INTEGRATION / "config_flow.py").read_text(encoding="utf-8")
    options_flow = (INTEGRATION / "options_flow.py").read_text(encoding="utf-8")
    used_errors = set(re.findall(r'errors\[[^\]]+\] = "(\w+)"', config_flow))
    used_errors |= set(re.findall(r'\{"base": "(\w+)"\}', config_flow))
    assert used_errors <= set(english["config"]["error"])
    used_aborts = set(re.findall(r'reason="(\w+)"', source)) | {"already_configured"}
    assert used_aborts <= set(english["config"]["abort"])
    used_exceptions = set(
        re.findall(r'translation_domain=DOMAIN,\s*translation_key="(\w+)"', source)
    )
    assert used_exceptions == set(english["exceptions"])
    assert set(re.findall(r'step_id="(\w+)"', config_flow)) == set(english["config"]["step"])
    assert set(re.findall(r'step_id="(\w+)"', options_flow)) == set(english["options"]["step"])
    # The options flow's errors: "entity_missing", "not_numeric", "unit_<kind>".
    option_errors = {"entity_missing", "not_numeric"} | {f"unit_{kind}" for kind in Kind}
    assert option_errors == set(english["options"]["error"])
    for key in ("grid_source", "battery_source", "grid_sign", "battery_sign"):
        assert key in english["selector"], key
    issues = {f"input_{problem}" for problem in LASTING_PROBLEMS} | {"retired_energy_sensors"}
    issues |= {"wrong_device", "storage_failing", "storage_failing_no_detail"}
    assert issues == set(english["issues"])
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text(encoding="utf-8"))
    assert set(services) == set(english["services"]) == set(_json("icons.json")["services"])
    for name, service in services.items():
        assert set(service["fields"]) == set(english["services"][name]["fields"]), name
        for field in service["fields"].values():
            selector.validate_selector(field["selector"])


def test_icons_name_known_entities() -> None:
    """icons.json only names entities that exist."""
    icons = _json("icons.json")["entity"]
    english = _json("translations/en.json")["entity"]
    for platform, keys in icons.items():
        assert set(keys) <= set(english[platform]), platform
        for key, icon in keys.items():
            states = set(english[platform][key].get("state", {})) | {"on", "off"}
            assert set(icon.get("state", {})) <= states, key


def test_hacs_minimum_is_the_release_the_tests_run_on() -> None:
    """hacs.json claims the oldest Home Assistant the suite is pinned to and passes on, so it
    claims nothing untested. The brand images need 2026.3 and are not a reason to require it:
    2026.2 ignores brand/ and shows its placeholder icon (README, HACS)."""
    minimum = AwesomeVersion(json.loads((REPO / "hacs.json").read_text())["homeassistant"])
    pinned = re.search(
        r"^homeassistant==(\S+)$", (REPO / "requirements" / "test.txt").read_text(), re.MULTILINE
    )
    assert pinned is not None
    tested = AwesomeVersion(pinned.group(1))
    assert AwesomeVersion(HA_VERSION) == tested
    assert minimum <= tested
    assert (minimum.major, minimum.minor) == (tested.major, tested.minor)
    assert "2026.3" in (REPO / "README.md").read_text()


def test_brand_icon() -> None:
    """A 256 x 256 PNG icon (and its 512 x 512 double), shown from Home Assistant 2026.3."""
    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        data = (INTEGRATION / "brand" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (size, size)


def test_quality_scale_marks_every_rule() -> None:
    """Each rule is done, todo, or exempt with a reason."""
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text(encoding="utf-8"))
    for name, rule in rules["rules"].items():
        if isinstance(rule, str):
            assert rule in ("done", "todo"), name
        else:
            assert rule["status"] in ("done", "todo", "exempt"), name
            assert rule.get("comment"), name
