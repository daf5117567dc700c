"""Home Assistant's view of the agent's inference ledger.

The agent keeps one row per finished inference, with a strictly increasing id.
Home Assistant keeps a cursor (the id of the newest row it has taken in) and the
most recent interactive rows, from which it derives rolling means. Rows at or below the
cursor are never taken again, so a row is counted exactly once however often it
is fetched (poll, event stream, restart). Rows of a batch (`batch_id`) count in every
total but not in the means: a night of long batch requests would otherwise stand for
what a chat costs. Pure Python: no Home Assistant imports.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .models import Inference, InferencePage

OUTCOME_REFUSED = "refused"
HISTORY_PAGE = 200
"""Rows per request when the history is read further back, past a batch's rows."""
HISTORY_ROWS = 2000
"""How far back before the cursor the history is read for the rolling window at most."""


@dataclass(frozen=True, kw_only=True)
class LedgerSummary:
    """Rolling figures over the most recent inferences."""

    last: Inference | None  # the newest inference that ran, batch or not (a refused one did not)
    rows: int  # the interactive inferences the means cover
    energy_per_inference_wh: float | None
    energy_per_token_j: float | None
    tokens_per_second: float | None


class InferenceLedger:
    """Cursor and rolling window over the agent's interactive ledger rows."""

    def __init__(
        self,
        *,
        window: int,
        cursor: int | None = None,
    ) -> None:
        """Start empty (cursor None: never synchronised) or from a saved cursor."""
        self.cursor = cursor
        self._recent: deque[Inference] = deque(maxlen=window)
        self._last: Inference | None = None

    @property
    def recent(self) -> tuple[Inference, ...]:
        """The interactive rows in the rolling window, oldest first."""
        return tuple(self._recent)

    def seed(self, rows: Iterable[Inference], cursor: int) -> None:
        """Take history in without reporting it as new (first start)."""
        self._recent.clear()
        self._last = None
        for row in sorted((row for row in rows if row.id <= cursor), key=_row_id):
            self._take(row)
        self.cursor = cursor

    def reset(self) -> None:
        """Forget everything: the agent's ledger started over."""
        self._recent.clear()
        self._last = None
        self.cursor = 0

    def add(self, rows: Iterable[Inference]) -> list[Inference]:
        """Take in rows; return those not seen before, oldest first."""
        cursor = self.cursor or 0
        new: list[Inference] = []
        for row in sorted(rows, key=_row_id):
            if row.id <= cursor:
                continue
            new.append(row)
            self._take(row)
            cursor = row.id
        self.cursor = cursor
        return new

    def _take(self, row: Inference) -> None:
        if row.outcome == OUTCOME_REFUSED:
            return  # drew nothing: a night of refusals must not push the means out of the window
        self._last = row
        if row.batch_id is None:
            self._recent.append(row)

    def summary(self) -> LedgerSummary:
        """Rolling means over the window of interactive rows.

        Energy per inference counts every row that ran (refused requests drew no
        energy); energy per token and tokens per second count rows that produced
        tokens. Each is a ratio of sums, so long inferences weigh more.
        """
        ran = [row for row in self._recent if row.outcome != OUTCOME_REFUSED]
        productive = [row for row in ran if row.output_tokens > 0]
        tokens = sum(row.output_tokens for row in productive)
        seconds = sum(row.duration_s for row in productive)
        return LedgerSummary(
            last=self._last,
            rows=len(ran),
            energy_per_inference_wh=(sum(row.wh for row in ran) / len(ran) if ran else None),
            energy_per_token_j=(
                sum(row.energy_j for row in productive) / tokens if tokens else None
            ),
            tokens_per_second=tokens / seconds if seconds > 0 else None,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, window: int) -> InferenceLedger:
        """Restore the saved cursor (None where it cannot be read); the rolling window is read
        from the agent again at start."""
        cursor = data.get("cursor")
        return cls(
            window=window,
            cursor=cursor if isinstance(cursor, int) and not isinstance(cursor, bool) else None,
        )


async def read_history(
    fetch: Callable[[int, int], Awaitable[InferencePage]], cursor: int, window: int
) -> tuple[list[Inference], str | None]:
    """The rows up to `cursor` that fill a rolling window of `window` interactive rows that ran,
    and the ledger they are of: the last `window` rows first (the common case, one small request),
    then further back, `HISTORY_PAGE` rows at a time, while a batch's rows or refusals crowd the
    chats out, but never more than `HISTORY_ROWS` back. `fetch(after, limit)` reads one page."""
    rows: list[Inference] = []
    ledger_id: str | None = None
    stop, size = cursor, window
    while stop > 0 and cursor - stop < HISTORY_ROWS:
        start = max(0, stop - size)
        page = await fetch(start, stop - start)
        if rows and page.ledger_id != ledger_id:
            break  # the ledger started over meanwhile: what is read so far is of the old one
        ledger_id = page.ledger_id
        rows.extend(row for row in page.items if row.id <= stop)
        if sum(1 for row in rows if _counts(row)) >= window:
            break
        stop, size = start, HISTORY_PAGE
    return rows, ledger_id


def ran_s(rows: Iterable[Inference]) -> float:
    """How long the rows' windows ran, overlapping windows counted once: requests queued together
    at a one-slot server wait in overlapping windows, and their summed durations would make the
    rig's power above idle look several times smaller. A row without its end time counts its
    duration alone."""
    spans = []
    busy = 0.0
    for row in rows:
        if row.ended_at is None:
            busy += row.duration_s
        else:
            end = row.ended_at.timestamp()
            spans.append((end - row.duration_s, end, row.duration_s))
    reach = -math.inf
    for start, end, duration in sorted(spans):
        if start >= reach:  # alone: its own duration, exactly
            busy += duration
        elif end > reach:
            busy += end - reach
        reach = max(reach, end)
    return busy


def _row_id(row: Inference) -> int:
    return row.id


def _counts(row: Inference) -> bool:
    """Whether a row takes a place in the rolling window: an interactive inference that ran."""
    return row.batch_id is None and row.outcome != OUTCOME_REFUSED
