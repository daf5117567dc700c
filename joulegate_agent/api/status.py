"""The body of `GET /api/v1/status`: what the box draws, has drawn and is doing now."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from joulegate_agent.agent import Agent
from joulegate_agent.inference.service import InferenceService
from joulegate_agent.storage.ledger import LedgerTotals, iso, round_or_none


def status_payload(agent: Agent, board_wh: float) -> dict[str, Any]:
    """The status body; `board_wh` is the persisted lifetime energy (`Agent.board_energy_wh`),
    never a value a crash could take back. Reading it writes nothing."""
    reading = agent.sampler.latest
    thermal = agent.thermal
    rails = [] if reading is None else reading.rails
    board_w = None if reading is None or reading.board_w is None else agent.meter.latest_w
    totals = agent.inference.ledger.totals()
    return {
        "time": iso(datetime.now(timezone.utc)),
        "uptime_s": round(time.monotonic() - agent.started_mono, 3),
        "power": {
            "board_w": round_or_none(board_w),
            "boundary": agent.boundary,
            "rails": [
                {
                    "name": rail.name,
                    "power_w": round_or_none(rail.power_w),
                    "voltage_v": round_or_none(rail.voltage_v),
                    "current_a": round_or_none(rail.current_a),
                    "available": rail.available,
                }
                for rail in rails
            ],
        },
        "energy": {
            "board_wh": round(board_wh, 6),
            "inference_wh": round(totals.energy_j / 3600.0, 6),
            "marginal_inference_wh": round(totals.marginal_j / 3600.0, 6),
        },
        "idle": {"baseline_w": round_or_none(agent.meter.idle_w)},
        "thermal": {
            "zones": {} if thermal is None else {k: round(v, 2) for k, v in thermal.zones.items()},
            "max_c": None if thermal is None else round_or_none(thermal.max_c, 2),
        },
        "throttling": {
            "active": bool(thermal and thermal.throttling),
            "reasons": [] if thermal is None else list(thermal.throttling),
        },
        "power_mode": (
            None
            if thermal is None or thermal.power_mode is None
            else {"id": thermal.power_mode.id, "name": thermal.power_mode.name}
        ),
        "inference": _inference(agent.inference, totals),
        "gate": agent.inference.gate.state().to_json(),
        "power_level": agent.power.current_name,
        "queue": agent.inference.queue.snapshot(),
        "storage": agent.inference.writer.health().to_json(),
        "batches": agent.batches.status(),
        "sampler": {
            "rate_hz": agent.sampler.rate_hz,
            "samples": agent.meter.samples,
            "worst_gap_s": round(agent.sampler.worst_gap_s, 4),
        },
    }


def _inference(service: InferenceService, totals: LedgerTotals) -> dict[str, Any]:
    last = service.ledger.last()  # read each time: `measure` in another process may add rows
    return {
        "in_flight": service.meter.in_flight,
        "count": totals.inferences,
        "output_tokens": totals.output_tokens,
        "last": None if last is None else last.to_json(),
    }
