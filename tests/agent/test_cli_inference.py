"""`export`, `simulate-llm`, the proxy flags of `serve`, and `measure` writing to the ledger."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from joulegate_agent.cli.main import _config_for, build_parser, main
from joulegate_agent.storage.ledger import JSON_FIELDS, InferenceRow, Ledger
from joulegate_agent.storage.store import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def ledger_with_rows(data_dir: Path, count: int) -> None:
    store = Store(data_dir / "joulegate.db")
    try:
        ledger = Ledger(store)
        for n in range(count):
            ledger.record(
                InferenceRow(
                    window_id=f"w{n}",
                    started_at=T0 + timedelta(hours=n),
                    ended_at=T0 + timedelta(hours=n, seconds=3),
                    duration_s=3.0,
                    energy_j=30.0,
                    outcome="ok",
                    gate_open=True,
                    boundary="module input rail (VDD_IN)",
                    output_tokens=60,
                )
            )
    finally:
        store.close()


def test_export_jsonl_writes_every_row_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_with_rows(tmp_path, 3)
    assert main(["export", "--format", "jsonl", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["window_id"] for line in lines] == ["w0", "w1", "w2"]


def test_export_csv_since_a_time_to_a_file(tmp_path: Path) -> None:
    ledger_with_rows(tmp_path, 3)
    out = tmp_path / "ledger.csv"
    since = (T0 + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    code = main(
        ["export", "--format", "csv", "--since", since, "--data-dir", str(tmp_path), "-o", str(out)]
    )
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["window_id"] for r in table] == ["w1", "w2"]
    assert list(table[0]) == list(JSON_FIELDS)


def test_export_without_a_ledger_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--data-dir", str(tmp_path / "none")]) == 2
    assert "no ledger" in capsys.readouterr().err


def test_export_rejects_a_bad_since(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger_with_rows(tmp_path, 1)
    assert main(["export", "--since", "yesterday", "--data-dir", str(tmp_path)]) == 2
    assert "--since" in capsys.readouterr().err


def measure(data_dir: Path, *extra: str) -> int:
    return main(
        [
            "measure",
            "--source",
            "simulated",
            "--interval",
            "0.02",
            "--idle",
            "0.3",
            "--data-dir",
            str(data_dir),
            *extra,
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(0.3)",
        ]
    )


def test_measure_records_its_window_in_the_ledger(tmp_path: Path) -> None:
    assert measure(tmp_path, "--model", "llama3.2:3b") == 0
    store = Store(tmp_path / "joulegate.db")
    try:
        [row] = list(Ledger(store).rows())
        totals = Ledger(store).totals()
    finally:
        store.close()
    assert (row.route, row.model, row.outcome) == ("measure", "llama3.2:3b", "ok")
    assert row.label is not None
    assert "time.sleep(0.3)" in row.label
    assert row.duration_s == pytest.approx(0.3, abs=0.15)
    assert row.energy_j > 0
    assert totals.inferences == 1


def test_measure_with_no_record_leaves_the_ledger_alone(tmp_path: Path) -> None:
    assert measure(tmp_path, "--no-record") == 0
    assert not (tmp_path / "joulegate.db").exists()


def test_serve_flags_set_the_proxy_gate_and_ledger_settings() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--upstream",
            "http://127.0.0.1:8080",
            "--upstream-api-key",
            "sk-local",
            "--upstream-timeout",
            "30",
            "--no-proxy-auth",
            "--max-body-bytes",
            "4096",
            "--max-concurrent-inferences",
            "2",
            "--queue-capacity",
            "8",
            "--gate-fallback-open",
            "--retention-days",
            "30",
        ]
    )
    config = _config_for(args)
    assert (config.upstream, config.upstream_api_key, config.upstream_timeout_s) == (
        "http://127.0.0.1:8080",
        "sk-local",
        30.0,
    )
    assert (config.proxy_auth, config.max_body_bytes, config.max_concurrent_inferences) == (
        False,
        4096,
        2,
    )
    assert (config.queue_capacity, config.gate_fallback_open, config.retention_days) == (
        8,
        True,
        30,
    )


def test_serve_without_proxy_flags_keeps_the_safe_defaults() -> None:
    config = _config_for(build_parser().parse_args(["serve"]))
    assert (config.upstream, config.proxy_auth, config.gate_fallback_open) == (None, True, False)


def test_simulate_llm_takes_port_and_rate() -> None:
    args = build_parser().parse_args(["simulate-llm", "--port", "8081", "--tokens-per-s", "30"])
    assert (args.port, args.tokens_per_s, args.host) == (8081, 30.0, "127.0.0.1")


def test_simulate_llm_takes_its_slots() -> None:
    assert build_parser().parse_args(["simulate-llm"]).slots == 0
    assert build_parser().parse_args(["simulate-llm", "--slots", "1"]).slots == 1


def test_simulate_llm_rejects_negative_slots(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-llm", "--slots", "-1"]) == 2
    assert "--slots" in capsys.readouterr().err


def test_simulate_llm_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-llm", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
