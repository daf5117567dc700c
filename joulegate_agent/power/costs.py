"""What each power level costs, learned from the agent's own ledger, per model.

Only finished inferences (outcome ok) with output tokens and a whole window at one level count.
Per level and model: W above idle (marginal energy over the windows' time), tokens/s (output
tokens over the windows' time, prompt processing included), J/token (whole and above idle), and
the idle baseline the meter had at that level. Every figure says how many inferences it rests on;
a level with none is `measured: false`. The figures above idle rest on the rows metered with an
idle baseline (`marginal_inferences`): the meter re-learns idle after each level change, so a
window still being metered then, or one run before the new idle is known, has none. Windows that
overlapped each count their own time, so tokens/s is the rate one request sees, not the box's
throughput.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from joulegate_agent.storage.store import Store

_QUERY = (
    "SELECT power_level, model, COUNT(*), SUM(output_tokens), SUM(duration_s), SUM(energy_j),"
    " COUNT(marginal_j), SUM(marginal_j),"
    " SUM(CASE WHEN marginal_j IS NULL THEN NULL ELSE duration_s END),"
    " SUM(CASE WHEN marginal_j IS NULL THEN NULL ELSE output_tokens END), AVG(idle_w)"
    " FROM inferences WHERE outcome = 'ok' AND power_level IS NOT NULL AND output_tokens > 0"
    " AND duration_s > 0 GROUP BY power_level, model ORDER BY power_level, model"
)


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def cost_table(store: Store, levels: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per level in `levels` (lowest draw first), each with its models' figures."""
    with store.lock:
        rows = store.connection.execute(_QUERY).fetchall()
    by_level: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        level, model, count, tokens, seconds, energy = row[:6]
        counted, marginal, m_seconds, m_tokens, idle = row[6:]
        by_level.setdefault(str(level), []).append(
            {
                "model": model,
                "inferences": int(count),
                "output_tokens": int(tokens),
                "tokens_per_s": _rounded(tokens / seconds, 2),
                "j_per_token": _rounded(energy / tokens, 4),
                "marginal_inferences": int(counted),
                "avg_w_above_idle": _rounded(marginal / m_seconds) if counted else None,
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
