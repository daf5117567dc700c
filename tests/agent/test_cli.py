"""The `joulegate-agent` command as a user types it."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from joulegate_agent.cli.main import main


def test_measure_runs_the_command_and_reports_its_energy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "samples.csv"
    code = main(
        [
            "measure",
            "--source",
            "simulated",
            "--interval",
            "0.05",
            "--idle",
            "0.5",
            "--out",
            str(out),
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(1.0)",
        ]
    )
    summary = capsys.readouterr().err
    assert code == 0
    assert "energy:" in summary
    assert "idle before:" in summary
    rows = list(csv.DictReader(out.open()))
    assert {row["phase"] for row in rows} == {"idle", "command"}
    busy = [float(r["board_w"]) for r in rows if r["phase"] == "command" and float(r["t_s"]) > 0.5]
    assert sum(busy) / len(busy) > 8.0


def test_measure_passes_on_the_commands_exit_code(tmp_path: Path) -> None:
    args = [
        "measure",
        "--source",
        "simulated",
        "--idle",
        "0",
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(3)",
    ]
    assert main(args) == 3


def test_measure_without_a_command_says_how_to_give_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", "--source", "simulated"]) == 2
    assert "after --" in capsys.readouterr().err


def test_token_prints_the_same_token_until_rotated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["token", "--data-dir", str(tmp_path)])
    first = capsys.readouterr().out.strip()
    main(["token", "--data-dir", str(tmp_path)])
    assert capsys.readouterr().out.strip() == first
    main(["token", "--data-dir", str(tmp_path), "--rotate"])
    assert capsys.readouterr().out.strip() != first


def test_doctor_on_a_box_without_sensors_fails_with_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip()


def test_serve_with_a_bad_config_file_exits_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent]\nport = 70000\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "port must be between 1 and 65535" in capsys.readouterr().err


def test_serve_with_an_unusable_data_directory_exits_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file, not a folder\n")
    args = ["serve", "--source", "simulated", "--no-zeroconf", "--data-dir", str(not_a_folder)]
    assert main(args) == 2
    assert str(not_a_folder) in capsys.readouterr().err
