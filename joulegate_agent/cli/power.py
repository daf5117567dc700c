"""The power-level commands: calibrate, restore-power, power-dropin."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from joulegate_agent.config import AgentConfig, ConfigError


def add_power_parsers(commands: Any) -> None:
    from joulegate_agent.power.calibrate import (
        DEFAULT_MAX_TOKENS,
        DEFAULT_RUNS,
        DEFAULT_SETTLE_S,
    )

    cal = commands.add_parser(
        "calibrate", help="run a fixed prompt at each power level and fill the cost table"
    )
    cal.add_argument("--url", default="http://127.0.0.1:8787", help="the agent (its proxy)")
    cal.add_argument("--token", help="the agent's token (default: read from its data directory)")
    cal.add_argument("--data-dir", type=Path, help="agent data directory (holds the token)")
    cal.add_argument("--config", type=Path, help="TOML config file naming the data directory")
    cal.add_argument("--model", help="model to ask for (default: the upstream's own)")
    cal.add_argument("--levels", help="comma-separated level names (default: all)")
    cal.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="prompts per level")
    cal.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="per prompt")
    cal.add_argument(
        "--settle", type=float, default=DEFAULT_SETTLE_S, help="seconds of rest at each level"
    )

    restore = commands.add_parser(
        "restore-power", help="put back the power settings the agent changed (ExecStopPost)"
    )
    restore.add_argument("--data-dir", type=Path, help="agent data directory (holds the journal)")
    restore.add_argument("--config", type=Path, help="TOML config file naming the data directory")

    dropin = commands.add_parser(
        "power-dropin",
        help="print a systemd drop-in that lets the agent's unit write its power knobs",
    )
    dropin.add_argument("--root", type=Path, help="filesystem root to read sysfs under")


def run_calibrate(args: argparse.Namespace, config: AgentConfig) -> int:
    from joulegate_agent.api.token import load_or_create_token
    from joulegate_agent.power.calibrate import CalibrationError, calibrate, format_table

    if args.runs < 1 or args.max_tokens < 1 or args.settle < 0:
        raise ConfigError("--runs and --max-tokens must be at least 1, --settle not negative")
    token = args.token or load_or_create_token(Path(config.data_dir))
    levels = [name.strip() for name in args.levels.split(",")] if args.levels else None
    try:
        table = asyncio.run(
            calibrate(
                args.url,
                token,
                model=args.model,
                levels=levels,
                runs=args.runs,
                max_tokens=args.max_tokens,
                settle_s=args.settle,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    except CalibrationError as err:
        print(f"joulegate-agent: {err}", file=sys.stderr)
        return 1
    print(format_table(table))
    return 0


def run_restore(config: AgentConfig) -> int:
    from joulegate_agent.power.journal import RestoreJournal

    journal = RestoreJournal(Path(config.data_dir))
    if not journal.pending:
        print("nothing to restore: the agent left no power settings changed")
        return 0
    count = len(journal.load())
    failures = journal.restore()
    if failures:
        for failure in failures:
            print(f"joulegate-agent: {failure}", file=sys.stderr)
        return 1
    print(f"restored {count} power settings from {journal.path}")
    return 0


def run_dropin(args: argparse.Namespace) -> int:
    from joulegate_agent.metering.sysfs import SysfsRoot
    from joulegate_agent.power.discovery import discover
    from joulegate_agent.power.knobs import FileKnob

    root = (args.root or Path("/")).resolve()
    found = discover(SysfsRoot(root), nvml=False)
    folders = sorted(
        {
            "/" + path.parent.relative_to(root).as_posix()
            for knob in found.knobs
            if isinstance(knob, FileKnob)
            for path in knob.files
        }
    )
    if not folders:
        print("joulegate-agent: no power knob files on this box", file=sys.stderr)
        return 1
    print("# joulegate-agent power-dropin: lets the unit write its power knobs, nothing else")
    print("[Service]")
    print("ReadWritePaths=" + " ".join(folders))
    return 0
