"""Attribution of inference energy to solar, battery and grid, for scripted power flows.

Every expected figure is worked out by hand from the flows: the rig is the last load, so what
the home would have exported or put into the battery without it is solar, then battery
discharge, then grid import.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_components.joulegate.accounting import (
    BATCHES_KEPT,
    Accounting,
    FlowHistory,
    FlowSample,
    Split,
    split_energy,
)

T0 = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
DAY = date(2026, 6, 21)


def sample(
    seconds: float,
    grid_w: float,
    battery_w: float | None = None,
    rig_w: float = 0.0,
    carbon: float | None = None,
) -> FlowSample:
    return FlowSample(T0 + timedelta(seconds=seconds), grid_w, battery_w, rig_w, carbon)


def parts(split: Split) -> tuple[float, float, float]:
    return split.solar_wh, split.battery_wh, split.grid_wh


# 36 J over 2 s: 0.01 Wh at 18 W.
WH = 0.01
SECONDS = 2.0


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        # Exporting 500 W: the rig only takes some of the export.
        (sample(0, -500), (WH, 0, 0)),
        # Exporting 6 W of the 18 W: a third solar, the rest imported.
        (sample(0, -6), (WH / 3, 0, WH * 2 / 3)),
        # Importing: all grid.
        (sample(0, 200), (0, 0, WH)),
        # Night, the battery holds the grid at zero: all battery.
        (sample(0, 0, battery_w=300), (0, WH, 0)),
        # The battery covers 12 W of the rig's 18, the grid the rest.
        (sample(0, 6, battery_w=12, rig_w=18), (0, WH * 12 / 18, WH * 6 / 18)),
        # The battery charges at 1500 W: the rig takes some of it, which is solar.
        (sample(0, 0, battery_w=-1500), (WH, 0, 0)),
        # Read while the rig drew 18 W: the home exported 2 W more without it, so 2 of 18 W.
        (sample(0, 16, rig_w=18), (WH * 2 / 18, 0, WH * 16 / 18)),
    ],
)
def test_split_matches_the_hand_calculation(
    flows: FlowSample, expected: tuple[float, float, float]
) -> None:
    split = split_energy(WH, SECONDS, [flows])
    assert parts(split) == pytest.approx(expected, abs=1e-12)
    assert split.total_wh == pytest.approx(WH)
    assert split.attributed


def test_a_long_window_takes_each_sample_in_equal_shares() -> None:
    """Half the window on export, half on import: half solar, half grid."""
    split = split_energy(WH, 20.0, [sample(0, -500, carbon=300), sample(10, 300, carbon=400)])
    assert parts(split) == pytest.approx((WH / 2, 0, WH / 2))
    assert split.carbon_g == pytest.approx(WH / 2 / 1000 * 400)


def test_carbon_is_unknown_where_a_grid_part_has_no_intensity() -> None:
    assert split_energy(WH, SECONDS, [sample(0, 300)]).carbon_g is None
    # Without grid energy the intensity does not matter.
    assert split_energy(WH, SECONDS, [sample(0, -300)]).carbon_g == 0


def test_without_flows_the_energy_counts_as_grid_and_says_so() -> None:
    split = split_energy(WH, SECONDS, [])
    assert parts(split) == (0, 0, WH)
    assert not split.attributed
    assert split.carbon_g is None


def test_nothing_to_split() -> None:
    assert parts(split_energy(0.0, SECONDS, [sample(0, -500)])) == (0, 0, 0)
    assert parts(split_energy(-1.0, SECONDS, [sample(0, -500)])) == (0, 0, 0)
    # A window too short to time still splits its energy.
    assert parts(split_energy(WH, 0.0, [sample(0, -500)])) == pytest.approx((WH, 0, 0))


@given(
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=600),
    st.lists(
        st.tuples(
            st.floats(min_value=-10000, max_value=10000),
            st.one_of(st.none(), st.floats(min_value=-5000, max_value=5000)),
            st.floats(min_value=0, max_value=50),
        ),
        max_size=5,
    ),
)
def test_parts_always_add_up_to_the_energy(
    energy: float, seconds: float, flows: list[tuple[float, float | None, float]]
) -> None:
    split = split_energy(energy, seconds, [sample(0, *flow) for flow in flows])
    assert min(parts(split)) >= 0
    assert split.total_wh == pytest.approx(energy, abs=1e-12)


def test_history_picks_the_samples_of_a_window_or_the_nearest() -> None:
    history = FlowHistory(maxlen=3, tolerance=timedelta(seconds=60))
    assert history.around(T0, T0) == []
    for seconds in (0, 10, 20, 30):
        history.add(sample(seconds, -seconds))
    assert len(history) == 3  # the oldest went
    # Inside the window.
    inside = history.around(T0 + timedelta(seconds=5), T0 + timedelta(seconds=25))
    assert [s.grid_w for s in inside] == [-10, -20]
    # Between samples: the nearest to the middle.
    between = history.around(T0 + timedelta(seconds=21), T0 + timedelta(seconds=23))
    assert [s.grid_w for s in between] == [-20]
    # A row that arrived late, 50 s after the last sample: still near enough.
    late = history.around(T0 + timedelta(seconds=79), T0 + timedelta(seconds=81))
    assert [s.grid_w for s in late] == [-30]
    # Long after: no flows known.
    assert history.around(T0 + timedelta(minutes=5), T0 + timedelta(minutes=5)) == []


def test_accounting_totals_rolling_figures_and_today() -> None:
    accounting = Accounting(window=2)
    assert accounting.summary().solar_share_pct is None
    accounting.add(Split(0.01, 0.0, 0.0, 0.0), DAY)
    accounting.add(Split(0.0, 0.01, 0.0, 0.0), DAY)
    accounting.add(Split(0.0, 0.0, 0.01, 3.0, attributed=False), DAY)
    summary = accounting.summary()
    assert (summary.solar_wh, summary.battery_wh, summary.grid_wh) == (0.01, 0.01, 0.01)
    assert summary.unattributed_wh == 0.01
    assert summary.inferences == 3
    # The last two only.
    assert summary.recent == 2
    assert summary.solar_share_pct == 0
    assert summary.carbon_g_per_inference == pytest.approx(1.5)
    assert summary.battery_wh_per_inference == pytest.approx(0.005)
    assert summary.inference_wh_today == pytest.approx(0.03)
    assert summary.pv_yield_share_pct is None  # no PV meter

    # A row of yesterday that arrives late counts in the totals, not today.
    accounting.add(Split(0.01, 0, 0, None), DAY - timedelta(days=1))
    assert accounting.summary().inference_wh_today == pytest.approx(0.03)
    assert accounting.summary().solar_wh == pytest.approx(0.02)
    # A new day starts today's figure over.
    accounting.add(Split(0.02, 0, 0, 0.0), DAY + timedelta(days=1))
    assert accounting.summary().inference_wh_today == pytest.approx(0.02)


def test_batch_energy_counts_in_the_totals_but_not_in_the_per_inference_figures() -> None:
    """A batch request is work the rig did (totals, today) but no chat: the rolling figures per
    inference stay those of interactive traffic."""
    accounting = Accounting(window=20)
    accounting.add(Split(0.01, 0.0, 0.0, 0.0), DAY)
    accounting.add(Split(0.0, 0.0, 0.25, 100.0), DAY, batch_id="batch_17")
    summary = accounting.summary()
    assert summary.grid_wh == pytest.approx(0.25)
    assert summary.inferences == 2
    assert summary.inference_wh_today == pytest.approx(0.26)
    assert summary.recent == 1
    assert summary.solar_share_pct == 100
    assert summary.carbon_g_per_inference == 0
    assert summary.battery_wh_per_inference == 0


def test_each_batch_keeps_its_energy_by_source() -> None:
    """Batch 17: 96 % solar: the split of every row of the batch, summed."""
    accounting = Accounting(window=20)
    for _ in range(24):
        accounting.add(Split(0.04, 0.0, 0.0, 0.0), DAY, batch_id="batch_17")
    accounting.add(Split(0.0, 0.01, 0.03, 1.0), DAY, batch_id="batch_17")
    accounting.add(Split(0.0, 0.0, 0.02, 1.0), DAY, batch_id="batch_18")
    accounting.add(Split(0.5, 0.0, 0.0, 0.0), DAY)
    batch = accounting.batch("batch_17")
    assert batch is not None
    assert (batch.solar_wh, batch.battery_wh, batch.grid_wh) == pytest.approx((0.96, 0.01, 0.03))
    assert batch.solar_share_pct == pytest.approx(96)
    other = accounting.batch("batch_18")
    assert other is not None
    assert other.solar_share_pct == 0
    assert accounting.batch("batch_19") is None
    restored = Accounting.from_dict(accounting.as_dict(), window=20)
    assert restored.batch("batch_17") == batch
    broken = Accounting.from_dict({"batches": {"b": [1, "x"], "c": None, "d": "e"}}, window=20)
    assert broken.batch("b") is None


def test_only_the_newest_batches_are_kept() -> None:
    """The store does not grow with every batch ever run: the oldest is forgotten first."""
    accounting = Accounting(window=20)
    for n in range(BATCHES_KEPT + 1):
        accounting.add(Split(0.01, 0.0, 0.0, 0.0), DAY, batch_id=f"batch_{n}")
    assert accounting.batch("batch_0") is None
    assert accounting.batch(f"batch_{BATCHES_KEPT}") is not None


def test_pv_yield_from_a_lifetime_meter_and_a_daily_one() -> None:
    accounting = Accounting(window=20)
    accounting.update_pv(DAY, None)
    assert accounting.summary().pv_yield_today_wh is None
    accounting.update_pv(DAY, 100_000.0)  # the first reading: nothing known before it
    accounting.update_pv(DAY, 104_000.0)
    accounting.update_pv(DAY, None)  # a missed reading changes nothing
    accounting.update_pv(DAY, 103_990.0)  # noise, ignored
    accounting.update_pv(DAY, 106_000.0)
    accounting.add(Split(3.0, 0, 0, 0.0), DAY)
    summary = accounting.summary()
    assert summary.pv_yield_today_wh == pytest.approx(6000)
    assert summary.pv_yield_share_pct == pytest.approx(100 * 3 / 6000)

    # Next day: a daily meter resets to zero at midnight and counts up again.
    accounting.update_pv(DAY + timedelta(days=1), 0.0)
    accounting.update_pv(DAY + timedelta(days=1), 500.0)
    assert accounting.summary().pv_yield_today_wh == pytest.approx(500)
    assert accounting.summary().inference_wh_today == 0
    assert accounting.summary().pv_yield_share_pct == 0


def test_accounting_survives_a_round_trip_and_bad_data() -> None:
    accounting = Accounting(window=20)
    accounting.add(Split(0.01, 0.002, 0.003, None, attributed=False), DAY)
    accounting.update_pv(DAY, 1000.0)
    restored = Accounting.from_dict(accounting.as_dict(), window=20)
    assert restored.as_dict() == accounting.as_dict()

    broken = Accounting.from_dict(
        {
            "solar_wh": "lots",
            "battery_wh": -5,  # never below zero
            "grid_wh": True,
            "inferences": 4,
            "recent": [[1, 2], [0.1, 0.2, 0.3, None, True], None],
            "day": "yesterday",
        },
        window=20,
    )
    assert (broken.solar_wh, broken.battery_wh, broken.grid_wh) == (0, 0, 0)
    assert broken.inferences == 4
    assert list(broken.recent) == [Split(0.1, 0.2, 0.3, None, True)]
    assert broken.day is None
    assert Accounting.from_dict({}, window=20).as_dict() == Accounting(window=20).as_dict()


def test_energy_the_sun_paid_for_leaves_no_grid_crumb() -> None:
    """Seven equal shares of 0.011 Wh add up to a hair less in floats: that is no grid energy
    (it showed as a grid total of 1.7e-18 Wh)."""
    split = split_energy(0.011, 2.0, [sample(0, -500)] * 7)
    assert split.grid_wh == 0
    assert split.solar_wh == pytest.approx(0.011)


def test_pv_yield_of_an_earlier_day_is_not_today_s() -> None:
    """The meter's last reading was yesterday (Home Assistant was down, or a previous run): its
    rise since is not known to be today's, so today's yield starts from the first reading."""
    accounting = Accounting(window=20)
    accounting.update_pv(DAY, 100_000.0)
    accounting.update_pv(DAY, 104_000.0)
    restored = Accounting.from_dict(accounting.as_dict(), window=20)
    restored.update_pv(DAY + timedelta(days=1), 109_000.0)
    assert restored.summary().pv_yield_today_wh == 0
    restored.update_pv(DAY + timedelta(days=1), 109_500.0)
    assert restored.summary().pv_yield_today_wh == pytest.approx(500)
    # A daily meter read first today after a reset counts what it shows: all of it is today's.
    daily = Accounting(window=20)
    daily.update_pv(DAY, 20_000.0)
    daily.update_pv(DAY + timedelta(days=1), 19_000.0)
    assert daily.summary().pv_yield_today_wh == pytest.approx(19_000)


def test_a_restart_the_same_day_keeps_the_yield_since_the_saved_reading() -> None:
    accounting = Accounting(window=20)
    accounting.update_pv(DAY, 100_000.0)
    accounting.update_pv(DAY, 101_000.0)
    restored = Accounting.from_dict(accounting.as_dict(), window=20)
    restored.update_pv(DAY, 102_000.0)
    assert restored.summary().pv_yield_today_wh == pytest.approx(2000)


def test_rigs_together_are_the_last_load_each_takes_its_share_of_the_solar() -> None:
    # Two rigs of 10 W each; 10 W imported with both running, so 10 W exported without them.
    # Each alone as the last load would find no surplus (the other one's draw takes it) and
    # count all of its energy as grid; together they share the 10 W of sun.
    sample = FlowSample(T0, grid_w=10.0, battery_w=None, rig_w=10.0, others_w=10.0)
    assert parts(split_energy(10.0, 3600, [sample])) == pytest.approx((5.0, 0.0, 5.0))
