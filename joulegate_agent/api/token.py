"""The agent's bearer token: generated once, kept 0600 in the data directory."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from joulegate_agent.errors import UnusableDataError
from joulegate_agent.storage.atomic_file import make_private_dir, replace_file

TOKEN_ENV = "JOULEGATE_TOKEN"  # noqa: S105 - a variable name, not a secret
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def load_or_create_token(data_dir: Path) -> str:
    """JOULEGATE_TOKEN wins; else the stored token; else a new one is written."""
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    path = token_path(data_dir)
    if path.exists():
        try:
            stored = path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise UnusableDataError(
                path,
                "the token file is not UTF-8 text",
                f"replace it with `joulegate-agent token --rotate --data-dir {data_dir}` "
                "(clients then need the new token) or set JOULEGATE_TOKEN",
            ) from None
        if not stored:  # replacing it silently would lock out every client holding the token
            raise UnusableDataError(
                path,
                "the token file is empty",
                "write the agent's token into it, or run "
                f"`joulegate-agent token --rotate --data-dir {data_dir}` for a new one",
            )
        _refuse_if_shared(path)
        return stored
    return rotate_token(data_dir)


def _refuse_if_shared(path: Path) -> None:
    """A token others could have read may be known to them: refuse it rather than trust it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UnusableDataError(
            path,
            f"the token file is readable or writable by others (mode {mode:04o})",
            f"run `chmod 600 {path}`, or `joulegate-agent token --rotate` for a new token",
        )


def rotate_token(data_dir: Path) -> str:
    """Write a fresh token atomically, readable by the owner only."""
    make_private_dir(data_dir)
    token = secrets.token_urlsafe(32)
    replace_file(token_path(data_dir), token + "\n", 0o600)
    return token


def token_matches(expected: str, presented: str) -> bool:
    """Constant-time, so response timing reveals nothing about the token."""
    return hmac.compare_digest(expected.encode(), presented.encode())
