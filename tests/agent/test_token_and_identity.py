"""The bearer token and the device id: created once, kept, private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from joulegate_agent.api.token import TOKEN_ENV, load_or_create_token, rotate_token, token_matches
from joulegate_agent.identity import detect_board, load_device_id


def test_token_is_generated_on_first_start_and_kept(tmp_path: Path) -> None:
    first = load_or_create_token(tmp_path)
    assert len(first) >= 32
    assert load_or_create_token(tmp_path) == first


def test_token_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    load_or_create_token(tmp_path)
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600


def test_environment_token_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_or_create_token(tmp_path)
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert load_or_create_token(tmp_path) == "from-the-environment"


def test_rotating_replaces_the_token(tmp_path: Path) -> None:
    old = load_or_create_token(tmp_path)
    new = rotate_token(tmp_path)
    assert new != old
    assert load_or_create_token(tmp_path) == new


def test_token_comparison_matches_only_the_exact_token() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("abc", "ab")


def test_device_id_comes_from_machine_id_and_stays(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/machine-id").write_text("0123456789abcdef\n")
    device_id = load_device_id(tmp_path / "data", root)
    (root / "etc/machine-id").write_text("another-machine\n")
    assert load_device_id(tmp_path / "data", root) == device_id
    assert load_device_id(tmp_path / "other-data", root) != device_id


def test_device_id_is_random_and_kept_without_machine_id(tmp_path: Path) -> None:
    device_id = load_device_id(tmp_path / "data", tmp_path / "empty-root")
    assert len(device_id) == 16
    assert load_device_id(tmp_path / "data", tmp_path / "empty-root") == device_id


def test_jetson_board_model_comes_from_the_device_tree(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    model = "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00"
    (tmp_path / "proc/device-tree/model").write_text(model)
    board = detect_board(tmp_path, simulated=False)
    assert board.manufacturer == "NVIDIA"
    assert board.model == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"


def test_other_linux_boards_are_named_from_dmi(tmp_path: Path) -> None:
    (tmp_path / "sys/class/dmi/id").mkdir(parents=True)
    (tmp_path / "sys/class/dmi/id/sys_vendor").write_text("Intel Corporation\n")
    (tmp_path / "sys/class/dmi/id/product_name").write_text("NUC13ANHi7\n")
    board = detect_board(tmp_path, simulated=False)
    assert (board.manufacturer, board.model) == ("Intel Corporation", "NUC13ANHi7")


def test_a_token_that_cannot_be_written_leaves_the_old_one_in_place(tmp_path: Path) -> None:
    old = load_or_create_token(tmp_path)
    (tmp_path / "token.tmp").mkdir()  # the new token's temporary file cannot be created
    with pytest.raises(IsADirectoryError):
        rotate_token(tmp_path)
    assert load_or_create_token(tmp_path) == old


def test_a_temporary_file_left_by_a_crash_does_not_become_the_device_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "device_id.tmp").write_text("half-writ")
    device_id = load_device_id(data, tmp_path / "empty-root")
    assert (data / "device_id").read_text() == device_id + "\n"
    assert not (data / "device_id.tmp").exists()
