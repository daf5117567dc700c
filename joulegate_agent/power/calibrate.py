"""`joulegate-agent calibrate`: run a fixed prompt at each power level through the agent's proxy,
so the ledger (and the cost table of GET /api/v1/power) has figures for every level.

At each level the board first rests `settle_s` (the meter learns that level's idle draw: it needs
about 5 s of rest), then the prompt runs `runs` times, one at a time. Each level is held with a
lease long enough for its runs; after the last one the lease runs out and the agent returns to
its default level. A level change the dwell time holds back is waited for. The gate is leased
open alongside (the runs are the user's own request), and falls back the same way afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from joulegate_agent.errors import JoulegateError

PROMPT = (
    "Explain in three sentences why a small computer running on solar power should slow down "
    "when a cloud passes."
)
DEFAULT_RUNS = 3
DEFAULT_MAX_TOKENS = 64
DEFAULT_SETTLE_S = 6.0
ROWS_WAIT_S = 10.0


class CalibrationError(JoulegateError):
    """The agent refused a step; the message says which and why."""


async def _json(response: aiohttp.ClientResponse, what: str) -> Any:
    body = await response.json(content_type=None)
    if response.status >= 400:
        message = body.get("message", body) if isinstance(body, dict) else body
        raise CalibrationError(f"{what}: HTTP {response.status}: {message}")
    return body


async def _hold(session: aiohttp.ClientSession, url: str, level: str, lease_s: float) -> None:
    """Lease `level` (waiting out the dwell time) and the gate open, for `lease_s`."""
    async with session.put(
        f"{url}/api/v1/gate", json={"open": True, "lease_s": lease_s, "reason": "calibration"}
    ) as response:
        await _json(response, "opening the gate")
    while True:
        async with session.put(
            f"{url}/api/v1/power",
            json={"level": level, "lease_s": lease_s, "reason": "calibration"},
        ) as response:
            if response.status == 409:
                body = await response.json()
                await asyncio.sleep(float(body.get("retry_after_s", 1.0)) + 0.1)
                continue
            await _json(response, f"setting level {level}")
            return


async def calibrate(
    url: str,
    token: str,
    *,
    model: str | None = None,
    levels: list[str] | None = None,
    runs: int = DEFAULT_RUNS,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    settle_s: float = DEFAULT_SETTLE_S,
    timeout_s: float = 300.0,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[dict[str, Any]]:
    """Run the calibration; returns the agent's cost table afterwards."""
    url = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        async with session.get(f"{url}/api/v1/power") as response:
            power = await _json(response, "reading the levels")
        names = [level["name"] for level in power["levels"]]
        if not names:
            raise CalibrationError("the agent found no power levels on this box")
        unknown = sorted(set(levels or []) - set(names))
        if unknown:
            raise CalibrationError(f"no level {', '.join(unknown)}; the levels are {names}")
        chosen = [name for name in names if levels is None or name in levels]
        lease_s = min(86400.0, settle_s + runs * timeout_s + 30.0)
        body: dict[str, Any] = {
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "stream": False,
        }
        if model is not None:
            body["model"] = model
        for name in chosen:
            progress(f"level {name}: resting {settle_s:g} s, then {runs} runs")
            await _hold(session, url, name, lease_s)
            await asyncio.sleep(settle_s)
            for _ in range(runs):
                async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                    await _json(response, f"the prompt at level {name}")
        # A last short lease: the agent returns to its default level a second from now.
        await _hold(session, url, chosen[-1], 1.0)
        expected = {
            entry["level"]: entry["inferences"] + runs
            for entry in power["table"]
            if entry["level"] in chosen
        }
        return await _table_when_written(session, url, expected)


async def _table_when_written(
    session: aiohttp.ClientSession, url: str, expected: dict[str, int]
) -> list[dict[str, Any]]:
    """The table once the runs' rows are in it (the agent writes them just after each answer),
    or as it is after ROWS_WAIT_S."""
    deadline = asyncio.get_running_loop().time() + ROWS_WAIT_S
    while True:
        async with session.get(f"{url}/api/v1/power") as response:
            table: list[dict[str, Any]] = (await _json(response, "reading the table"))["table"]
        counts = {entry["level"]: entry["inferences"] for entry in table}
        done = all(counts.get(name, 0) >= count for name, count in expected.items())
        if done or asyncio.get_running_loop().time() > deadline:
            return table
        await asyncio.sleep(0.2)


def format_table(table: list[dict[str, Any]]) -> str:
    lines = [
        f"{'level':<12} {'model':<20} {'runs':>5} {'tokens/s':>9} {'W>idle':>7} "
        f"{'J/token':>8} {'idle W':>7}"
    ]
    for entry in table:
        if not entry["measured"]:
            lines.append(f"{entry['level']:<12} unmeasured")
        for m in entry["models"]:
            cells = [m["tokens_per_s"], m["avg_w_above_idle"], m["j_per_token"], m["idle_w"]]
            shown = ["—" if c is None else f"{c:g}" for c in cells]
            lines.append(
                f"{entry['level']:<12} {m['model']!s:<20} {m['inferences']:>5} "
                f"{shown[0]:>9} {shown[1]:>7} {shown[2]:>8} {shown[3]:>7}"
            )
    return "\n".join(lines)
