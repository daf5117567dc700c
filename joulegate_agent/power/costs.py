"""What each power level costs, learned from the agent's own ledger, per model.

Only finished inferences (outcome ok) with output tokens and a whole window at one level count.
Per level and model: W above idle (marginal energy over the time the windows ran), tokens/s
(output tokens over that time, prompt processing included), J/token (whole and above idle), and
the idle baseline the meter had at that level. Every figure says how many inferences it rests on;
a level with none is `measured: false`. The figures above idle rest on the rows metered with an
idle baseline (`marginal_inferences`): the meter re-learns idle after each level change, so a
window still being metered then, or one run before the new idle is known, has none.

W above idle and tokens/s are the box's: energy and tokens over the time its windows ran (their
union), not over the sum of their durations. Requests sent together to a one-slot server wait
in overlapping windows; summed, five of them made a 2.1 W level look like 0.4 W, and the
controller would run it on a fifth of the surplus it needs. A window's span ends at its time on
the ledger's retention clock where it has one, which carries on across boots: a Jetson without an
RTC battery boots offline at its image's date, and two boots' rows carry the same wall times.

A lease's answer carries the table as read at most a minute before (`CostTables`): Home Assistant
leases each 10 s, and a year of rows takes a second to read on a small board. `GET` reads it
afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from joulegate_agent.storage.store import Store

# Finished inferences that made tokens, each at one level.
_TOTALS = (
    "SELECT power_level, model, COUNT(*), SUM(output_tokens), SUM(energy_j), COUNT(marginal_j),"
    " SUM(marginal_j), SUM(CASE WHEN marginal_j IS NULL THEN NULL ELSE output_tokens END),"
    " AVG(idle_w) FROM inferences WHERE outcome = 'ok' AND power_level IS NOT NULL"
    " AND output_tokens > 0 AND duration_s > 0 GROUP BY power_level, model"
)
# The same rows' spans: each ends at its end on the retention clock (else the wall clock) and
# lasts its (monotonic) duration.
_SPANS = (
    "SELECT power_level, model, COALESCE(retention_ts, ended_ts) - duration_s,"
    " COALESCE(retention_ts, ended_ts), marginal_j IS NOT NULL"
    " FROM inferences WHERE outcome = 'ok' AND power_level IS NOT NULL"
    " AND output_tokens > 0 AND duration_s > 0"
    " ORDER BY power_level, model, COALESCE(retention_ts, ended_ts) - duration_s"
)


def _busy_s(spans: Sequence[tuple[float, float]]) -> float:
    """The time covered by spans sorted by start: overlapping windows count once."""
    busy = 0.0
    run: tuple[float, float] | None = None
    for start, end in spans:
        if run is not None and start <= run[1]:
            run = (run[0], max(run[1], end))
            continue
        busy += 0.0 if run is None else run[1] - run[0]
        run = (start, end)
    return busy + (0.0 if run is None else run[1] - run[0])


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def cost_table(store: Store, levels: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per level in `levels` (lowest draw first), each with its models' figures."""
    with store.lock:
        totals = store.connection.execute(_TOTALS).fetchall()
        spans = store.connection.execute(_SPANS).fetchall()
    all_spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    marginal_spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for level, model, start, end, has_marginal in spans:
        key = (str(level), model)
        all_spans.setdefault(key, []).append((start, end))
        if has_marginal:
            marginal_spans.setdefault(key, []).append((start, end))
    by_level: dict[str, list[dict[str, Any]]] = {}
    for level, model, count, tokens, energy, counted, marginal, m_tokens, idle in totals:
        key = (str(level), model)
        busy_s = _busy_s(all_spans[key])
        m_busy_s = _busy_s(marginal_spans.get(key, []))
        by_level.setdefault(key[0], []).append(
            {
                "model": model,
                "inferences": int(count),
                "output_tokens": int(tokens),
                "tokens_per_s": _rounded(tokens / busy_s, 2) if busy_s > 0 else None,
                "j_per_token": _rounded(energy / tokens, 4),
                "marginal_inferences": int(counted),
                "avg_w_above_idle": _rounded(marginal / m_busy_s) if m_busy_s > 0 else None,
                "marginal_j_per_token": _rounded(marginal / m_tokens, 4) if counted else None,
                "idle_w": _rounded(idle),
            }
        )
    return [
        {
            "level": name,
            "measured": name in by_level,
            "inferences": sum(m["inferences"] for m in by_level.get(name, [])),
            "models": by_level.get(name, []),
        }
        for name in levels
    ]


class CostTables:
    """The cost table as last read, read again once it is `max_age_s` old."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age_s: float = 60.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._read: tuple[float, tuple[str, ...], list[dict[str, Any]]] | None = None

    def read(self, levels: Sequence[str], *, fresh: bool = False) -> list[dict[str, Any]]:
        """The table for `levels`, read again if `fresh`; blocking (run it in an executor)."""
        names = tuple(levels)
        with self._lock:
            now = self._clock()
            last = self._read
            if fresh or last is None or last[1] != names or now - last[0] >= self._max_age_s:
                last = (now, names, cost_table(self._store, names))
                self._read = last
            return last[2]
