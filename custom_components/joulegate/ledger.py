"""Home Assistant's view of the agent's inference ledger.

The agent keeps one row per finished inference, with a strictly increasing id.
Home Assistant keeps a cursor (the id of the newest row it has taken in) and the
most recent rows, from which it derives rolling means. Rows at or below the
cursor are never taken again, so a row is counted exactly once however often it
is fetched (poll, event stream, restart). Pure Python: no Home Assistant imports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .models import Inference

OUTCOME_REFUSED = "refused"


@dataclass(frozen=True, kw_only=True)
class LedgerSummary:
    """Rolling figures over the most recent inferences."""

    last: Inference | None  # the newest inference that ran (a refused request did not)
    rows: int
    energy_per_inference_wh: float | None
    energy_per_token_j: float | None
    tokens_per_second: float | None


class InferenceLedger:
    """Cursor and rolling window over the agent's ledger rows."""

    def __init__(
        self,
        *,
        window: int,
        cursor: int | None = None,
    ) -> None:
        """Start empty (cursor None: never synchronised) or from a saved cursor."""
        self.cursor = cursor
        self._recent: deque[Inference] = deque(maxlen=window)

    @property
    def recent(self) -> tuple[Inference, ...]:
        """The rows in the rolling window, oldest first."""
        return tuple(self._recent)

    def seed(self, rows: Iterable[Inference], cursor: int) -> None:
        """Take history in without reporting it as new (first start)."""
        self._recent.clear()
        self._recent.extend(sorted((row for row in rows if row.id <= cursor), key=_row_id))
        self.cursor = cursor

    def reset(self) -> None:
        """Forget everything: the agent's ledger started over."""
        self._recent.clear()
        self.cursor = 0

    def add(self, rows: Iterable[Inference]) -> list[Inference]:
        """Take in rows; return those not seen before, oldest first."""
        cursor = self.cursor or 0
        new: list[Inference] = []
        for row in sorted(rows, key=_row_id):
            if row.id <= cursor:
                continue
            new.append(row)
            self._recent.append(row)
            cursor = row.id
        self.cursor = cursor
        return new

    def summary(self) -> LedgerSummary:
        """Rolling means over the window.

        Energy per inference counts every row that ran (refused requests drew no
        energy); energy per token and tokens per second count rows that produced
        tokens. Each is a ratio of sums, so long inferences weigh more.
        """
        ran = [row for row in self._recent if row.outcome != OUTCOME_REFUSED]
        productive = [row for row in ran if row.output_tokens > 0]
        tokens = sum(row.output_tokens for row in productive)
        seconds = sum(row.duration_s for row in productive)
        return LedgerSummary(
            last=ran[-1] if ran else None,
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


def _row_id(row: Inference) -> int:
    return row.id
