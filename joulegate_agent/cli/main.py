"""The `joulegate-agent` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from joulegate_agent import __version__
from joulegate_agent.batch.cli import add_batch_flags, batch_overrides
from joulegate_agent.cli import inference as cli_inference
from joulegate_agent.cli import power as cli_power
from joulegate_agent.config import AgentConfig, ConfigError, load_config
from joulegate_agent.errors import EX_CONFIG, UnusableDataError
from joulegate_agent.metering.sources import KINDS, NoPowerSourceError
from joulegate_agent.metering.sources.base import Calibration

DEFAULT_CONFIG = Path("/etc/joulegate/agent.toml")


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=KINDS, help="power source (default: auto)")
    parser.add_argument(
        "--root", type=Path, help="filesystem root to read sysfs under (default: /)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="joulegate-agent",
        description="Meter the energy of every inference on this box; serve it to Home Assistant.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the agent: sampler, meter and HTTP API")
    serve.add_argument(
        "--config", type=Path, help=f"TOML config file (default: {DEFAULT_CONFIG} if it exists)"
    )
    _add_source_flags(serve)
    serve.add_argument("--host", help="address to listen on (default: 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default: 8787)")
    serve.add_argument("--data-dir", type=Path, help="where the token and ledger live")
    serve.add_argument("--sample-rate", type=float, dest="sample_rate_hz", help="Hz (default: 10)")
    serve.add_argument("--gain", type=float, help="calibration gain to wall power")
    serve.add_argument("--offset-w", type=float, help="calibration offset to wall power, W")
    serve.add_argument(
        "--no-zeroconf", action="store_true", help="do not advertise the agent over mDNS"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    cli_inference.add_proxy_flags(serve)
    add_batch_flags(serve)

    doctor = commands.add_parser("doctor", help="show what power and heat sensors were found")
    _add_source_flags(doctor)
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    measure = commands.add_parser(
        "measure",
        help="run a command and report the energy it used",
        usage="%(prog)s [options] -- CMD ARGS...",
    )
    _add_source_flags(measure)
    measure.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    measure.add_argument("--idle", type=float, default=2.0, help="seconds of idle measured first")
    measure.add_argument("--out", type=Path, help="write every sample to this CSV file")
    cli_inference.add_measure_flags(measure)
    measure.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")

    token = commands.add_parser("token", help="show the API token, or rotate it")
    token.add_argument("--data-dir", type=Path, default=None, help="agent data directory")
    token.add_argument("--config", type=Path, help="TOML config file naming the data directory")
    token.add_argument("--rotate", action="store_true", help="replace the token with a new one")
    cli_inference.add_export_parser(commands)
    cli_inference.add_simulate_parser(commands)
    cli_power.add_power_parsers(commands)
    return parser


def _config_for(args: argparse.Namespace) -> AgentConfig:
    path = getattr(args, "config", None)
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    config = load_config(path)
    calibration = None
    if getattr(args, "gain", None) is not None or getattr(args, "offset_w", None) is not None:
        calibration = Calibration(
            gain=args.gain if args.gain is not None else config.calibration.gain,
            offset_w=args.offset_w if args.offset_w is not None else config.calibration.offset_w,
        )
    return config.with_overrides(
        source=getattr(args, "source", None),
        root=getattr(args, "root", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
        sample_rate_hz=getattr(args, "sample_rate_hz", None),
        calibration=calibration,
        zeroconf=False if getattr(args, "no_zeroconf", False) else None,
        **cli_inference.proxy_overrides(args),
        **batch_overrides(args),
    )


def _run_serve(args: argparse.Namespace) -> int:
    from joulegate_agent.api.heap import pin_mmap_threshold
    from joulegate_agent.api.serve import serve

    pin_mmap_threshold()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = _config_for(args)
    for warning in cli_inference.credential_warnings(args):
        logging.getLogger("joulegate_agent").warning(warning)
    asyncio.run(serve(config))
    return 0


def _run_doctor(args: argparse.Namespace) -> int:
    from joulegate_agent.cli.doctor import build_report, format_report

    report = build_report(args.root or Path("/"), args.source or "auto")
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["sources"] else 1


def _run_measure(args: argparse.Namespace) -> int:
    from joulegate_agent.cli.measure import format_summary, measure_command
    from joulegate_agent.metering.meter import Meter
    from joulegate_agent.metering.sources import detect_sources

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise ConfigError("give the command to measure after --, e.g. measure -- python3 infer.py")
    if args.interval <= 0:
        raise ConfigError(f"--interval must be positive, got {args.interval}")
    meter = Meter()
    source = detect_sources(
        args.root or Path("/"), args.source or "auto", load=lambda: meter.working
    )[0]
    result = measure_command(
        source, meter, command, interval_s=args.interval, idle_s=args.idle, csv_out=args.out
    )
    print(format_summary(result), file=sys.stderr)
    cli_inference.record_measurement(args, _config_for(args), result, command)
    return result.exit_code


def _run_token(args: argparse.Namespace) -> int:
    from joulegate_agent.api.token import load_or_create_token, rotate_token

    data_dir = args.data_dir or _config_for(args).data_dir
    token = rotate_token(data_dir) if args.rotate else load_or_create_token(data_dir)
    print(token)
    return 0


_COMMANDS = {
    "serve": _run_serve,
    "doctor": _run_doctor,
    "measure": _run_measure,
    "token": _run_token,
    "export": lambda args: cli_inference.run_export(args, _config_for(args)),
    "simulate-llm": cli_inference.run_simulate,
    "calibrate": lambda args: cli_power.run_calibrate(args, _config_for(args)),
    "restore-power": lambda args: cli_power.run_restore(_config_for(args)),
    "power-dropin": cli_power.run_dropin,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, NoPowerSourceError) as err:
        print(f"joulegate-agent: {err}", file=sys.stderr)
        return 2
    except UnusableDataError as err:
        print(f"joulegate-agent: {err}", file=sys.stderr)
        return EX_CONFIG
    except OSError as err:
        # An unusable data directory or a busy port: say which file or address, no traceback.
        where = f" ({err.filename})" if err.filename else ""
        print(f"joulegate-agent: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
