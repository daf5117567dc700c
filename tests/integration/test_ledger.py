"""Unit tests of the ledger cursor and rolling means (no Home Assistant needed)."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.joulegate.ledger import InferenceLedger, read_history
from custom_components.joulegate.models import Inference, InferencePage


def _row(row_id: int, **fields: Any) -> Inference:
    base: dict[str, Any] = {
        "id": row_id,
        "duration_s": 2.0,
        "energy_j": 36.0,
        "output_tokens": 100,
        "outcome": "ok",
    }
    return Inference.from_dict(base | fields)


def test_add_takes_each_row_once_in_order() -> None:
    """Rows arrive unordered and repeated; each is taken once, oldest first."""
    ledger = InferenceLedger(window=5, cursor=0)
    assert [row.id for row in ledger.add([_row(2), _row(1)])] == [1, 2]
    assert [row.id for row in ledger.add([_row(2), _row(3), _row(1)])] == [3]
    assert ledger.cursor == 3
    assert [row.id for row in ledger.recent] == [1, 2, 3]


def test_window_keeps_the_newest_rows() -> None:
    """The rolling window is bounded."""
    ledger = InferenceLedger(window=2, cursor=0)
    ledger.add([_row(1), _row(2), _row(3)])
    assert [row.id for row in ledger.recent] == [2, 3]


def test_seed_ignores_rows_beyond_the_cursor() -> None:
    """Seeding takes history up to the cursor; later rows stay new."""
    ledger = InferenceLedger(window=5)
    ledger.seed([_row(3), _row(1), _row(2)], cursor=2)
    assert ledger.cursor == 2
    assert [row.id for row in ledger.recent] == [1, 2]
    assert [row.id for row in ledger.add([_row(3)])] == [3]


def test_summary() -> None:
    """Means are ratios of sums; refused requests and token-less rows are left out
    where they do not belong."""
    ledger = InferenceLedger(window=10, cursor=0)
    ledger.add(
        [
            _row(1, energy_j=36.0, output_tokens=100, duration_s=4.0),
            _row(2, energy_j=0.0, output_tokens=0, duration_s=0.0, outcome="refused"),
            _row(3, energy_j=18.0, output_tokens=0, duration_s=1.0, outcome="error"),
            _row(4, energy_j=18.0, output_tokens=50, duration_s=1.0),
        ]
    )
    summary = ledger.summary()
    assert summary.last is not None
    assert summary.last.id == 4
    assert summary.rows == 3
    assert summary.energy_per_inference_wh == pytest.approx((36 + 18 + 18) / 3 / 3600)
    assert summary.energy_per_token_j == pytest.approx((36 + 18) / 150)
    assert summary.tokens_per_second == pytest.approx(150 / 5)


def test_batch_rows_are_left_out_of_the_interactive_means() -> None:
    """A batch of long requests runs while people chat: the means stay those of the chats."""
    ledger = InferenceLedger(window=3, cursor=0)
    ledger.add(
        [
            _row(1, energy_j=36.0, output_tokens=100, duration_s=4.0),
            _row(2, energy_j=900.0, output_tokens=2000, duration_s=30.0, batch_id="batch_a"),
            _row(3, energy_j=900.0, output_tokens=2000, duration_s=30.0, batch_id="batch_a"),
            _row(4, energy_j=18.0, output_tokens=50, duration_s=1.0),
            _row(5, energy_j=900.0, output_tokens=2000, duration_s=30.0, batch_id="batch_a"),
        ]
    )
    summary = ledger.summary()
    assert [row.id for row in ledger.recent] == [1, 4]
    assert summary.rows == 2
    assert summary.energy_per_inference_wh == pytest.approx((36 + 18) / 2 / 3600)
    assert summary.energy_per_token_j == pytest.approx((36 + 18) / 150)
    assert summary.tokens_per_second == pytest.approx(150 / 5)


def test_the_last_inference_may_be_a_batch_request() -> None:
    """What ran last is a fact of the rig, batch or not; only the means are interactive."""
    ledger = InferenceLedger(window=3, cursor=0)
    ledger.add([_row(1), _row(2, batch_id="batch_a")])
    last = ledger.summary().last
    assert last is not None
    assert last.id == 2
    assert last.batch_id == "batch_a"


def test_summary_of_nothing() -> None:
    """No rows: no figures."""
    summary = InferenceLedger(window=3).summary()
    assert summary.last is None
    assert summary.energy_per_inference_wh is None
    assert summary.energy_per_token_j is None
    assert summary.tokens_per_second is None


def test_a_saved_cursor_restores_and_a_damaged_one_is_dropped() -> None:
    """The cursor is what is saved (the rolling window is read from the agent at start)."""
    assert InferenceLedger.from_dict({"cursor": 2}, window=3).cursor == 2
    assert InferenceLedger.from_dict({"cursor": True}, window=3).cursor is None
    assert InferenceLedger.from_dict({}, window=3).cursor is None


def test_reset() -> None:
    """Reset forgets the rows and starts the cursor at zero."""
    ledger = InferenceLedger(window=3, cursor=0)
    ledger.add([_row(5)])
    ledger.reset()
    assert ledger.cursor == 0
    assert ledger.recent == ()


def test_refused_requests_leave_the_rolling_means_to_the_inferences_that_ran() -> None:
    """A closed gate refuses request after request all night: the means stay those of the last
    inferences that ran, not unknown once the refusals fill the window."""
    ledger = InferenceLedger(window=3, cursor=0)
    ledger.add([_row(1, energy_j=36.0), _row(2, energy_j=72.0)])
    ledger.add([_row(n, energy_j=0.0, output_tokens=0, outcome="refused") for n in range(3, 30)])
    summary = ledger.summary()
    assert summary.rows == 2
    assert summary.energy_per_inference_wh == pytest.approx((36.0 + 72.0) / 2 / 3600)
    assert summary.tokens_per_second == pytest.approx(50.0)


async def test_the_history_read_at_start_reaches_past_refused_requests() -> None:
    """After a night of refusals, a restart still finds the last inferences that ran."""
    rows = [_row(1), _row(2)] + [
        _row(n, energy_j=0.0, output_tokens=0, outcome="refused") for n in range(3, 300)
    ]

    async def fetch(after: int, limit: int) -> InferencePage:
        items = tuple(row for row in rows if after < row.id <= after + limit)
        return InferencePage(items=items, cursor=items[-1].id if items else after)

    history, _ = await read_history(fetch, cursor=299, window=3)
    ledger = InferenceLedger(window=3)
    ledger.seed(history, cursor=299)
    assert ledger.summary().rows == 2
