"""The integration's packaging: manifest, translations, icons, brand image, quality scale."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import yaml

from custom_components.joulegate.binary_sensor import BINARY_SENSORS
from custom_components.joulegate.const import DOMAIN
from custom_components.joulegate.sensor import SENSORS, _rail_sensor, _zone_sensor

INTEGRATION = Path(__file__).parents[2] / "custom_components" / DOMAIN


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
    assert not (INTEGRATION / "strings.json").exists()


def test_translations_cover_every_key() -> None:
    """Every entity, error, abort and exception the code uses has English text."""
    english = _json("translations/en.json")
    sensor_keys = {d.translation_key for d in (*SENSORS, _rail_sensor("X"), _zone_sensor("Y"))}
    assert sensor_keys == set(english["entity"]["sensor"])
    assert {d.translation_key for d in BINARY_SENSORS} == set(english["entity"]["binary_sensor"])

    source = "\n".join(path.read_text(encoding="utf-8") for path in INTEGRATION.glob("*.py"))
    used_errors = set(re.findall(r'errors\[[^\]]+\] = "(\w+)"', source))
    used_errors |= set(re.findall(r'\{"base": "(\w+)"\}', source))
    assert used_errors <= set(english["config"]["error"])
    used_aborts = set(re.findall(r'reason="(\w+)"', source)) | {"already_configured"}
    assert used_aborts <= set(english["config"]["abort"])
    used_exceptions = set(
        re.findall(r'translation_domain=DOMAIN,\s*translation_key="(\w+)"', source)
    )
    assert used_exceptions == set(english["exceptions"])
    steps = set(re.findall(r'step_id="(\w+)"', source))
    assert steps - {"init"} == set(english["config"]["step"])
    assert set(english["options"]["step"]) == {"init"}


def test_icons_name_known_entities() -> None:
    """icons.json only names entities that exist."""
    icons = _json("icons.json")["entity"]
    english = _json("translations/en.json")["entity"]
    for platform, keys in icons.items():
        assert set(keys) <= set(english[platform]), platform


def test_brand_icon() -> None:
    """A 256 x 256 PNG icon (and its 512 x 512 double)."""
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
