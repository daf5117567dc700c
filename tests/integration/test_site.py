"""A site: one house's surplus shared by the rigs behind its grid meter (pure Python, no HA)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from custom_components.joulegate.allocation import RigConfig, RigReading
from custom_components.joulegate.levels import Level
from custom_components.joulegate.site import Site, drop_site, site_for
from custom_components.joulegate.surplus import BatteryPolicy, Inputs, Settings

CYCLE_S = 10.0
FAST = (Level("low", 4.0, 8.0), Level("high", 12.0, 22.0))
ON_OFF = (Level("on", 10.0),)


@dataclass
class Rig:
    """A rig's gate as the site sees it: its configuration and its agent's reading."""

    key: str
    levels: tuple[Level, ...] = FAST
    priority: int = 0
    draw_w: float = 0.0
    settings: Settings = field(default_factory=lambda: Settings(min_off_s=0.0))
    readings: int = 0

    def rig_config(self) -> RigConfig:
        return RigConfig(self.key, self.levels, priority=self.priority)

    def reading(self) -> RigReading:
        self.readings += 1
        return RigReading(inference_w=self.draw_w)


def test_gates_on_the_same_grid_meter_share_one_site() -> None:
    shared: dict[str, Any] = {}
    house = ("grid_power", "sensor.grid")
    assert site_for(shared, house) is site_for(shared, house)
    assert site_for(shared, ("grid_power", "sensor.other")) is not site_for(shared, house)


def test_a_site_allocates_once_a_cycle_whichever_rig_asks_first() -> None:
    site = Site("house")
    a, b = Rig("a", priority=2), Rig("b", priority=1)
    site.join(a)
    site.join(b)
    site.allot("b", Inputs(now=0.0, grid_w=-30.0), CYCLE_S)
    site.allot("a", Inputs(now=3.0, grid_w=-30.0), CYCLE_S)
    assert (a.readings, b.readings) == (1, 1)
    site.allot("b", Inputs(now=10.0, grid_w=-30.0), CYCLE_S)
    assert (a.readings, b.readings) == (2, 2)


def test_a_lone_rig_without_levels_keeps_the_on_off_gate() -> None:
    site = Site("house")
    site.join(Rig("a", ON_OFF))
    assert not site.allocates
    site.join(Rig("b", ON_OFF))
    assert site.allocates
    lone = Site("other")
    lone.join(Rig("c", FAST))
    assert lone.allocates


def test_the_house_settings_are_the_highest_priority_rigs() -> None:
    site = Site("house")
    first = Rig("a", priority=1)
    leader = Rig("b", priority=5, settings=Settings(policy=BatteryPolicy.INFERENCE_FIRST))
    site.join(first)
    site.join(leader)
    assert site.leader() is leader


def test_the_other_rigs_draw_is_what_the_attribution_adds_to_a_rigs_own() -> None:
    site = Site("house")
    for rig in (Rig("a", draw_w=12.0), Rig("b", draw_w=4.0), Rig("c", draw_w=0.0)):
        site.join(rig)
    site.allot("a", Inputs(now=0.0, grid_w=-30.0), CYCLE_S)
    assert site.others_w("c") == 16.0
    assert site.others_w("a") == 4.0


def test_a_rig_that_leaves_frees_the_site_and_the_last_one_drops_it() -> None:
    shared: dict[str, Any] = {}
    site = site_for(shared, "house")
    site.join(Rig("a"))
    site.join(Rig("b"))
    site.allot("a", Inputs(now=0.0, grid_w=-30.0), CYCLE_S)
    site.leave("b")
    assert set(site.members) == {"a"}
    site.allot("a", Inputs(now=10.0, grid_w=-30.0), CYCLE_S)
    site.leave("a")
    drop_site(shared, site)
    assert site_for(shared, "house") is not site
