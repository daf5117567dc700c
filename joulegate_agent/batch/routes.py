"""OpenAI's Files and Batches APIs on the agent: /v1/files and /v1/batches.

They answer here, never at the upstream, and always need the agent's token (`--no-proxy-auth`
does not open them). Errors have OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, which the official client reads.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from joulegate_agent.api.errors import ApiError
from joulegate_agent.api.server import read_in_time
from joulegate_agent.batch.batch_store import ACTIVE
from joulegate_agent.batch.deadline import DeadlineError, batch_deadline
from joulegate_agent.batch.file_store import (
    FILENAME_MAX_CHARS,
    PURPOSE_INPUT,
    PURPOSES,
    FileLimitError,
    FileRecord,
)
from joulegate_agent.batch.service import BatchService
from joulegate_agent.batch.validation import validate_lines
from joulegate_agent.errors import JoulegateError

PATH_PREFIXES = ("/v1/files", "/v1/batches")
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
METADATA_MAX_KEYS = 16
METADATA_KEY_MAX_CHARS = 64
METADATA_VALUE_MAX_CHARS = 512
CHUNK_BYTES = 64 * 1024
FILES_PAGE_MAX = 10_000
BATCHES_PAGE_MAX = 100
BATCHES_PAGE_DEFAULT = 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OpenAIError(JoulegateError):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def _openai_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (OpenAIError, ApiError) as err:  # ApiError: the server's own, e.g. a 408
            kind = "invalid_request_error" if err.status < 500 else "server_error"
            return web.json_response(
                {
                    "error": {
                        "message": err.message,
                        "type": kind,
                        "param": getattr(err, "param", None),
                        "code": err.code,
                    }
                },
                status=err.status,
            )

    return wrapped


def _bad(message: str, param: str | None = None, code: str = "invalid_request") -> OpenAIError:
    return OpenAIError(400, code, message, param)


def _limit(request: web.Request, default: int, high: int) -> int:
    text = request.query.get("limit")
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"limit must be an integer, got {text!r}.", "limit") from None
    if not 1 <= value <= high:
        raise _bad(f"limit must be between 1 and {high}, got {value}.", "limit")
    return value


def _page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > METADATA_MAX_KEYS:
        raise _bad(f"metadata must be an object of at most {METADATA_MAX_KEYS} keys.", "metadata")
    for key, item in value.items():
        if (
            len(key) > METADATA_KEY_MAX_CHARS
            or not isinstance(item, str)
            or len(item) > METADATA_VALUE_MAX_CHARS
        ):
            raise _bad(
                f"metadata keys are strings of at most {METADATA_KEY_MAX_CHARS} characters and "
                f"values strings of at most {METADATA_VALUE_MAX_CHARS}.",
                "metadata",
            )
    return dict(value)


class BatchRoutes:
    def __init__(self, batches: BatchService) -> None:
        self.service = batches
        self.files = batches.files
        self.store = batches.batches

    # -- files ---------------------------------------------------------------------------------

    async def create_file(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise _bad("Upload the file as multipart/form-data with fields 'file' and 'purpose'.")
        purpose: str | None = None
        upload = None
        filename = "upload.jsonl"
        try:
            reader = await request.multipart()
            while (part := await _next_part(request, reader)) is not None:
                if not isinstance(part, BodyPartReader):
                    raise _bad("Nested multipart bodies are not accepted.")
                if part.name == "purpose":
                    purpose = (await _chunk(request, part))[:64].decode("utf-8", "replace")
                elif part.name == "file" and upload is None:
                    filename = (part.filename or filename)[:FILENAME_MAX_CHARS]
                    upload = self.files.begin_upload()
                    try:
                        while chunk := await _chunk(request, part):
                            upload.write(chunk)
                    except FileLimitError:
                        raise OpenAIError(
                            413, "file_too_large", self.files.limit_error(upload), "file"
                        ) from None
                else:
                    await _skip(request, part)
            if upload is None:
                raise _bad("The upload has no 'file' field.", "file")
            if purpose != PURPOSE_INPUT:
                raise _bad(
                    f"purpose must be {PURPOSE_INPUT!r} (the only purpose this agent keeps "
                    f"files for), got {purpose!r}.",
                    "purpose",
                )
            loop = asyncio.get_running_loop()
            record = await loop.run_in_executor(
                None, self.files.commit_upload, upload, filename, purpose
            )
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return web.json_response(record.to_json())

    async def list_files(self, request: web.Request) -> web.Response:
        purpose = request.query.get("purpose")
        if purpose is not None and purpose not in PURPOSES:
            raise _bad(f"purpose must be one of {', '.join(PURPOSES)}.", "purpose")
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _bad("order must be 'asc' or 'desc'.", "order")
        limit = _limit(request, FILES_PAGE_MAX, FILES_PAGE_MAX)
        records, has_more = self.files.page(
            purpose=purpose,
            after=request.query.get("after"),
            limit=limit,
            newest_first=order == "desc",
        )
        return web.json_response(_page([r.to_json() for r in records], has_more))

    def _file(self, request: web.Request) -> FileRecord:
        file_id = request.match_info["file_id"]
        record = self.files.get(file_id)
        if record is None:
            raise OpenAIError(404, "file_not_found", f"No such file: {file_id!r}.", "file_id")
        return record

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._file(request).to_json())

    async def file_content(self, request: web.Request) -> web.StreamResponse:
        record = self._file(request)
        path = self.files.path(record.id)
        if not path.exists():
            raise OpenAIError(404, "file_not_found", f"The bytes of {record.id!r} are gone.")
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def delete_file(self, request: web.Request) -> web.Response:
        record = self._file(request)
        loop = asyncio.get_running_loop()
        deleted = await loop.run_in_executor(None, self.files.delete, record.id)
        return web.json_response({"id": record.id, "object": "file", "deleted": deleted})

    # -- batches -------------------------------------------------------------------------------

    async def create_batch(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        input_file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        window = body.get("completion_window")
        if not isinstance(input_file_id, str):
            raise _bad("input_file_id is required.", "input_file_id", "missing_required_parameter")
        if endpoint not in ENDPOINTS:
            raise _bad(f"endpoint must be one of {', '.join(ENDPOINTS)}.", "endpoint")
        if not isinstance(window, str):
            raise _bad("completion_window is required ('24h').", "completion_window")
        metadata = _metadata(body.get("metadata"))
        proxy = self.service.runner.proxy
        if proxy is None or proxy.settings.upstream is None:
            raise OpenAIError(
                400,
                "upstream_not_configured",
                "No upstream LLM server is configured to run batches; start the agent with "
                "--upstream URL.",
            )
        record = self.files.get(input_file_id)
        if record is None or record.purpose != PURPOSE_INPUT:
            raise OpenAIError(
                404,
                "file_not_found",
                f"No input file {input_file_id!r} with purpose 'batch'.",
                "input_file_id",
            )
        now = int(time.time())
        try:
            deadline = batch_deadline(window, metadata, now)
        except DeadlineError as err:
            raise _bad(str(err), "metadata") from None
        loop = asyncio.get_running_loop()
        path = self.files.path(record.id)

        def validate_and_create() -> Any:
            with path.open("rb") as lines:
                checked = validate_lines(lines, endpoint)
            return self.store.create(
                input_file_id=input_file_id,
                endpoint=endpoint,
                completion_window=window,
                metadata=metadata,
                deadline=deadline,
                now=now,
                model=checked.model,
                requests=checked.requests,
                errors=checked.errors,
            )

        async with self.service.create_lock:  # a client's retry waits, then gets this batch
            batch = await loop.run_in_executor(None, validate_and_create)
        self.service.runner.wake()
        return web.json_response(self.service.to_json(batch))

    async def get_batch(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        batch = self.store.get(batch_id)
        if batch is None:
            raise OpenAIError(404, "batch_not_found", f"No such batch: {batch_id!r}.", "batch_id")
        return web.json_response(self.service.to_json(batch))

    async def list_batches(self, request: web.Request) -> web.Response:
        limit = _limit(request, BATCHES_PAGE_DEFAULT, BATCHES_PAGE_MAX)
        batches, has_more = self.store.page(request.query.get("after"), limit)
        return web.json_response(_page([self.service.to_json(b) for b in batches], has_more))

    async def cancel_batch(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        batch = self.store.get(batch_id)
        if batch is None:
            raise OpenAIError(404, "batch_not_found", f"No such batch: {batch_id!r}.", "batch_id")
        if batch.status not in ACTIVE:
            raise OpenAIError(
                409, "batch_not_cancellable", f"A batch that is {batch.status} cannot be cancelled."
            )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None,
            lambda: self.store.set_status(
                batch_id, "cancelling", int(time.time()), only_from=("validating", "in_progress")
            ),
        )
        self.service.runner.wake()
        cancelled = self.store.get(batch_id)
        assert cancelled is not None
        return web.json_response(self.service.to_json(cancelled))


def _malformed(err: Exception) -> OpenAIError:
    return OpenAIError(400, "invalid_multipart", f"The multipart body is malformed: {err}.")


async def _next_part(request: web.Request, reader: MultipartReader) -> Any:
    """The next part; each read of an upload must arrive within the server's body timeout,
    but the whole may take as long as it keeps coming (200 MB over Wi-Fi takes minutes)."""
    try:
        return await read_in_time(request, reader.next())
    except (ValueError, HttpProcessingError) as err:
        raise _malformed(err) from None


async def _chunk(request: web.Request, part: BodyPartReader) -> bytes:
    try:
        return await read_in_time(request, part.read_chunk(CHUNK_BYTES))
    except (ValueError, HttpProcessingError) as err:
        raise _malformed(err) from None


async def _skip(request: web.Request, part: BodyPartReader) -> None:
    while await _chunk(request, part):
        pass


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await read_in_time(request, request.read()))
    except (ValueError, RecursionError):
        raise _bad("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    return body


async def _not_allowed(request: web.Request) -> web.Response:
    raise OpenAIError(405, "method_not_allowed", f"{request.method} is not allowed here.")


def add_openai_resource(router: web.UrlDispatcher, path: str, **methods: Handler) -> None:
    """`path` answering `methods` (POST=..., GET=...) with OpenAI-shaped errors, and 405 to any
    other method. Register before the proxy's catch-all `/v1/{tail}`, which would send it
    upstream."""
    resource = router.add_resource(path)
    for method, handler in methods.items():
        resource.add_route(method, _openai_errors(handler))
    resource.add_route("*", _openai_errors(_not_allowed))
