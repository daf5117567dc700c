"""The meter's share rule: overlapping windows share energy by the work each visibly did.

A board at a constant 10 W sampled at 10 Hz on a manual clock; tokens are recorded at set rates,
as the proxy records them while it relays streams.
"""

from __future__ import annotations

import random

import pytest

from joulegate_agent.metering.meter import Meter, PendingWindow
from joulegate_agent.metering.work_share import HOLD_S

WATTS = 10.0
TICK_MS = 1
SAMPLE_MS = 100


class Board:
    """Runs the clock in 1-ms ticks, sampling every 100 ms and recording tokens at set rates."""

    def __init__(self) -> None:
        self.ms = 0
        self.meter = Meter(self.now)
        self.meter.add_sample(0.0, WATTS)

    def now(self) -> float:
        return self.ms / 1000.0

    def run(self, until_s: float, rates: dict[int, float] | None = None) -> None:
        """Advance to `until_s`; each window in `rates` streams that many tokens a second, the
        first one at once (it ends the prompt)."""
        rates = rates or {}
        sent = dict.fromkeys(rates, 0)
        begun = self.ms
        while self.ms < round(until_s * 1000):
            self.ms += TICK_MS
            for key, rate in rates.items():
                due = int((self.ms - begun - TICK_MS) / 1000.0 * rate) + 1
                if due > sent[key]:
                    self.meter.record_work(key, due - sent[key])
                    sent[key] = due
            if self.ms % SAMPLE_MS == 0:
                self.meter.add_sample(self.now(), WATTS)

    def end(self, key: int, prompt_s: float | None = None) -> PendingWindow:
        return self.meter.end_window(key, prompt_s=prompt_s)

    def settle(self) -> None:
        """Sample on until every window ended so far is metered (held energy waits HOLD_S)."""
        self.run(self.now() + HOLD_S + 0.2)


def energy(window: PendingWindow) -> float:
    return window.wait(0).energy_j


def test_a_streaming_window_takes_the_energy_while_a_queued_one_waits() -> None:
    board = Board()
    first = board.meter.open_window(work_visible=True)
    queued = board.meter.open_window(work_visible=True)
    board.run(0.2)  # the first request's prompt
    board.run(1.0, {first: 20.0})
    ended_first = board.end(first, prompt_s=0.2)
    board.run(1.1)  # the queued request's prompt, once the server is free
    board.run(2.0, {queued: 20.0})
    ended_queued = board.end(queued, prompt_s=0.1)
    board.settle()
    assert energy(ended_first) == pytest.approx(10.0, rel=0.01)
    assert energy(ended_queued) == pytest.approx(10.0, rel=0.01)


def test_streams_side_by_side_share_by_their_token_rates() -> None:
    board = Board()
    fast = board.meter.open_window(work_visible=True)
    slow = board.meter.open_window(work_visible=True)
    board.run(2.0, {fast: 30.0, slow: 10.0})
    ended = [board.end(fast), board.end(slow)]
    board.settle()
    assert energy(ended[0]) / energy(ended[1]) == pytest.approx(3.0, rel=0.05)
    assert sum(map(energy, ended)) == pytest.approx(20.0)


def test_a_stream_that_stops_sending_tokens_stops_taking_energy() -> None:
    board = Board()
    stalled = board.meter.open_window(work_visible=True)
    steady = board.meter.open_window(work_visible=True)
    board.run(1.0, {stalled: 20.0, steady: 20.0})
    board.run(3.0, {steady: 20.0})
    ended = [board.end(stalled), board.end(steady)]
    board.settle()
    assert energy(ended[0]) < 0.3 * energy(ended[1])


def test_explicit_windows_still_split_by_time() -> None:
    board = Board()
    first, second = board.meter.open_window(), board.meter.open_window()
    board.run(1.0)
    ended = [board.end(first), board.end(second)]
    board.settle()
    assert [energy(w) for w in ended] == pytest.approx([5.0, 5.0])


def test_a_window_without_visible_work_keeps_its_time_share_beside_streams() -> None:
    board = Board()
    explicit = board.meter.open_window()
    fast = board.meter.open_window(work_visible=True)
    queued = board.meter.open_window(work_visible=True)
    board.run(0.05, {fast: 40.0})
    board.run(1.05, {fast: 40.0})
    ended = [board.end(explicit), board.end(fast), board.end(queued)]
    board.settle()
    assert energy(ended[0]) == pytest.approx(10.5 / 3)
    assert energy(ended[1]) == pytest.approx(10.5 * 2 / 3, rel=0.02)


def test_prompt_processing_reported_by_the_server_is_charged_to_its_window() -> None:
    board = Board()
    answered = board.meter.open_window(work_visible=True)
    waiting = board.meter.open_window(work_visible=True)
    board.run(0.5)  # nobody streams yet: 5 J held until the prompt timings are known
    board.run(1.5, {answered: 20.0})
    ended = board.end(answered, prompt_s=0.3)  # its prompt: 0.2 s to 0.5 s
    board.settle()
    # 3 J of the prompt, half of the other 2 J held, and the 10 J it streamed.
    assert energy(ended) == pytest.approx(3.0 + 1.0 + 10.0, rel=0.01)
    board.end(waiting)


def test_held_energy_waits_for_the_prompts_of_a_batch_that_ends_together() -> None:
    board = Board()
    first = board.meter.open_window(work_visible=True)
    second = board.meter.open_window(work_visible=True)
    board.run(0.4)  # both prompts processed side by side
    board.run(1.0, {first: 20.0, second: 20.0})
    ended_first = board.end(first, prompt_s=0.4)
    board.run(1.0 + HOLD_S / 2, {second: 20.0})
    ended_second = board.end(second, prompt_s=0.4)
    board.settle()
    assert energy(ended_first) == pytest.approx(2.0 + 3.0, rel=0.02)
    assert energy(ended_second) == pytest.approx(2.0 + 3.0 + 5.0, rel=0.02)


def test_held_energy_goes_by_the_timings_known_once_the_hold_is_over() -> None:
    board = Board()
    first = board.meter.open_window(work_visible=True)
    second = board.meter.open_window(work_visible=True)
    board.run(0.4)  # both prompts processed side by side
    board.run(1.0, {first: 20.0, second: 20.0})
    ended_first = board.end(first, prompt_s=0.4)
    board.run(1.0 + HOLD_S + 0.5, {second: 20.0})
    assert ended_first.done.is_set()
    assert energy(ended_first) == pytest.approx(4.0 + 3.0, rel=0.02)
    board.end(second, prompt_s=0.4)


def test_windows_energies_add_up_to_the_board_with_tokens_and_prompts_in_any_order() -> None:
    rng = random.Random(12)
    board = Board()
    ended: list[PendingWindow] = []
    keys = [board.meter.open_window(work_visible=rng.random() < 0.8)]
    for _ in range(60):
        if rng.random() < 0.3:
            keys.append(board.meter.open_window(work_visible=rng.random() < 0.8))
        if len(keys) > 1 and rng.random() < 0.25:
            key = keys.pop(rng.randrange(len(keys)))
            ended.append(board.end(key, prompt_s=rng.choice([None, 0.05, 0.3, 2.0])))
        streaming = {k: rng.uniform(5, 40) for k in keys if rng.random() < 0.5}
        board.run(board.now() + rng.uniform(0.05, 0.4), streaming)
    ended.extend(board.end(key) for key in keys)
    board.settle()
    last_end = ended[-1].end
    assert len(ended) > 10
    assert last_end is not None
    assert sum(map(energy, ended)) == pytest.approx(WATTS * last_end, rel=1e-9)


def test_the_board_works_for_streams_that_produce_tokens_not_for_queued_ones() -> None:
    board = Board()
    streaming = board.meter.open_window(work_visible=True)
    board.meter.open_window(work_visible=True)
    board.meter.open_window()
    assert board.meter.working == 1
    board.run(0.2, {streaming: 20.0})
    assert (board.meter.working, board.meter.in_flight) == (2, 3)
