"""Runs batch requests on the rig: one at a time by default, only while the gate admits batch
work and no interactive request is waiting, each through the proxy's upstream session and
metered as a ledger row carrying its batch id and custom_id.

Order per request: the upstream answers, the ledger row is committed, then the result. A crash
anywhere before the result leaves the request pending, so it runs again after the restart (at
least once; every attempt keeps its row); the result is set only once (exactly once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from joulegate_agent.aio import wait_set
from joulegate_agent.batch.batch_store import BatchRecord, BatchStore, PendingRequest
from joulegate_agent.batch.file_store import FileStore
from joulegate_agent.errors import JoulegateError
from joulegate_agent.inference.service import InferenceService, OpenWindow
from joulegate_agent.proxy.dialects import (
    Dialect,
    TokenCounts,
    TokenReader,
    dialect_for,
    read_request,
    reader_for,
)
from joulegate_agent.storage.ledger import InferenceRow, Outcome

if TYPE_CHECKING:
    from joulegate_agent.proxy.routes import Proxy

_LOGGER = logging.getLogger(__name__)

TICK_S = 1.0
MAX_ATTEMPTS = 3
"""Tries of a request the upstream never answered (unreachable, timed out) before it fails."""
RETRY_BASE_S = 1.0
STORAGE_RETRY_S = 1.0
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def result_line(
    custom_id: str, *, response: dict[str, Any] | None, error: dict[str, str] | None
) -> str:
    """One line of an output or error file, as OpenAI writes them."""
    return json.dumps(
        {
            "id": f"batch_req_{uuid.uuid4().hex}",
            "custom_id": custom_id,
            "response": response,
            "error": error,
        },
        separators=(",", ":"),
    )


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", "replace")


class RowNotOnDiskError(JoulegateError):
    """An attempt's ledger row is held in the spool, not on disk: its result must wait."""


class _Attempt:
    """What one run of a request came to."""

    __slots__ = ("body", "error", "http_status", "outcome", "reader", "ttft_s")

    def __init__(self) -> None:
        self.reader: TokenReader | None = None
        self.http_status: int | None = None
        self.body = b""
        self.outcome: Outcome = "error"
        self.ttft_s: float | None = None
        self.error: dict[str, str] | None = None


class BatchRunner:
    def __init__(
        self,
        service: InferenceService,
        batches: BatchStore,
        files: FileStore,
        *,
        concurrency: int,
        on_tick: Callable[[list[BatchRecord]], None] | None = None,
        on_finished: Callable[[str], None] | None = None,
    ) -> None:
        self.service = service
        self.batches = batches
        self.files = files
        self.concurrency = concurrency
        self.proxy: Proxy | None = None
        self._on_tick = on_tick
        self._on_finished = on_finished
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._failures: dict[tuple[str, int], int] = {}
        self._not_before: dict[tuple[str, int], float] = {}
        self._remove_listener: Callable[[], None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._remove_listener = self.service.gate.add_listener(lambda _state: self.wake())
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop starting requests and cancel those running: their windows are recorded as
        cancelled and the requests stay pending, to run again after the restart."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def admits(self) -> bool:
        """Batch work may start: admission lets it and the ledger is writable (no result without
        its row on disk)."""
        return self.service.admission.admits_batch and self.service.writer.health().healthy

    # -- the loop ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._tick()
            except Exception:
                _LOGGER.exception("The batch runner failed; it tries again shortly")
            await wait_set(self._wake, TICK_S)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        active = await loop.run_in_executor(None, self.batches.active)
        now = time.time()
        for batch in active:
            await self._advance(batch, now)
        if self._on_tick is not None:
            self._on_tick(active)
        await self._start_requests()

    async def _advance(self, batch: BatchRecord, now: float) -> None:
        """Finish a batch that is done, past its deadline or cancelled."""
        busy = any(key[0] == batch.id for key in self._running)
        if batch.status == "cancelling" and not busy:
            await self._close(batch, "cancelled", "batch_cancelled", "The batch was cancelled.")
        elif batch.status == "in_progress" and now >= batch.deadline:
            _LOGGER.warning(
                "Batch %s expired with %d of %d requests not run",
                batch.id,
                batch.counts.left,
                batch.counts.total,
            )
            await self._close(
                batch,
                "expired",
                "batch_expired",
                "This request could not be executed before the completion window expired.",
            )
        elif batch.status == "finalizing" or (
            batch.status == "in_progress" and not batch.counts.left
        ):
            await self._close(batch, "completed", None, "")

    async def _close(self, batch: BatchRecord, status: str, code: str | None, message: str) -> None:
        loop = asyncio.get_running_loop()
        now = int(time.time())
        if code is not None:
            error = {"code": code, "message": message}
            await loop.run_in_executor(
                None,
                self.batches.fail_unfinished,
                batch.id,
                lambda custom_id: result_line(custom_id, response=None, error=error),
            )
        if status == "completed":
            await loop.run_in_executor(
                None,
                lambda: self.batches.set_status(
                    batch.id, "finalizing", now, only_from=("in_progress", "finalizing")
                ),
            )
        await loop.run_in_executor(None, self._write_results, batch, status, now)
        _LOGGER.info("Batch %s %s", batch.id, status)
        if self._on_finished is not None:
            self._on_finished(batch.id)

    def _write_results(self, batch: BatchRecord, status: str, now: int) -> None:
        stem = batch.id.removeprefix("batch_")
        output = error = None
        if any(True for _ in self.batches.results(batch.id, failed=False)):
            output = self.files.write_result(
                f"file-{stem}-output",
                f"{batch.id}_output.jsonl",
                self.batches.results(batch.id, failed=False),
            )
        if any(True for _ in self.batches.results(batch.id, failed=True)):
            error = self.files.write_result(
                f"file-{stem}-errors",
                f"{batch.id}_error.jsonl",
                self.batches.results(batch.id, failed=True),
            )
        self.batches.finish(batch.id, status, now, output, error)

    async def _start_requests(self) -> None:
        proxy = self.proxy
        if proxy is None or proxy.settings.upstream is None:
            return
        while len(self._running) < self.concurrency and self.admits():
            now = time.monotonic()
            waiting = {key for key, when in self._not_before.items() if when > now}
            skip = set(self._running) | waiting
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(None, self.batches.pending, skip, 1)
            if not found or not self.admits() or not self.service.admission.try_admit_batch():
                return
            request = found[0]
            self._running[request.key] = asyncio.create_task(self._run(proxy, request))

    # -- one request ---------------------------------------------------------------------------

    async def _run(self, proxy: Proxy, request: PendingRequest) -> None:
        try:
            attempt = await self._attempt(proxy, request)
            await self._record(request, attempt)
        except (OSError, sqlite3.Error, RowNotOnDiskError) as err:  # disk full, read-only, ...
            _LOGGER.error(
                "Could not record batch request %s of %s (%s); it runs again in %g s",
                request.custom_id,
                request.batch_id,
                err,
                STORAGE_RETRY_S,
            )
            self._not_before[request.key] = time.monotonic() + STORAGE_RETRY_S
        except Exception:
            _LOGGER.exception("Batch request %s of %s failed", request.custom_id, request.batch_id)
            self._not_before[request.key] = time.monotonic() + STORAGE_RETRY_S
        finally:
            self.service.admission.release()
            self._running.pop(request.key, None)
            self.wake()

    async def _attempt(self, proxy: Proxy, request: PendingRequest) -> _Attempt:
        service = self.service
        dialect = dialect_for("POST", request.endpoint) or Dialect.OPENAI
        body = request.body.encode()
        facts = read_request(dialect, body)
        window = service.open(
            gate_open=True, model=facts.model, route=request.endpoint, work_visible=facts.streamed
        )
        window.batch_id = request.batch_id
        window.custom_id = request.custom_id
        attempt = _Attempt()
        try:
            await self._exchange(proxy, request.endpoint, body, window, attempt)
        except asyncio.CancelledError:
            attempt.outcome = "cancelled"
            self._finish(window, attempt)
            raise
        row = await self._finish(window, attempt)
        if row.id is None and not await service.writer.flush():
            raise RowNotOnDiskError(
                "the disk refuses the ledger; the attempt's row waits in the spool"
            )
        return attempt

    async def _exchange(
        self,
        proxy: Proxy,
        endpoint: str,
        body: bytes,
        window: OpenWindow,
        attempt: _Attempt,
    ) -> None:
        dialect = dialect_for("POST", endpoint) or Dialect.OPENAI
        settings = proxy.settings
        upstream = settings.upstream
        assert upstream is not None
        url = upstream.with_path(upstream.raw_path.rstrip("/") + endpoint, encoded=True)
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if settings.upstream_api_key:
            headers["Authorization"] = f"Bearer {settings.upstream_api_key}"
        session = await proxy.session()
        try:
            async with session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                skip_auto_headers=("User-Agent",),
            ) as response:
                attempt.http_status = response.status
                reader = attempt.reader = reader_for(
                    dialect,
                    response.headers.get("Content-Type"),
                    response.headers.get("Content-Encoding"),
                )
                received = bytearray()
                while chunk := await response.content.readany():
                    if tokens := reader.feed(chunk):
                        self.service.meter.record_work(window.key, tokens)
                        if attempt.ttft_s is None:
                            attempt.ttft_s = time.monotonic() - window.started_mono
                    received += chunk
                    if len(received) > MAX_RESPONSE_BYTES:
                        raise aiohttp.ClientPayloadError("the answer is too large")
                attempt.body = bytes(received)
                attempt.outcome = "ok" if response.status < 400 else "error"
        except asyncio.TimeoutError:
            attempt.http_status = 504
            attempt.error = {
                "code": "upstream_timeout",
                "message": f"The upstream LLM server did not answer within "
                f"{settings.read_timeout_s:g} s.",
            }
        except aiohttp.ClientError as err:
            attempt.http_status = 502
            attempt.error = {
                "code": "upstream_unavailable",
                "message": f"The upstream LLM server failed: {err.__class__.__name__}.",
            }

    def _finish(self, window: OpenWindow, attempt: _Attempt) -> asyncio.Task[InferenceRow]:
        counts = attempt.reader.finish() if attempt.reader is not None else TokenCounts()
        ttft = attempt.ttft_s
        if ttft is None and attempt.outcome == "ok":
            ttft = counts.upstream_ttft_s
        return self.service.finish_later(
            window,
            outcome=attempt.outcome,
            http_status=attempt.http_status,
            prompt_tokens=counts.prompt_tokens,
            output_tokens=counts.output_tokens,
            tokens_estimated=counts.estimated and counts.output_tokens is not None,
            ttft_s=ttft,
            model=counts.model,
            prompt_s=counts.upstream_ttft_s,
        )

    async def _record(self, request: PendingRequest, attempt: _Attempt) -> None:
        key = request.key
        if attempt.error is not None:
            tries = self._failures.get(key, 0) + 1
            self._failures[key] = tries
            if tries < MAX_ATTEMPTS:
                self._not_before[key] = time.monotonic() + RETRY_BASE_S * 2.0 ** (tries - 1)
                return
            line = result_line(request.custom_id, response=None, error=attempt.error)
            failed = True
        else:
            response = {
                "status_code": attempt.http_status,
                "request_id": uuid.uuid4().hex,
                "body": _body(attempt.body),
            }
            line = result_line(request.custom_id, response=response, error=None)
            failed = attempt.outcome != "ok"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, self.batches.record_result, request.batch_id, request.line, line, failed
        )
        self._failures.pop(key, None)
        self._not_before.pop(key, None)
