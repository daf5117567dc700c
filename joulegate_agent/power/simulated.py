"""The simulated board's power modes as a knob, so the demo and tests exercise levels.

The mode is held by the simulated source (its power follows it) and written to a file that
`simulate-llm --power-mode-file` reads on every request (its decode rate follows it), the way a
real board's clocks set both. Like a real board, the simulated one boots in its default mode.
"""

from __future__ import annotations

from pathlib import Path

from joulegate_agent.power.discovery import ConcurrencyHooks, PowerDiscovery, concurrency_values
from joulegate_agent.power.knobs import ConcurrencyKnob, Knob, Original, write_text
from joulegate_agent.power.ladder import build_ladder
from joulegate_agent.simulation.board import DEFAULT_MODE, MODES, SimulatedOrinNano, mode_named

MODE_FILE = "simulated-power-mode"


class SimulatedModeKnob:
    """Values are indexes into sources.simulated.MODES (lowest draw first)."""

    def __init__(self, board: SimulatedOrinNano, mode_file: Path) -> None:
        self._board = board
        self._file = mode_file
        mode_file.parent.mkdir(parents=True, exist_ok=True)
        # Kept to its owner like everything else in the data directory.
        mode_file.touch(mode=0o600)
        mode_file.chmod(0o600)
        write_text(mode_file, DEFAULT_MODE.name)
        board.mode = DEFAULT_MODE

    @property
    def id(self) -> str:
        return "simulated_power_mode"

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(len(MODES)))

    @property
    def paths(self) -> tuple[str, ...]:
        return (str(self._file),)

    @property
    def hardware(self) -> bool:
        return True

    def label(self, value: int) -> str:
        return MODES[value].name

    def read(self) -> int | None:
        return MODES.index(self._board.mode)

    def write(self, value: int) -> None:
        write_text(self._file, MODES[value].name)
        self._board.mode = MODES[value]

    def cannot_set(self) -> str | None:
        return None

    def originals(self) -> list[Original]:
        return [Original("file", str(self._file), self._board.mode.name)]

    def restored(self) -> None:
        try:
            name = self._file.read_text(encoding="utf-8").strip()
        except OSError:
            name = DEFAULT_MODE.name
        self._board.mode = mode_named(name) or DEFAULT_MODE


def discover_simulated(
    board: SimulatedOrinNano, mode_file: Path, concurrency: ConcurrencyHooks | None
) -> PowerDiscovery:
    """The simulated board's knobs: its modes (the ladder) and the concurrency level. No sysfs
    is read: a simulated agent never touches the machine it runs on."""
    knob = SimulatedModeKnob(board, mode_file)
    knobs: list[Knob] = [knob]
    if concurrency is not None:
        knobs.append(
            ConcurrencyKnob(
                concurrency_values(concurrency.configured),
                concurrency.read,
                concurrency.write,
                concurrency.configured,
            )
        )
    return PowerDiscovery(knobs, build_ladder([knob]))
