"""`joulegate_batch_finished`: a batch of the agent's queue reached its end, with its energy.

The agent sends a `batch` event on its stream when a batch completes, fails, expires or is
cancelled; every row of the batch is in its ledger by then (a request's row is written before its
result). Home Assistant reads those rows first, so the event carries the batch's energy above idle
split by source as the gate attributed it ("batch 17: 96 % solar"), next to the agent's own
energy of every attempt. No Home Assistant imports.
"""

from __future__ import annotations

from typing import Any

from .accounting import Totals
from .models import Batch


def finished_event(batch: Batch, split: Totals | None) -> dict[str, Any]:
    """The event's data; the split's figures are None where no row of the batch was attributed
    (no solar gate, or rows read before Home Assistant knew the flows)."""
    outlook = batch.joulegate
    counts = batch.request_counts
    return {
        "batch_id": batch.id,
        "status": batch.status,
        "requests_total": counts.total,
        "requests_completed": counts.completed,
        "requests_failed": counts.failed,
        "energy_wh": None if outlook is None else outlook.energy_wh,
        "energy_above_idle_wh": None if split is None else split.total_wh,
        "solar_wh": None if split is None else split.solar_wh,
        "battery_wh": None if split is None else split.battery_wh,
        "grid_wh": None if split is None else split.grid_wh,
        "solar_share_pct": None if split is None else split.solar_share_pct,
        "metadata": dict(batch.metadata),
    }
