"""The command-line parts about inference: proxy flags, `export`, `simulate-llm`, and recording
`measure` runs in the ledger. `cli.py` calls these; they live here to keep that file small."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from joulegate_agent.agent import DATABASE_FILE
from joulegate_agent.cli.measure import MeasureResult
from joulegate_agent.config import AgentConfig, ConfigError
from joulegate_agent.storage.ledger import (
    EXPORT_FORMATS,
    InferenceRow,
    Ledger,
    export_rows,
    parse_iso_time,
)
from joulegate_agent.storage.store import Store

LABEL_MAX_CHARS = 200
UPSTREAM_KEY_ENV = "JOULEGATE_UPSTREAM_API_KEY"


def add_proxy_flags(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("proxy, gate and ledger")
    group.add_argument("--upstream", help="URL of the local LLM server to proxy to")
    group.add_argument(
        "--upstream-api-key",
        help="API key the agent sends to the upstream (visible in ps: prefer the next two)",
    )
    group.add_argument(
        "--upstream-api-key-file",
        type=Path,
        help=f"read the upstream's API key from this file (or set ${UPSTREAM_KEY_ENV})",
    )
    group.add_argument(
        "--no-proxy-auth",
        action="store_true",
        help="let proxy routes through without the agent's token (trusted LAN only)",
    )
    group.add_argument(
        "--upstream-timeout",
        type=float,
        dest="upstream_timeout_s",
        help="longest silence from the upstream before 504, seconds (default: 300)",
    )
    group.add_argument("--max-body-bytes", type=int, help="request body limit (default: 1 MiB)")
    group.add_argument(
        "--max-concurrent-inferences", type=int, help="refuse more than this many (default: none)"
    )
    group.add_argument("--queue-capacity", type=int, help="deferral queue length (default: 32)")
    group.add_argument(
        "--gate-fallback-open",
        action="store_true",
        help="when a lease runs out, open the gate (default: close it)",
    )
    group.add_argument(
        "--retention-days", type=int, help="keep ledger rows this long (default: 365)"
    )


def proxy_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides the proxy flags gave (None: not given)."""
    return {
        "upstream": getattr(args, "upstream", None),
        "upstream_api_key": _upstream_api_key(args),
        "upstream_timeout_s": getattr(args, "upstream_timeout_s", None),
        "proxy_auth": False if getattr(args, "no_proxy_auth", False) else None,
        "max_body_bytes": getattr(args, "max_body_bytes", None),
        "max_concurrent_inferences": getattr(args, "max_concurrent_inferences", None),
        "queue_capacity": getattr(args, "queue_capacity", None),
        "gate_fallback_open": True if getattr(args, "gate_fallback_open", False) else None,
        "retention_days": getattr(args, "retention_days", None),
    }


def _upstream_api_key(args: argparse.Namespace) -> str | None:
    """The key from --upstream-api-key, else its file, else the environment (None: not given,
    so the config file's applies)."""
    given: str | None = getattr(args, "upstream_api_key", None)
    if given:
        return given
    path: Path | None = getattr(args, "upstream_api_key_file", None)
    if path is not None:
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise ConfigError(f"cannot read the upstream API key file {path}: {reason}") from err
        if not key:
            raise ConfigError(f"the upstream API key file {path} is empty; write the key into it")
        return key
    return os.environ.get(UPSTREAM_KEY_ENV, "").strip() or None


def credential_warnings(args: argparse.Namespace) -> list[str]:
    """Credentials given on the command line, where any local user can read them (`ps`)."""
    warnings = []
    if getattr(args, "upstream_api_key", None):
        warnings.append(
            "--upstream-api-key puts the upstream's key on the command line, where any user of "
            f"this machine can read it (ps); use --upstream-api-key-file FILE or "
            f"${UPSTREAM_KEY_ENV} instead"
        )
    upstream: str | None = getattr(args, "upstream", None)
    try:
        has_password = upstream is not None and urlsplit(upstream).password is not None
    except ValueError:
        has_password = False  # the config check reports the URL itself
    if has_password:
        warnings.append(
            "--upstream carries a user:password, which any user of this machine can read on the "
            "command line (ps); put the upstream in the config file (root-only) instead"
        )
    return warnings


def add_ledger_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="agent data directory (holds the ledger)")
    parser.add_argument("--config", type=Path, help="TOML config file naming the data directory")


def add_export_parser(commands: Any) -> None:
    export = commands.add_parser("export", help="write the inference ledger as CSV or JSON Lines")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl", dest="fmt")
    export.add_argument("--since", help="only rows that started at or after this ISO time/date")
    export.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    add_ledger_flags(export)


def add_simulate_parser(commands: Any) -> None:
    from joulegate_agent.simulation.llm import (
        DEFAULT_MODEL,
        DEFAULT_PREFILL_TOKENS_PER_S,
        DEFAULT_TOKENS_PER_S,
        LLAMA_SERVER_SLOTS,
    )

    sim = commands.add_parser(
        "simulate-llm",
        help="run a simulated LLM server (llama.cpp, OpenAI-compatible and Ollama routes)",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    sim.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name (default: {DEFAULT_MODEL})"
    )
    sim.add_argument(
        "--tokens-per-s",
        type=float,
        default=DEFAULT_TOKENS_PER_S,
        help=f"decode rate (default: {DEFAULT_TOKENS_PER_S:g}; 0: as fast as possible)",
    )
    sim.add_argument(
        "--prefill-tokens-per-s",
        type=float,
        default=DEFAULT_PREFILL_TOKENS_PER_S,
        help=f"prompt rate (default: {DEFAULT_PREFILL_TOKENS_PER_S:g}; 0: no pause)",
    )
    sim.add_argument(
        "--slots",
        type=int,
        default=0,
        help=(
            "requests served at once; the rest wait (1: one at a time like Ollama on a small "
            f"board; {LLAMA_SERVER_SLOTS}: llama-server's default; default: 0, no limit)"
        ),
    )
    sim.add_argument(
        "--power-mode-file",
        type=Path,
        help=(
            "decode at the simulated board's power mode, read from this file on each request "
            "(an agent with --source simulated writes DATA_DIR/simulated-power-mode)"
        ),
    )


def add_measure_flags(measure: argparse.ArgumentParser) -> None:
    add_ledger_flags(measure)
    measure.add_argument("--model", help="model name to record with the window")
    measure.add_argument(
        "--no-record", action="store_true", help="do not record the run in the agent's ledger"
    )


def run_export(args: argparse.Namespace, config: AgentConfig) -> int:
    path = Path(config.data_dir) / DATABASE_FILE
    if not path.exists():
        raise ConfigError(f"no ledger at {path}; give the agent's --data-dir")
    since = None
    if args.since:
        try:
            since = parse_iso_time(args.since)
        except ValueError as err:
            raise ConfigError(f"--since: {err}") from err
    store = Store(path)
    try:
        ledger = Ledger(store)
        if args.output is None:
            export_rows(ledger, sys.stdout, args.fmt, since)
        else:
            with args.output.open("w", encoding="utf-8", newline="") as handle:
                count = export_rows(ledger, handle, args.fmt, since)
            print(f"wrote {count} rows to {args.output}", file=sys.stderr)
    finally:
        store.close()
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from joulegate_agent.simulation.llm import (
        SimulatorSettings,
        run_simulator,
    )

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if args.tokens_per_s < 0 or args.prefill_tokens_per_s < 0:
        raise ConfigError("rates cannot be negative")
    if args.slots < 0:
        raise ConfigError(f"--slots cannot be negative, got {args.slots}")
    settings = SimulatorSettings(
        model=args.model,
        tokens_per_s=args.tokens_per_s,
        prefill_tokens_per_s=args.prefill_tokens_per_s,
        slots=args.slots,
        power_mode_file=args.power_mode_file,
    )
    asyncio.run(run_simulator(args.host, args.port, settings))
    return 0


def measurement_row(
    result: MeasureResult,
    command: list[str],
    *,
    model: str | None = None,
    ended_at: datetime | None = None,
) -> InferenceRow:
    """A ledger row for one `measure` run. `measure` does not consult the gate: gate_open is
    recorded as false."""
    ended = ended_at or datetime.now(timezone.utc)
    return InferenceRow(
        window_id=uuid.uuid4().hex,
        started_at=ended - timedelta(seconds=result.duration_s),
        ended_at=ended,
        duration_s=result.duration_s,
        energy_j=result.energy_j,
        energy_error_j=result.energy_error_j,
        marginal_j=None if result.marginal_j is None else max(0.0, result.marginal_j),
        avg_w=result.avg_w,
        peak_w=result.peak_w,
        idle_w=result.idle_w,
        outcome="ok" if result.exit_code == 0 else "error",
        gate_open=False,
        boundary=result.boundary,
        model=model,
        route="measure",
        label=" ".join(command)[:LABEL_MAX_CHARS],
    )


def record_measurement(
    args: argparse.Namespace, config: AgentConfig, result: MeasureResult, command: list[str]
) -> InferenceRow | None:
    """Add the run to the agent's ledger: the one in --data-dir, else the configured one if it
    exists (unless --no-record). A ledger that cannot be opened is reported on stderr and does
    not change the command's exit code."""
    if getattr(args, "no_record", False):
        return None
    path = Path(config.data_dir) / DATABASE_FILE
    if getattr(args, "data_dir", None) is None and not path.exists():
        return None  # no agent set up here, and none named: nothing to record into
    row = measurement_row(result, command, model=getattr(args, "model", None))
    try:
        store = Store(path)
    except Exception as err:
        print(f"joulegate-agent: not recorded in the ledger at {path}: {err}", file=sys.stderr)
        return None
    try:
        recorded = Ledger(store, retention_days=config.retention_days).record(row)
    finally:
        store.close()
    print(f"recorded:        ledger row {recorded.id} in {path}", file=sys.stderr)
    return recorded
