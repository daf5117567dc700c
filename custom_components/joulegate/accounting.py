"""Where inference energy came from: solar, battery or grid, with the rig as the last load.

Each ledger row's energy above idle is split with `surplus.attribute()` using the home's flows at
the row's time (the samples the gate took during the inference, or the nearest one), so a row
that arrives late is still judged by the sun that shone while it ran. Running totals only grow.
A batch's rows count in the totals and in their batch's own split ("batch 17: 96 % solar"), not
in the rolling figures per inference, which stay those of interactive traffic.
Pure Python: no Home Assistant imports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from .surplus import attribute

BATCHES_KEPT = 100
"""Batches whose split is kept (the newest first met): enough to announce each as it finishes."""


@dataclass(frozen=True, slots=True)
class FlowSample:
    """The home's flows when the gate read its meters."""

    at: datetime
    grid_w: float  # + import, - export, with the rig drawing rig_w
    battery_w: float | None  # + discharge, - charge
    rig_w: float  # the rig's power above idle at that moment (already in the meters)
    carbon_g_per_kwh: float | None = None
    others_w: float = 0.0  # the site's other rigs' power above idle then (also in the meters)


class FlowHistory:
    """A ring buffer of recent flow samples."""

    def __init__(self, maxlen: int, tolerance: timedelta) -> None:
        """Keep `maxlen` samples; a row further than `tolerance` from any has no flows."""
        self._samples: deque[FlowSample] = deque(maxlen=maxlen)
        self._tolerance = tolerance

    def __len__(self) -> int:
        """How many samples are kept."""
        return len(self._samples)

    def add(self, sample: FlowSample) -> None:
        """Keep a sample (in time order)."""
        self._samples.append(sample)

    def around(self, start: datetime, end: datetime) -> list[FlowSample]:
        """The samples taken while a window ran, else the one nearest its middle, else none."""
        inside = [s for s in self._samples if start <= s.at <= end]
        if inside:
            return inside
        middle = start + (end - start) / 2
        nearest = min(self._samples, key=lambda s: abs(s.at - middle), default=None)
        if nearest is None or abs(nearest.at - middle) > self._tolerance:
            return []
        return [nearest]


@dataclass(frozen=True, slots=True)
class Split:
    """One inference's energy above idle, by where it came from (Wh)."""

    solar_wh: float
    battery_wh: float
    grid_wh: float
    carbon_g: float | None = None  # of the grid part; None where the intensity was unknown
    attributed: bool = True  # False: no flows known at its time, so all counted as grid

    @property
    def total_wh(self) -> float:
        """The whole energy split."""
        return self.solar_wh + self.battery_wh + self.grid_wh


def split_energy(energy_wh: float, duration_s: float, samples: Iterable[FlowSample]) -> Split:
    """Split a window's energy with each sample taken while it ran, in equal shares.

    The rig's power in the window (energy / duration) replaces what it drew when a sample was
    taken, so the sample's surplus without the rig is kept: grid' = grid - rig_then + rig_now.
    A site's rigs together are the last load: the split is the one of all of them (this rig's
    power plus the others' then), and the rig takes its share of each part.
    Without samples the flows are unknown and the energy is counted as grid: what cannot be shown
    to come from the sun is not claimed for it.
    """
    energy_wh = max(0.0, energy_wh)
    chosen = list(samples)
    if not chosen:
        return Split(0.0, 0.0, energy_wh, None, attributed=False)
    if energy_wh == 0:
        return Split(0.0, 0.0, 0.0, 0.0)
    power_w = energy_wh * 3600 / max(duration_s, 1.0)
    share = energy_wh / len(chosen)
    solar = battery = grid = 0.0
    carbon: float | None = 0.0
    for sample in chosen:
        rigs_w = power_w + max(0.0, sample.others_w)
        parts = attribute(rigs_w, sample.grid_w - sample.rig_w + power_w, sample.battery_w)
        sample_grid = share * parts.grid / rigs_w
        solar += share * parts.solar / rigs_w
        battery += share * parts.battery / rigs_w
        grid += sample_grid
        if carbon is not None and sample_grid > 0:
            intensity = sample.carbon_g_per_kwh
            carbon = None if intensity is None else carbon + sample_grid / 1000 * intensity
    # The grid takes what is left, so the parts add up to the whole; what float rounding leaves
    # (1e-19 Wh where the sun paid for all of it) is no grid energy.
    grid = energy_wh - solar - battery
    if grid <= energy_wh * 1e-9:
        grid = 0.0
    return Split(solar, battery, grid, carbon)


@dataclass(frozen=True, slots=True)
class Totals:
    """Lifetime inference energy above idle by source (Wh); `total_wh` is their sum."""

    solar_wh: float = 0.0
    battery_wh: float = 0.0
    grid_wh: float = 0.0  # unattributed energy included
    unattributed_wh: float = 0.0

    @property
    def total_wh(self) -> float:
        """All inference energy above idle counted: the sum of the three sources."""
        return self.solar_wh + self.battery_wh + self.grid_wh

    @property
    def solar_share_pct(self) -> float | None:
        """The share of that energy the sun paid for; None before any energy."""
        total = self.total_wh
        return 100 * self.solar_wh / total if total > 0 else None

    def plus(self, split: Split) -> Totals:
        """These totals with one more row's split."""
        return replace(
            self,
            solar_wh=self.solar_wh + split.solar_wh,
            battery_wh=self.battery_wh + split.battery_wh,
            grid_wh=self.grid_wh + split.grid_wh,
            unattributed_wh=self.unattributed_wh + (0.0 if split.attributed else split.grid_wh),
        )


@dataclass(frozen=True, slots=True)
class AccountingSummary:
    """The figures the sensors show."""

    solar_wh: float
    battery_wh: float
    grid_wh: float  # unattributed energy included
    unattributed_wh: float
    inferences: int
    recent: int  # inferences the rolling figures cover
    solar_share_pct: float | None
    carbon_g_per_inference: float | None
    battery_wh_per_inference: float | None
    inference_wh_today: float
    pv_yield_today_wh: float | None
    pv_yield_share_pct: float | None


class Accounting:
    """Running totals, the most recent splits, and today's inference energy and PV yield."""

    def __init__(self, window: int) -> None:
        """Start from nothing; `window` rows make the rolling figures."""
        self.solar_wh = 0.0
        self.battery_wh = 0.0
        self.grid_wh = 0.0
        self.unattributed_wh = 0.0
        self.inferences = 0
        self.recent: deque[Split] = deque(maxlen=window)
        self.batches: dict[str, Totals] = {}
        self.day: date | None = None
        self.inference_wh_today = 0.0
        self.pv_last_wh: float | None = None
        self.pv_last_day: date | None = None  # the local day of the PV meter's last reading
        self.pv_yield_today_wh: float | None = None

    def _roll(self, day: date) -> bool:
        """Move to `day` if it is later; return whether `day` is the current day."""
        if self.day is None or day > self.day:
            self.day = day
            self.inference_wh_today = 0.0
            self.pv_yield_today_wh = 0.0 if self.pv_last_wh is not None else None
        return day == self.day

    def add(self, split: Split, day: date, *, batch_id: str | None = None) -> None:
        """Count one inference that ran, ended on local `day` (a request of `batch_id`)."""
        self.solar_wh += split.solar_wh
        self.battery_wh += split.battery_wh
        self.grid_wh += split.grid_wh
        if not split.attributed:
            self.unattributed_wh += split.grid_wh
        self.inferences += 1
        if batch_id is None:
            self.recent.append(split)
        else:
            self.batches[batch_id] = self.batches.pop(batch_id, Totals()).plus(split)
            while len(self.batches) > BATCHES_KEPT:
                del self.batches[next(iter(self.batches))]
        if self._roll(day):
            self.inference_wh_today += split.total_wh

    def update_pv(self, day: date, value_wh: float | None) -> None:
        """Follow the PV energy meter: a lifetime counter, or one that resets (daily or not).

        A drop of more than 10 % is a reset, and what it shows since counts; a smaller drop is
        meter noise and is ignored until the meter is above its last value again. A rise since
        a reading of an earlier day (Home Assistant was down over midnight, or the previous run
        was on another day) is not today's yield: it is not known how much of it came today.
        """
        self._roll(day)
        if value_wh is None:
            return
        last = self.pv_last_wh
        if last is None:
            gained = 0.0
        elif value_wh >= last:
            gained = value_wh - last if self.pv_last_day == day else 0.0
        elif value_wh < 0.9 * last or self.pv_last_day != day:
            gained = max(0.0, value_wh)
        else:
            return
        self.pv_last_wh = value_wh
        self.pv_last_day = day
        self.pv_yield_today_wh = (self.pv_yield_today_wh or 0.0) + gained

    def totals(self) -> Totals:
        """The lifetime totals."""
        return Totals(self.solar_wh, self.battery_wh, self.grid_wh, self.unattributed_wh)

    def batch(self, batch_id: str) -> Totals | None:
        """A batch's energy above idle by source, so far; None for a batch with no row counted."""
        return self.batches.get(batch_id)

    def latest_batch(self) -> tuple[str, Totals] | None:
        """The batch whose row was counted last, and its energy above idle by source so far."""
        return next(reversed(self.batches.items()), None)

    def summary(self) -> AccountingSummary:
        """The totals, the rolling figures over the recent inferences, and today's share."""
        recent = list(self.recent)
        total = sum(split.total_wh for split in recent)
        with_carbon = [split.carbon_g for split in recent if split.carbon_g is not None]
        pv_today = self.pv_yield_today_wh
        return AccountingSummary(
            solar_wh=self.solar_wh,
            battery_wh=self.battery_wh,
            grid_wh=self.grid_wh,
            unattributed_wh=self.unattributed_wh,
            inferences=self.inferences,
            recent=len(recent),
            solar_share_pct=(
                100 * sum(split.solar_wh for split in recent) / total if total > 0 else None
            ),
            carbon_g_per_inference=sum(with_carbon) / len(with_carbon) if with_carbon else None,
            battery_wh_per_inference=(
                sum(split.battery_wh for split in recent) / len(recent) if recent else None
            ),
            inference_wh_today=self.inference_wh_today,
            pv_yield_today_wh=pv_today,
            pv_yield_share_pct=(
                100 * self.inference_wh_today / pv_today if pv_today and pv_today > 0 else None
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """State to persist (JSON-serialisable)."""
        return {
            "solar_wh": self.solar_wh,
            "battery_wh": self.battery_wh,
            "grid_wh": self.grid_wh,
            "unattributed_wh": self.unattributed_wh,
            "inferences": self.inferences,
            "recent": [
                [s.solar_wh, s.battery_wh, s.grid_wh, s.carbon_g, s.attributed] for s in self.recent
            ],
            "batches": {
                batch_id: [t.solar_wh, t.battery_wh, t.grid_wh, t.unattributed_wh]
                for batch_id, t in self.batches.items()
            },
            "day": self.day.isoformat() if self.day else None,
            "inference_wh_today": self.inference_wh_today,
            "pv_last_wh": self.pv_last_wh,
            "pv_last_day": self.pv_last_day.isoformat() if self.pv_last_day else None,
            "pv_yield_today_wh": self.pv_yield_today_wh,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], window: int) -> Accounting:
        """Restore saved state; what cannot be read starts from nothing."""
        accounting = cls(window)

        def number(key: str) -> float | None:
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return max(0.0, float(value))

        accounting.solar_wh = number("solar_wh") or 0.0
        accounting.battery_wh = number("battery_wh") or 0.0
        accounting.grid_wh = number("grid_wh") or 0.0
        accounting.unattributed_wh = number("unattributed_wh") or 0.0
        accounting.inferences = int(number("inferences") or 0)
        for item in data.get("recent") or ():
            try:
                solar, battery, grid, carbon, attributed = item
                accounting.recent.append(
                    Split(
                        float(solar),
                        float(battery),
                        float(grid),
                        None if carbon is None else float(carbon),
                        bool(attributed),
                    )
                )
            except (TypeError, ValueError):
                continue
        batches = data.get("batches")
        for batch_id, item in (batches if isinstance(batches, dict) else {}).items():
            try:
                solar, battery, grid, unattributed = (float(value) for value in item)
            except (TypeError, ValueError):
                continue
            accounting.batches[str(batch_id)] = Totals(solar, battery, grid, unattributed)
        accounting.day = _day(data.get("day"))
        accounting.pv_last_day = _day(data.get("pv_last_day"))
        accounting.inference_wh_today = number("inference_wh_today") or 0.0
        accounting.pv_last_wh = number("pv_last_wh")
        accounting.pv_yield_today_wh = number("pv_yield_today_wh")
        return accounting


def _day(value: Any) -> date | None:
    """A saved day, or None where it cannot be read."""
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        return None
