"""Constants for the Joulegate integration."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

DOMAIN: Final = "joulegate"

LOGGER = logging.getLogger(__package__)

# The agent's default listening port (`joulegate-agent serve --port`).
DEFAULT_PORT: Final = 8787

# Options.
CONF_UPDATE_INTERVAL: Final = "update_interval"
DEFAULT_UPDATE_INTERVAL: Final = 10
MIN_UPDATE_INTERVAL: Final = 1
MAX_UPDATE_INTERVAL: Final = 3600

# Short debounce for refreshes requested by the agent's event stream: a burst of
# finished inferences costs one round trip, a single one shows at once.
EVENT_REFRESH_COOLDOWN: Final = timedelta(seconds=0.5)

# Event stream reconnect back-off, in seconds.
EVENT_STREAM_BACKOFF_MIN: Final = 1.0
EVENT_STREAM_BACKOFF_MAX: Final = 60.0

# Ledger: how many recent inferences the rolling means cover, and how the
# integration pages through rows it has not seen yet.
ROLLING_WINDOW: Final = 20
LEDGER_PAGE_SIZE: Final = 100
LEDGER_MAX_PAGES_PER_UPDATE: Final = 10
LEDGER_STORAGE_VERSION: Final = 1

# Fired on the event bus once per ledger row, exactly once per inference.
EVENT_INFERENCE: Final = "joulegate_inference"

# Units with no Home Assistant constant. Fixed strings (not translated) so that
# long-term statistics keep one unit whatever the UI language.
UNIT_INFERENCES: Final = "inferences"
UNIT_TOKENS: Final = "tokens"
UNIT_REQUESTS: Final = "requests"
UNIT_WH_PER_INFERENCE: Final = "Wh/inference"
UNIT_J_PER_TOKEN: Final = "J/token"  # noqa: S105 (a unit, not a secret)
UNIT_TOKENS_PER_SECOND: Final = "tokens/s"
