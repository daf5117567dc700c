"""Why a source was not found, kept as text so `doctor` and the startup error can explain it."""

from __future__ import annotations

from collections.abc import Mapping

from joulegate_agent.errors import JoulegateError


class NotDetected(JoulegateError):
    """A detector found nothing usable; the message says what it looked for and what to check."""


class NoPowerSourceError(JoulegateError, RuntimeError):
    """No power source was found; `reasons` maps each kind tried to why it was not usable."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        self.reasons = dict(reasons)
        lines = [f"  {kind}: {why}" for kind, why in self.reasons.items()]
        super().__init__(
            "No power sensor found.\n"
            + "\n".join(lines)
            + "\nRun as root if sensor files are root-only, check that the sensor's kernel driver"
            " is loaded, or use the simulated source to try Joulegate without hardware."
        )
