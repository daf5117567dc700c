"""Reading a batch input file as OpenAI does: every line a request, every problem named by line.

A line is `{"custom_id": "...", "method": "POST", "url": "<the batch's endpoint>", "body": {...}}`.
Problems carry OpenAI's codes (`invalid_json_line`, `duplicate_custom_id`, `url_mismatch`,
`model_mismatch`, `empty_file`, `too_many_tasks`, `missing_required_parameter`,
`invalid_request`); a batch with any ends `failed` with them in `errors.data`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_REQUESTS = 50_000
MAX_ERRORS = 100
"""The first this many problems are reported (OpenAI also reports a sample)."""
CUSTOM_ID_MAX_CHARS = 512


@dataclass(frozen=True, slots=True)
class BatchRequest:
    line: int
    custom_id: str
    body: str
    """The request body as JSON text, sent to the upstream as it is."""


@dataclass(slots=True)
class Validated:
    requests: list[BatchRequest] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None

    def problem(self, code: str, line: int | None, message: str, param: str | None = None) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"code": code, "line": line, "message": message, "param": param})


def validate_lines(lines: Iterable[bytes], endpoint: str) -> Validated:
    """Every request of an input file, or the problems that make it unusable."""
    result = Validated()
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if len(result.requests) >= MAX_REQUESTS:
            result.problem(
                "too_many_tasks", number, f"A batch may hold at most {MAX_REQUESTS} requests."
            )
            break
        request = _request(raw, number, endpoint, result)
        if request is None:
            continue
        if request.custom_id in seen:
            result.problem(
                "duplicate_custom_id",
                number,
                f"The custom_id {request.custom_id!r} is used by an earlier line; each must be "
                "unique in the batch.",
                "custom_id",
            )
            continue
        seen.add(request.custom_id)
        result.requests.append(request)
    if not result.requests and not result.errors:
        result.problem("empty_file", None, "The input file holds no requests.")
    return result


def _request(raw: bytes, number: int, endpoint: str, result: Validated) -> BatchRequest | None:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        result.problem("invalid_json_line", number, "This line is not parseable as valid JSON.")
        return None
    if not isinstance(parsed, dict):
        result.problem("invalid_json_line", number, "This line is not a JSON object.")
        return None
    for name in ("custom_id", "method", "url", "body"):
        if name not in parsed:
            result.problem("missing_required_parameter", number, f"The line has no {name!r}.", name)
            return None
    custom_id, method, url, body = (parsed[k] for k in ("custom_id", "method", "url", "body"))
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > CUSTOM_ID_MAX_CHARS:
        result.problem(
            "invalid_request",
            number,
            f"custom_id must be a non-empty string of at most {CUSTOM_ID_MAX_CHARS} characters.",
            "custom_id",
        )
        return None
    if method != "POST":
        result.problem("invalid_request", number, "method must be 'POST'.", "method")
        return None
    if url != endpoint:
        result.problem(
            "url_mismatch",
            number,
            f"The url {url!r} does not match the batch's endpoint {endpoint!r}.",
            "url",
        )
        return None
    if not isinstance(body, dict):
        result.problem("invalid_request", number, "body must be a JSON object.", "body")
        return None
    model = body.get("model")
    if isinstance(model, str) and model:
        if result.model is None:
            result.model = model
        elif model != result.model:
            result.problem(
                "model_mismatch",
                number,
                f"The model {model!r} differs from {result.model!r} of earlier lines; a batch "
                "uses one model.",
                "body.model",
            )
            return None
    if body.get("stream") is True:
        result.problem(
            "invalid_request", number, "Batch requests cannot stream; drop 'stream'.", "body"
        )
        return None
    return BatchRequest(number, custom_id, json.dumps(body, separators=(",", ":")))
