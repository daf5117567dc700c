"""When a batch must be done: OpenAI's `completion_window`, or a deadline in its metadata.

`completion_window` is "24h", the one value OpenAI accepts (its client types it so). Work that
may wait longer, or must be done sooner, says so in `metadata`, which wins:
`joulegate_deadline` an absolute ISO 8601 time ("2026-12-06T18:00:00Z"), or `joulegate_window`
a duration from the batch's creation ("90m", "36h", "7d", or seconds). Never both.
"""

from __future__ import annotations

import re
from datetime import datetime

from joulegate_agent.errors import JoulegateError
from joulegate_agent.storage.ledger import parse_iso_time

COMPLETION_WINDOWS = {"24h": 24 * 3600.0}
DEADLINE_KEY = "joulegate_deadline"
WINDOW_KEY = "joulegate_window"
MAX_WINDOW_S = 30 * 86400.0
"""No later than batch files are kept by default: results must outlive the batch's window."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


class DeadlineError(JoulegateError, ValueError):
    """The completion window or the metadata's deadline is not usable; the message says why."""


def parse_window(text: str) -> float:
    """Seconds in a duration such as "90m", "36h", "7d" or "3600"."""
    match = _DURATION.match(text)
    if match is None:
        raise DeadlineError(
            f"{WINDOW_KEY} must be a duration such as '90m', '36h' or '7d', got {text!r}"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def batch_deadline(
    completion_window: str, metadata: dict[str, str] | None, created_at: float
) -> float:
    """The batch's deadline as a Unix time."""
    if completion_window not in COMPLETION_WINDOWS:
        raise DeadlineError(
            f"completion_window must be one of {', '.join(COMPLETION_WINDOWS)}, got "
            f"{completion_window!r}; give a longer or shorter one as metadata "
            f"{WINDOW_KEY} or {DEADLINE_KEY}"
        )
    meta = metadata or {}
    if DEADLINE_KEY in meta and WINDOW_KEY in meta:
        raise DeadlineError(f"give {DEADLINE_KEY} or {WINDOW_KEY} in metadata, not both")
    if DEADLINE_KEY in meta:
        try:
            deadline = parse_iso_time(meta[DEADLINE_KEY]).timestamp()
        except ValueError:
            raise DeadlineError(
                f"{DEADLINE_KEY} must be an ISO 8601 time, got {meta[DEADLINE_KEY]!r}"
            ) from None
    elif WINDOW_KEY in meta:
        deadline = created_at + parse_window(meta[WINDOW_KEY])
    else:
        deadline = created_at + COMPLETION_WINDOWS[completion_window]
    if deadline <= created_at:
        shown = datetime.fromtimestamp(deadline).astimezone().isoformat(timespec="seconds")
        raise DeadlineError(f"the batch's deadline ({shown}) has already passed")
    if deadline - created_at > MAX_WINDOW_S:
        raise DeadlineError(
            f"the batch's deadline may be at most {MAX_WINDOW_S / 86400:.0f} days away"
        )
    return deadline
