"""Settings: a TOML file, validated so that a typo or a wrong type is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulegate_agent.config import AgentConfig, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_the_defaults() -> None:
    config = load_config(None)
    assert (config.port, config.sample_rate_hz, config.source) == (8787, 10.0, "auto")


def test_every_table_of_the_example_config_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[agent]
host = "127.0.0.1"
port = 9000
data_dir = "/tmp/jg"
source = "simulated"
sample_rate_hz = 5
zeroconf = false
[calibration]
gain = 1.08
offset_w = 1.9
[proxy]
upstream = "http://127.0.0.1:8080"
auth = false
max_concurrent_inferences = 2
[gate]
fallback_open = true
[ledger]
retention_days = 30
""",
    )
    config = load_config(path)
    assert config.port == 9000
    assert config.data_dir == Path("/tmp/jg")
    assert config.sample_rate_hz == 5.0
    assert (config.calibration.gain, config.calibration.offset_w) == (1.08, 1.9)
    assert config.upstream == "http://127.0.0.1:8080"
    assert config.proxy_auth is False
    assert config.gate_fallback_open is True
    assert config.retention_days == 30


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        load_config(write(tmp_path, "[agent]\nprot = 1\n"))


def test_unknown_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown table \[agnet\]"):
        load_config(write(tmp_path, "[agnet]\nport = 1\n"))


def test_wrong_type_is_an_error_naming_key_and_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.port must be int"):
        load_config(write(tmp_path, '[agent]\nport = "80"\n'))


def test_boolean_is_not_taken_for_a_number(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sample_rate_hz"):
        load_config(write(tmp_path, "[agent]\nsample_rate_hz = true\n"))


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[agent\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 0}, "port"),
        ({"sample_rate_hz": 0.0}, "sample_rate_hz"),
        ({"source": "magic"}, "source must be one of"),
        ({"upstream": "ftp://x"}, "upstream"),
        ({"retention_days": 0}, "retention_days"),
        ({"max_concurrent_inferences": 0}, "max_concurrent_inferences"),
    ],
)
def test_out_of_range_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentConfig().with_overrides(**overrides)


def test_flags_not_given_leave_the_file_values() -> None:
    config = AgentConfig(port=9000).with_overrides(port=None, host="127.0.0.1")
    assert (config.port, config.host) == (9000, "127.0.0.1")


def test_the_power_table_sets_the_default_level_dwell_and_read_only(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[power]\ndefault_level = "L3"\ndwell_s = 120\nread_only = true\n')
    config = load_config(path)
    assert (config.power_default_level, config.power_dwell_s, config.power_read_only) == (
        "L3",
        120.0,
        True,
    )


def test_a_negative_dwell_time_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[power]\ndwell_s = -1\n")
    with pytest.raises(ConfigError, match=r"dwell_s must be in \[0, 86400\]"):
        load_config(path)


def test_upstream_credentials_in_the_url_and_as_a_key_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        AgentConfig(upstream="http://u:p@127.0.0.1:8080", upstream_api_key="k")
    AgentConfig(upstream="http://u:p@127.0.0.1:8080")
    AgentConfig(upstream="http://127.0.0.1:8080", upstream_api_key="k")
    with pytest.raises(ConfigError, match="not a valid URL"):
        AgentConfig(upstream="http://[::1")
