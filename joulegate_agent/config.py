"""Agent settings: defaults, an optional TOML file, then command-line flags, in that order."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from joulegate_agent.errors import JoulegateError
from joulegate_agent.metering.sources import KINDS
from joulegate_agent.metering.sources.base import Calibration


class ConfigError(JoulegateError, ValueError):
    """A setting is missing, mistyped or out of range; the message says which and why."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    host: str = "0.0.0.0"  # noqa: S104 - the agent serves the LAN by design; token-protected
    port: int = 8787
    data_dir: Path = Path("/var/lib/joulegate")
    source: str = "auto"
    root: Path = Path("/")
    sample_rate_hz: float = 10.0
    zeroconf: bool = True
    calibration: Calibration = field(default_factory=Calibration)
    upstream: str | None = None
    upstream_api_key: str | None = None
    upstream_timeout_s: float = 300.0
    proxy_auth: bool = True
    max_body_bytes: int = 1024 * 1024
    max_concurrent_inferences: int | None = None
    queue_capacity: int = 32
    gate_fallback_open: bool = False
    retention_days: int = 365
    power_default_level: str | None = None
    power_dwell_s: float = 60.0
    power_read_only: bool = False
    batch_concurrency: int = 1
    batch_retention_days: int = 30
    batch_quota_bytes: int = 10 * 1024**3
    batch_max_file_bytes: int = 200 * 1000**2

    def __post_init__(self) -> None:
        if self.source not in KINDS:
            raise ConfigError(f"source must be one of {', '.join(KINDS)}, got {self.source!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, got {self.port}")
        if not 0.1 <= self.sample_rate_hz <= 1000:
            raise ConfigError(
                f"sample_rate_hz must be between 0.1 and 1000, got {self.sample_rate_hz}"
            )
        if self.calibration.gain <= 0:
            raise ConfigError(f"calibration gain must be positive, got {self.calibration.gain}")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if self.max_concurrent_inferences is not None and self.max_concurrent_inferences < 1:
            raise ConfigError("max_concurrent_inferences must be at least 1 when set")
        if self.queue_capacity < 0:
            raise ConfigError(f"queue_capacity cannot be negative, got {self.queue_capacity}")
        if self.retention_days < 1:
            raise ConfigError(f"retention_days must be at least 1, got {self.retention_days}")
        if not 0 <= self.power_dwell_s <= 86400:
            raise ConfigError(f"power dwell_s must be in [0, 86400], got {self.power_dwell_s}")
        if self.batch_concurrency < 1:
            raise ConfigError(f"batch_concurrency must be at least 1, got {self.batch_concurrency}")
        if self.batch_retention_days < 1:
            raise ConfigError(
                f"batch_retention_days must be at least 1, got {self.batch_retention_days}"
            )
        if self.batch_quota_bytes < 1 or self.batch_max_file_bytes < 1:
            raise ConfigError("batch_quota_bytes and batch_max_file_bytes must be positive")
        if not 0 < self.upstream_timeout_s <= 86400:
            raise ConfigError(
                f"upstream_timeout_s must be in (0, 86400], got {self.upstream_timeout_s}"
            )
        if self.upstream is not None and not self.upstream.startswith(("http://", "https://")):
            raise ConfigError(f"upstream must be an http:// or https:// URL, got {self.upstream!r}")
        try:
            in_url = self.upstream is not None and urlsplit(self.upstream).username is not None
        except ValueError as err:
            raise ConfigError(f"upstream is not a valid URL ({err}): {self.upstream!r}") from err
        if self.upstream_api_key and in_url:
            # Both would set the upstream's Authorization header: every request would fail.
            raise ConfigError(
                "give the upstream's credentials either in the upstream URL (user:password@) "
                "or as upstream_api_key, not both"
            )

    def with_overrides(self, **overrides: Any) -> AgentConfig:
        """Apply the flags a user actually gave (None means 'not given')."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return replace(self, **given)
        except TypeError as err:
            raise ConfigError(str(err)) from err


# TOML table -> {key in the file: field of AgentConfig}
_TABLES: dict[str, dict[str, str]] = {
    "agent": {
        "host": "host",
        "port": "port",
        "data_dir": "data_dir",
        "source": "source",
        "root": "root",
        "sample_rate_hz": "sample_rate_hz",
        "zeroconf": "zeroconf",
    },
    "proxy": {
        "upstream": "upstream",
        "upstream_api_key": "upstream_api_key",
        "upstream_timeout_s": "upstream_timeout_s",
        "auth": "proxy_auth",
        "max_body_bytes": "max_body_bytes",
        "max_concurrent_inferences": "max_concurrent_inferences",
        "queue_capacity": "queue_capacity",
    },
    "gate": {"fallback_open": "gate_fallback_open"},
    "ledger": {"retention_days": "retention_days"},
    "power": {
        "default_level": "power_default_level",
        "dwell_s": "power_dwell_s",
        "read_only": "power_read_only",
    },
    "batch": {
        "concurrency": "batch_concurrency",
        "retention_days": "batch_retention_days",
        "quota_bytes": "batch_quota_bytes",
        "max_file_bytes": "batch_max_file_bytes",
    },
}

_TYPES: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "source": (str,),
    "sample_rate_hz": (int, float),
    "zeroconf": (bool,),
    "upstream": (str,),
    "upstream_api_key": (str,),
    "upstream_timeout_s": (int, float),
    "proxy_auth": (bool,),
    "max_body_bytes": (int,),
    "max_concurrent_inferences": (int,),
    "queue_capacity": (int,),
    "gate_fallback_open": (bool,),
    "retention_days": (int,),
    "power_default_level": (str,),
    "power_dwell_s": (int, float),
    "power_read_only": (bool,),
    "batch_concurrency": (int,),
    "batch_retention_days": (int,),
    "batch_quota_bytes": (int,),
    "batch_max_file_bytes": (int,),
}


def load_config(path: Path | None) -> AgentConfig:
    """Read a TOML file; unknown tables or keys are errors, so a typo never goes unnoticed."""
    if path is None:
        return AgentConfig()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
    values: dict[str, Any] = {}
    gain, offset = 1.0, 0.0
    for table, content in document.items():
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: expected a [{table}] table")
        if table == "calibration":
            unknown = set(content) - {"gain", "offset_w"}
            if unknown:
                raise ConfigError(
                    f"{path}: unknown key(s) in [calibration]: {', '.join(sorted(unknown))}"
                )
            gain = _number(path, "calibration.gain", content.get("gain", 1.0))
            offset = _number(path, "calibration.offset_w", content.get("offset_w", 0.0))
            continue
        mapping = _TABLES.get(table)
        if mapping is None:
            raise ConfigError(f"{path}: unknown table [{table}]")
        for key, value in content.items():
            name = mapping.get(key)
            if name is None:
                raise ConfigError(f"{path}: unknown key {key!r} in [{table}]")
            values[name] = _coerce(path, f"{table}.{key}", name, value)
    try:
        return AgentConfig(**values, calibration=Calibration(gain=gain, offset_w=offset))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def _number(path: Path, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: {key} must be a number, got {value!r}")
    return float(value)


def _coerce(path: Path, key: str, name: str, value: object) -> object:
    if name in ("data_dir", "root"):
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be a path string, got {value!r}")
        return Path(value)
    if name == "max_concurrent_inferences" and value == 0:
        return None
    expected = _TYPES[name]
    if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
        kind = " or ".join(t.__name__ for t in expected)
        raise ConfigError(f"{path}: {key} must be {kind}, got {value!r}")
    if expected == (int, float):
        assert isinstance(value, (int, float))
        return float(value)
    return value
