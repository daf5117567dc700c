"""Secrets outside the API: the upstream's key stays out of `ps`, the data directory is the
owner's alone, and a token file anyone could have read (or an empty one) is refused, not used
or silently replaced."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from joulegate_agent.agent import DATABASE_FILE, Agent
from joulegate_agent.api.token import TOKEN_ENV, load_or_create_token
from joulegate_agent.cli.inference import UPSTREAM_KEY_ENV, credential_warnings, proxy_overrides
from joulegate_agent.cli.main import build_parser, main
from joulegate_agent.config import AgentConfig, ConfigError
from joulegate_agent.errors import EX_CONFIG, UnusableDataError

UPSTREAM = "http://127.0.0.1:8080"


def serve_args(*flags: str) -> list[str]:
    return ["serve", "--upstream", UPSTREAM, *flags]


def overrides(*flags: str) -> dict[str, object]:
    return proxy_overrides(build_parser().parse_args(serve_args(*flags)))


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A shell's usual umask, whatever the test runner's is."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_upstream_key_can_come_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "upstream.key"
    key_file.write_text("sk-from-a-file\n")
    assert overrides("--upstream-api-key-file", str(key_file))["upstream_api_key"] == (
        "sk-from-a-file"
    )


def test_the_upstream_key_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "sk-from-the-environment")
    assert overrides()["upstream_api_key"] == "sk-from-the-environment"


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_an_empty_or_missing_upstream_key_file_is_a_clear_error(
    content: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "upstream.key"
    if content:
        key_file.write_text(content)
    with pytest.raises(ConfigError, match=str(key_file)):
        overrides("--upstream-api-key-file", str(key_file))


def test_credentials_on_the_command_line_are_warned_about() -> None:
    [warning] = credential_warnings(
        build_parser().parse_args(serve_args("--upstream-api-key", "sk-visible"))
    )
    assert "--upstream-api-key-file" in warning
    assert UPSTREAM_KEY_ENV in warning
    assert "sk-visible" not in warning
    in_url = build_parser().parse_args(
        ["serve", "--upstream", "http://admin:s3cret@127.0.0.1:8080"]
    )
    [warning] = credential_warnings(in_url)
    assert "user:password" in warning
    assert "s3cret" not in warning
    assert credential_warnings(build_parser().parse_args(serve_args())) == []


async def test_a_hand_started_agent_keeps_its_data_to_its_owner(
    tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    data_dir = tmp_path / "new" / "data"
    agent = Agent(AgentConfig(data_dir=data_dir, source="simulated", zeroconf=False))
    await agent.start()
    await agent.flush_energy()
    await agent.stop()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files = [p for p in data_dir.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"token", "device_id", DATABASE_FILE}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_token_file_others_can_read_is_refused_with_the_fix(
    mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    token = tmp_path / "token"
    token.write_text("a-token-someone-may-have-read\n")
    token.chmod(mode)
    with pytest.raises(UnusableDataError, match="chmod 600") as refused:
        load_or_create_token(tmp_path)
    assert str(token) in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_empty_token_file_is_refused_not_silently_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    token = tmp_path / "token"
    token.write_text("")
    token.chmod(0o600)
    assert main(["token", "--data-dir", str(tmp_path)]) == EX_CONFIG
    error = capsys.readouterr().err
    assert str(token) in error
    assert "--rotate" in error
    assert token.read_text() == ""
