"""Data update coordinator for the Joulegate integration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .accounting import Accounting, Totals
from .batch_events import finished_event
from .client import JoulegateClient
from .const import (
    DOMAIN,
    EVENT_BATCH_FINISHED,
    EVENT_INFERENCE,
    EVENT_REFRESH_COOLDOWN,
    EVENT_STREAM_BACKOFF_MAX,
    EVENT_STREAM_BACKOFF_MIN,
    LEDGER_MAX_PAGES_PER_UPDATE,
    LEDGER_PAGE_SIZE,
    LOGGER,
    ROLLING_WINDOW,
    UPDATE_INTERVAL,
)
from .exceptions import JoulegateAuthenticationError, JoulegateError, JoulegateResponseError
from .ledger import OUTCOME_REFUSED, InferenceLedger, LedgerSummary, read_history
from .models import Batch, Inference, Info, Status
from .store import LedgerStore


@dataclass(frozen=True, kw_only=True)
class JoulegateState:
    """One refresh: the agent's status and the integration's ledger figures."""

    status: Status
    ledger: LedgerSummary

    @property
    def last_inference(self) -> Inference | None:
        """The newest inference that ran (not a refused request), from the ledger or the status."""
        candidates = [
            row
            for row in (self.ledger.last, self.status.inference.last)
            if row is not None and row.outcome != OUTCOME_REFUSED
        ]
        return max(candidates, key=lambda row: row.id, default=None)


class JoulegateDataUpdateCoordinator(DataUpdateCoordinator[JoulegateState]):
    """Polls the agent's status and takes in new ledger rows.

    The agent's event stream, when it offers one, triggers an immediate refresh
    when an inference finishes or the gate changes; polling continues every gate cycle
    either way (power changes all the time).
    """

    config_entry: ConfigEntry[Any]

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        client: JoulegateClient,
        info: Info,
    ) -> None:
        """Initialise the coordinator for one agent."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"Joulegate {entry.title}",
            update_interval=UPDATE_INTERVAL,
            request_refresh_debouncer=Debouncer(
                hass,
                LOGGER,
                cooldown=EVENT_REFRESH_COOLDOWN.total_seconds(),
                immediate=True,
            ),
        )
        self.client = client
        self.info = info
        self.ledger = InferenceLedger(window=ROLLING_WINDOW)
        # The ledger the cursor counts in (None: not known, an agent without ledger identities).
        self.ledger_id: str | None = None
        # The gate's energy accounting, saved in one write with the cursor that counted it.
        self.accounting = Accounting(ROLLING_WINDOW)
        self.saved_totals = Totals()  # the totals as last written: what the sensors show
        self._history_read = False  # whether the rolling window was read since the start
        self.event_stream: str = "not started"
        self._store = LedgerStore(hass, entry.entry_id)
        self._ledger_lock = asyncio.Lock()
        self._row_listeners: list[Callable[[Inference], None]] = []
        self._unannounced: list[Inference] = []  # counted, but their cursor is not on disk yet

    @callback
    def async_add_row_listener(self, listener: Callable[[Inference], None]) -> CALLBACK_TYPE:
        """Call `listener` with every new ledger row, once each, in order.

        The gate counts rows through this rather than through the bus event, which anyone can
        fire: a hand-made event must not count as energy.
        """
        self._row_listeners.append(listener)
        return lambda: self._row_listeners.remove(listener)

    async def _async_setup(self) -> None:
        """Restore the cursor and the totals saved together before the last stop (or crash)."""
        stored = await self._store.async_load_state()
        self.accounting = Accounting.from_dict(stored.get("accounting") or {}, ROLLING_WINDOW)
        self.saved_totals = self.accounting.totals()
        if stored.get("device_id") != self.info.device_id:
            self.ledger_id = self.info.ledger_id
            return
        saved_ledger = stored.get("ledger_id")
        self.ledger = InferenceLedger.from_dict(stored, window=ROLLING_WINDOW)
        if saved_ledger is not None and self.info.ledger_id not in (None, saved_ledger):
            self._start_over(f"the agent's ledger is now {self.info.ledger_id}")
        self.ledger_id = self.info.ledger_id or saved_ledger

    def _start_over(self, why: str) -> None:
        """Read the agent's ledger from its first row: it is not the one the cursor counted in.

        The totals stay: what was counted was used; the new ledger's rows add to them.
        """
        LOGGER.warning(
            "The ledger of Joulegate agent %s starts over (%s; Home Assistant had read up to "
            "row %s); reading it from the start",
            self.config_entry.title,
            why,
            self.ledger.cursor,
        )
        self.ledger.reset()
        self.ledger_id = None

    async def _async_update_data(self) -> JoulegateState:
        """Fetch the status, then every ledger row after the cursor."""
        try:
            status = await self.client.status()
            await self._async_sync_ledger(status)
        except JoulegateAuthenticationError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="authentication_error"
            ) from err
        except JoulegateError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="communication_error",
                translation_placeholders={"error": str(err)},
            ) from err
        return JoulegateState(status=status, ledger=self.ledger.summary())

    async def _async_sync_ledger(self, status: Status) -> None:
        async with self._ledger_lock:
            newest = status.inference.last
            if self.ledger.cursor is None:
                await self._async_seed_ledger(newest)
                return
            if (newest.id if newest else 0) < self.ledger.cursor:
                self._start_over(f"its newest row is {newest.id if newest else None}")
                await self._async_save()
            if not self._history_read:
                await self._async_read_history()
            if newest is None or newest.id <= (self.ledger.cursor or 0):
                return  # the status names the newest row: nothing new to read
            for _ in range(LEDGER_MAX_PAGES_PER_UPDATE):
                page = await self.client.inferences(
                    after=self.ledger.cursor or 0, limit=LEDGER_PAGE_SIZE
                )
                if not self._same_ledger(page.ledger_id):
                    continue  # the cursor started over: read the new ledger from its start
                if new := self.ledger.add(page.items):
                    # Counted, then saved (cursor and totals in one write), then announced: a
                    # crash before the write counts these rows again after the restart, once;
                    # a crash after it can at worst leave a row unannounced. Rows whose write
                    # failed wait for the next one that succeeds.
                    for row in new:
                        self._call_row_listeners(row)
                    self._unannounced.extend(new)
                    await self._async_save()
                    if self._store.written:
                        for row in self._unannounced:
                            self._fire_inference_event(row)
                        self._unannounced.clear()
                if not page.has_more or not page.items:
                    break

    def _same_ledger(self, ledger_id: str | None) -> bool:
        """Whether a page is of the ledger the cursor counts in (adopting the first one named)."""
        if ledger_id is None or ledger_id == self.ledger_id:
            return True
        if self.ledger_id is not None:
            self._start_over(f"the agent's ledger is now {ledger_id}")
            self.ledger_id = ledger_id
            return False
        self.ledger_id = ledger_id
        return True

    async def _async_read_history(self) -> None:
        """Fill the rolling window with the rows up to the cursor (at start: the averages are
        known at once, not after the next rows), without counting or announcing any of them."""
        cursor = self.ledger.cursor or 0
        self._history_read = True
        if cursor == 0:
            return
        rows, ledger_id = await read_history(self.client.inferences, cursor, ROLLING_WINDOW)
        if self._same_ledger(ledger_id):
            self.ledger.seed(rows, cursor)

    def _call_row_listeners(self, row: Inference) -> None:
        """A listener that fails is logged and skipped: the cursor has moved past the row, so
        letting it fail the update would lose this row and the rest of the page for good."""
        for listener in list(self._row_listeners):
            try:
                listener(row)
            except Exception:
                LOGGER.exception(
                    "Error handling ledger row %s of Joulegate agent %s",
                    row.id,
                    self.config_entry.title,
                )

    async def _async_seed_ledger(self, newest: Inference | None) -> None:
        """First start for this agent: read recent history, announce none of it."""
        rows: list[Inference] = []
        cursor = newest.id if newest else 0
        if newest is not None:
            rows, ledger_id = await read_history(self.client.inferences, cursor, ROLLING_WINDOW)
            self.ledger_id = ledger_id or self.ledger_id
        self.ledger.seed(rows, cursor)
        self._history_read = True
        await self._async_save()

    async def _async_save(self) -> None:
        """Write the cursor and the totals (one file, one write); then the sensors show them
        (not if the write failed: a restart would come back to what is on disk)."""
        totals = self.accounting.totals()
        await self._store.async_save(
            {
                "device_id": self.info.device_id,
                "ledger_id": self.ledger_id,
                "cursor": self.ledger.cursor,
                "accounting": self.accounting.as_dict(),
            }
        )
        if self._store.written:
            self.saved_totals = totals

    async def async_saved_state(self) -> dict[str, Any] | None:
        """What the store holds now (for diagnostics)."""
        return await self._store.async_load()

    async def async_shutdown(self) -> None:
        """Write what changed since the last row (today's PV yield) when the entry unloads."""
        await super().async_shutdown()
        async with self._ledger_lock:
            if self.ledger.cursor is not None:
                await self._async_save()

    def _fire_inference_event(self, row: Inference) -> None:
        self.hass.bus.async_fire(
            EVENT_INFERENCE,
            {
                "config_entry_id": self.config_entry.entry_id,
                "agent_device_id": self.info.device_id,
                **row.raw,
            },
        )

    async def _async_batch_finished(self, batch: Batch) -> None:
        """Read the batch's last rows (the gate attributes them), then announce it."""
        await self.async_refresh()
        self.hass.bus.async_fire(
            EVENT_BATCH_FINISHED,
            {
                "config_entry_id": self.config_entry.entry_id,
                "agent_device_id": self.info.device_id,
                **finished_event(batch, self.accounting.batch(batch.id)),
            },
        )

    async def async_listen_events(self) -> None:
        """Follow the agent's event stream for as long as the entry is loaded.

        Only a refused token or an agent without the route ends it: anything else reconnects
        with back-off. A lost connection is logged at debug level (the poll reports it); an
        answer that cannot be read, or an error nobody expected, once per run of failures.
        """
        backoff = EVENT_STREAM_BACKOFF_MIN
        reported = False
        while True:
            self.event_stream = "connecting"
            try:
                async for event in self.client.events():
                    self.event_stream = "connected"
                    backoff = EVENT_STREAM_BACKOFF_MIN
                    reported = False
                    if isinstance(event, Batch):
                        await self._async_batch_finished(event)
                    else:
                        await self.async_request_refresh()
            except JoulegateAuthenticationError:
                # The next poll fails the same way and starts reauthentication.
                self.event_stream = "stopped: authentication failed"
                return
            except JoulegateResponseError as err:
                if err.status == 404:
                    LOGGER.info(
                        "Joulegate agent %s offers no event stream; polling only",
                        self.config_entry.title,
                    )
                    self.event_stream = "unsupported"
                    return
                LOGGER.log(
                    logging.DEBUG if reported else logging.WARNING,
                    "Event stream of %s failed, reconnecting: %s",
                    self.config_entry.title,
                    err,
                )
                reported = True
            except JoulegateError as err:
                LOGGER.debug("Event stream of %s lost: %s", self.config_entry.title, err)
            except Exception:
                LOGGER.log(
                    logging.DEBUG if reported else logging.ERROR,
                    "Unexpected error in the event stream of %s, reconnecting",
                    self.config_entry.title,
                    exc_info=True,
                )
                reported = True
            self.event_stream = "reconnecting"
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, EVENT_STREAM_BACKOFF_MAX)
