"""The batch queue's settings: `[batch]` in the config file, `--batch-*` flags, their limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulegate_agent.cli.main import _config_for, build_parser
from joulegate_agent.config import AgentConfig, ConfigError, load_config


def test_the_batch_table_of_the_config_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        "[batch]\nconcurrency = 2\nretention_days = 7\nquota_bytes = 5000\nmax_file_bytes = 4000\n"
    )
    config = load_config(path)
    assert (
        config.batch_concurrency,
        config.batch_retention_days,
        config.batch_quota_bytes,
        config.batch_max_file_bytes,
    ) == (2, 7, 5000, 4000)


def test_the_batch_flags_win_over_the_defaults() -> None:
    args = build_parser().parse_args(
        ["serve", "--batch-concurrency", "3", "--batch-retention-days", "14"]
    )
    config = _config_for(args)
    assert (config.batch_concurrency, config.batch_retention_days) == (3, 14)
    assert config.batch_max_file_bytes == 200_000_000


def test_the_defaults_are_openais() -> None:
    config = AgentConfig()
    assert (config.batch_concurrency, config.batch_retention_days) == (1, 30)
    assert config.batch_max_file_bytes == 200_000_000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_concurrency": 0}, "batch_concurrency"),
        ({"batch_retention_days": 0}, "batch_retention_days"),
        ({"batch_quota_bytes": 0}, "batch_quota_bytes"),
    ],
)
def test_batch_settings_out_of_range_are_refused(overrides: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentConfig(**overrides)  # type: ignore[arg-type]
