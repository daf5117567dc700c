"""What each power level costs, learned from the agent's own ledger, per model.

Only finished inferences (outcome ok) with output tokens and a whole window at one level count.
Per level and model: W above idle (marginal energy over the windows' time), tokens/s (output
tokens over the windows' time, prompt processing included), J/token (whole and above idle), and
the idle baseline the meter had at that level. Every figure says how many inferences it rests on;
a level with none is `measured: false`. Windows that overlapped each count their own time, so
tokens/s is the rate one request sees, not the box's throughput.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from joulegate_agent.store import Store

_QUERY = (
    "SELECT power_level, model, COUNT(*), SUM(output_tokens), SUM(duration_s), SUM(energy_j),"
    " SUM(marginal_j), COUNT(marginal_j), AVG(idle_w)"
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
    for level, model, count, tokens, seconds, energy, marginal, with_marginal, idle in rows:
        all_marginal = with_marginal == count
        by_level.setdefault(str(level), []).append(
            {
                "model": model,
                "inferences": int(count),
                "output_tokens": int(tokens),
                "tokens_per_s": _rounded(tokens / seconds, 2),
                "avg_w_above_idle": _rounded(marginal / seconds) if all_marginal else None,
                "j_per_token": _rounded(energy / tokens, 4),
                "marginal_j_per_token": _rounded(marginal / tokens, 4) if all_marginal else None,
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
