"""A site: the house whose one surplus several rigs share. Pure Python, no Home Assistant.

The gate's inputs are per config entry, so config entries whose gates read the same grid meter
join one site (kept in the integration's shared data, `site_for`). The site owns what only the
house can decide: one allocation of its surplus across all its rigs (`allocation.Allocator`,
stepped once per gate cycle whichever rig's cycle comes first, by each rig's priority), and the
attribution in which the rigs together are the last load (`others_w`).

A site of one rig that has no levels to choose from does not allocate: that rig's gate runs the
on/off controller exactly as before.
"""

from __future__ import annotations

from collections.abc import Hashable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .allocation import Allocator, Allotment, RigConfig, RigReading
from .surplus import Inputs, Settings

SITES = "sites"  # the integration's shared data: site key -> Site


class Member(Protocol):
    """A rig of the site, as its gate sees it."""

    @property
    def key(self) -> str:
        """The rig's config entry."""

    @property
    def settings(self) -> Settings:
        """The rig's gate settings: the house's part of the site leader's counts."""

    def rig_config(self) -> RigConfig:
        """Its levels, priority and modes now."""

    def reading(self) -> RigReading:
        """What its agent reports now."""


@dataclass(slots=True)
class Site:
    """The rigs behind one house's meters, and their shares of its surplus."""

    key: Hashable
    members: dict[str, Member] = field(default_factory=dict)  # in the order they joined
    _allocator: Allocator | None = None
    _stepped_at: float | None = None
    _allotments: dict[str, Allotment] = field(default_factory=dict)
    _readings: dict[str, RigReading] = field(default_factory=dict)

    def join(self, member: Member) -> None:
        """A rig's gate starts; it runs closed until the next allocation gives it a share."""
        self.members[member.key] = member
        if self._allocator is not None:
            self._allocator.add_rig(member.rig_config())

    def leave(self, key: str) -> None:
        """A rig's gate stops; its share goes to the others by their own step-up rule."""
        self.members.pop(key, None)
        self._allotments.pop(key, None)
        self._readings.pop(key, None)
        if self._allocator is not None:
            if self.members:
                self._allocator.remove_rig(key)
            else:
                self._allocator = None

    @property
    def allocates(self) -> bool:
        """Whether the site allocates: several rigs, or one with levels to choose from."""
        if len(self.members) > 1:
            return True
        return any(len(m.rig_config().levels) > 1 for m in self.members.values())

    def leader(self) -> Member:
        """The rig whose gate settings (battery policy, reserve, margin) stand for the house:
        the highest priority, the first to join among equals."""
        members = list(self.members.values())
        return max(members, key=lambda m: (m.rig_config().priority, -members.index(m)))

    def allot(self, key: str, house: Inputs, cycle_s: float) -> Allotment:
        """The rig's share for the next cycle. The site allocates once a cycle, at the first
        rig's cycle; the others take their share of that allocation."""
        last = self._stepped_at
        if last is None or key not in self._allotments or not 0 <= house.now - last < cycle_s / 2:
            self._step(house)
        return self._allotments[key]

    def others_w(self, key: str) -> float:
        """The other rigs' power above idle at the last allocation (for the attribution)."""
        return sum(
            max(0.0, reading.inference_w or 0.0)
            for other, reading in self._readings.items()
            if other != key
        )

    def _step(self, house: Inputs) -> None:
        configs = {key: member.rig_config() for key, member in self.members.items()}
        settings = self.leader().settings
        if self._allocator is None:
            self._allocator = Allocator(list(configs.values()), settings)
        else:
            self._allocator.use_settings(settings)
            for config in configs.values():
                self._allocator.update_rig(config)
        self._readings = {key: member.reading() for key, member in self.members.items()}
        self._allotments = self._allocator.step(house, self._readings)
        self._stepped_at = house.now


def site_for(shared: MutableMapping[str, Any], key: Hashable) -> Site:
    """The site of a house (by its grid meter), made when its first rig's gate starts."""
    sites: dict[Hashable, Site] = shared.setdefault(SITES, {})
    if key not in sites:
        sites[key] = Site(key)
    return sites[key]


def drop_site(shared: MutableMapping[str, Any], site: Site) -> None:
    """Forget a site whose last rig has left."""
    if not site.members:
        shared.get(SITES, {}).pop(site.key, None)
