"""How windows in flight share the energy of an interval: by the work each visibly did in it.

A server that runs one request at a time queues the others; an even split would charge a request
for the minutes it waited. The proxy sees a streamed answer's work as it happens: every token it
relays, and the prompt processing before the first (placed by the server's own timings once the
stream ends). So each sub-interval of board energy is shared like this:

- A window whose work is not visible (an explicit window, a non-streamed answer) gets an even
  time share, as before: 1/k of the interval with k windows in flight.
- The rest goes to the windows whose work is visible (streamed answers) that are streaming, by
  the tokens each produces in the interval. A token stands for the work since the window's last
  one, so each window's tokens count at its recent rate (tokens per second over the last
  RATE_TIME_S, capped by the time since its last token; one token in its time so far until its
  second): a slow stream whose token lands in the next sampler interval is not charged less for
  this one. Windows not streaming yet (queued, or processing their prompt) get nothing while
  others stream.
- If none is streaming yet, the energy is held until the windows' prompt timings are known (when
  their streams end), then goes to the prompt processing it covers, and what no prompt covers is
  split evenly among them.

Everything is counters per window (the stream loop updates them per chunk), and every joule ends
with some window: the windows' energies still add up to the board's energy over the same time,
never more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

RATE_TIME_S = 0.5
"""How far back a window's token rate looks (an exponentially weighted average)."""
HOLD_S = 1.0
"""How long an ended window waits for the prompt timings of windows it shares held energy with
(near-simultaneous ends of a batch); after that, those not yet known count as no claim."""


@dataclass(slots=True)
class Work:
    """What the proxy saw of one streamed window's work."""

    first_at: float | None = None
    """When its first token arrived; before that it is queued or processing its prompt."""
    last_at: float | None = None
    recent_tokens: float = 0.0
    recent_s: float = 0.0
    """Tokens and the time they took, both fading over RATE_TIME_S: their ratio is the rate."""
    prompt: tuple[float, float] | None = None
    """When its prompt was processed (the server's timing, just before the first token)."""
    ended: bool = False

    def add(self, tokens: int, now: float) -> None:
        """`tokens` arrived at `now`."""
        last = self.last_at
        self.last_at = now
        if last is None:
            self.first_at = now  # the first token ends the prompt: no rate from it
            return
        gap = now - last
        if gap > 0:
            fade = math.exp(-gap / RATE_TIME_S)
            self.recent_tokens *= fade
            self.recent_s = self.recent_s * fade + gap
        self.recent_tokens += tokens

    def rate(self, at: float, opened: float) -> float:
        """Tokens per second at `at`: the recent rate, but no more than one token in the time
        since the last one (a stream that stopped stops being charged). Until its second token
        a stream has one token in its time so far (`opened`: when its window opened)."""
        last = self.last_at
        if last is None:
            return 0.0
        if self.recent_s <= 0:
            return 1.0 / (at - opened) if at > opened else 0.0
        rate = self.recent_tokens / self.recent_s
        since = at - last
        return min(rate, 1.0 / since) if since > 0 else rate


class Shared(Protocol):
    """A window as the share rule sees it (the meter's PendingWindow)."""

    start: float
    end: float | None
    work: Work | None

    def credit(self, energy_j: float, marginal_j: float | None, peak_w: float) -> None: ...


@dataclass(slots=True)
class _Held:
    """Energy of a stretch in which only not-yet-streaming windows were in flight."""

    start: float
    end: float
    energy_j: float
    marginal_j: float | None
    peak_w: float
    members: list[Shared] = field(default_factory=list)

    def claim(self, work: Work) -> float:
        if work.prompt is None:
            return 0.0
        return max(0.0, min(self.end, work.prompt[1]) - max(self.start, work.prompt[0]))

    def settle(self) -> None:
        """Give the held energy to the prompt processing it covers; the rest evenly."""
        span = self.end - self.start
        claims = [self.claim(m.work) if m.work is not None else 0.0 for m in self.members]
        spread = max(0.0, span - sum(claims)) / len(self.members)
        weights = [claim + spread for claim in claims]
        total = sum(weights)  # the span, or more where prompts processed side by side
        for member, weight in zip(self.members, weights, strict=True):
            share = weight / total
            if share > 0:
                marginal = None if self.marginal_j is None else self.marginal_j * share
                member.credit(self.energy_j * share, marginal, self.peak_w)


class WorkShares:
    """The share rule, and the energy held for prompt timings still to come."""

    def __init__(self) -> None:
        self._held: list[_Held] = []

    def share(
        self,
        a: float,
        b: float,
        active: Sequence[Shared],
        *,
        energy_j: float,
        marginal_j: float | None,
        peak_w: float,
    ) -> None:
        """Credit the energy of the sub-interval from a to b to the windows in flight in it."""
        each = 1.0 / len(active)
        visible: list[Shared] = []
        for w in active:
            if w.work is None:
                w.credit(energy_j * each, _part(marginal_j, each), peak_w)
            else:
                visible.append(w)
        if not visible:
            return
        part = each * len(visible)
        weights = [_rate(w, b) for w in visible]
        total = sum(weights)
        if total <= 0:  # nobody streams yet
            self._hold(_Held(a, b, energy_j * part, _part(marginal_j, part), peak_w, visible))
            return
        for w, weight in zip(visible, weights, strict=True):
            if weight > 0:
                share = part * weight / total
                w.credit(energy_j * share, _part(marginal_j, share), peak_w)

    def settle(self, window: Shared, now: float | None) -> bool:
        """Settle the held energy `window` shares; False while it must wait for other windows'
        prompt timings (`now`: the sampler's time; None settles with what is known)."""
        waiting = False
        for held in list(self._held):
            if not any(m is window for m in held.members):
                continue
            ended = all(m.work is None or m.work.ended for m in held.members)
            end = window.end
            if not ended and now is not None and end is not None and now - end < HOLD_S:
                waiting = True
                continue
            held.settle()
            self._held.remove(held)
        return not waiting

    def _hold(self, piece: _Held) -> None:
        """Keep `piece` for later, merged into the last held stretch if it continues it."""
        last = self._held[-1] if self._held else None
        if (
            last is not None
            and last.end == piece.start
            and (last.marginal_j is None) == (piece.marginal_j is None)
            and len(last.members) == len(piece.members)
            and all(x is y for x, y in zip(last.members, piece.members, strict=True))
        ):
            last.end = piece.end
            last.energy_j += piece.energy_j
            if last.marginal_j is not None and piece.marginal_j is not None:
                last.marginal_j += piece.marginal_j
            last.peak_w = max(last.peak_w, piece.peak_w)
            return
        self._held.append(piece)


def _part(value: float | None, share: float) -> float | None:
    return None if value is None else value * share


def _rate(w: Shared, b: float) -> float:
    """The window's token rate at b; 0 if it has not begun streaming by then."""
    work = w.work
    if work is None or work.first_at is None or work.first_at >= b:
        return 0.0
    return work.rate(b, w.start)
