"""The agent's power controller, built from its config: which knobs, which default, where the
restore journal lives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from joulegate_agent.config import AgentConfig, ConfigError
from joulegate_agent.inference.service import InferenceService
from joulegate_agent.metering.sysfs import SysfsRoot
from joulegate_agent.power.controller import PowerController, UnknownLevelError
from joulegate_agent.power.discovery import ConcurrencyHooks, discover
from joulegate_agent.power.journal import RestoreJournal
from joulegate_agent.power.ladder import Level
from joulegate_agent.power.simulated import MODE_FILE, discover_simulated
from joulegate_agent.simulation.board import SimulatedOrinNano


def build_power(
    config: AgentConfig,
    inference: InferenceService,
    simulated: SimulatedOrinNano | None,
    on_change: Callable[[Level | None], None],
) -> PowerController:
    data_dir = Path(config.data_dir)
    hooks = ConcurrencyHooks(
        read=lambda: inference.limit.limit,
        write=inference.limit.set_limit,
        configured=config.max_concurrent_inferences,
    )
    if simulated is not None:
        found = discover_simulated(simulated, data_dir / MODE_FILE, hooks)
    else:
        found = discover(
            SysfsRoot(config.root), nvml=config.source in ("auto", "nvml"), concurrency=hooks
        )
    try:
        controller = PowerController(
            found,
            RestoreJournal(data_dir),
            default_level=config.power_default_level,
            dwell_s=config.power_dwell_s,
            read_only=config.power_read_only,
            on_change=on_change,
        )
    except UnknownLevelError as err:
        found.close()
        raise ConfigError(f"power.default_level: {err}") from None
    inference.power_level = lambda: controller.current_name
    return controller
