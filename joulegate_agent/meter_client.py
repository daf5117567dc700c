"""Meter inferences that do not go through the proxy (TensorRT-LLM, a Python loop, a C++ binary).

Standard library only, so it can be copied next to any runtime::

    from joulegate_agent.meter_client import MeterClient

    client = MeterClient("http://orin.local:8787", token)
    with client.window(model="llama3.2:3b") as window:
        text, n_out, n_in = run_my_model(prompt)
        window.output_tokens = n_out
        window.prompt_tokens = n_in
    print(window.result["energy_j"], window.result["j_per_token"])

The block is one window: `POST /api/v1/windows` when it starts, `POST /api/v1/windows/{id}/end`
when it ends. An exception inside the block ends the window as `error` (Ctrl-C: `cancelled`)
and propagates unchanged.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_LOGGER = logging.getLogger(__name__)

API_PATH = "/api/v1"


class MeterClientError(Exception):
    """The agent could not be reached or refused the request; `status` is the HTTP status (or
    None when there was no answer) and `code` the agent's error code."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(slots=True)
class MeterWindow:
    """A window in flight; set the token counts before the block ends."""

    window_id: str
    started_at: str
    model: str | None = None
    label: str | None = None
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    outcome: str | None = None
    """Force an outcome (ok, error, cancelled); by default ok, or error on an exception."""
    result: dict[str, Any] | None = None
    """The ledger row, once the window has ended."""


class MeterClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        use_env_proxy: bool = False,
    ) -> None:
        base = base_url.rstrip("/")
        if base.endswith(API_PATH):
            base = base[: -len(API_PATH)]
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base
        self._token = token
        self._timeout = timeout
        handlers: list[urllib.request.BaseHandler] = []
        if not use_env_proxy:
            handlers.append(urllib.request.ProxyHandler({}))  # the agent is on the LAN
        self._opener = urllib.request.build_opener(*handlers)

    # -- API ------------------------------------------------------------------------------------

    def start(self, *, model: str | None = None, label: str | None = None) -> MeterWindow:
        body: dict[str, Any] = {}
        if model is not None:
            body["model"] = model
        if label is not None:
            body["label"] = label
        answer = self._call("POST", "/windows", body)
        return MeterWindow(
            window_id=str(answer["window_id"]),
            started_at=str(answer["started_at"]),
            model=model,
            label=label,
        )

    def end(
        self,
        window: MeterWindow,
        *,
        outcome: str = "ok",
        output_tokens: int | None = None,
        prompt_tokens: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"outcome": outcome}
        if output_tokens is not None:
            body["output_tokens"] = output_tokens
        if prompt_tokens is not None:
            body["prompt_tokens"] = prompt_tokens
        row = self._call("POST", f"/windows/{window.window_id}/end", body)
        window.result = row
        return row

    @contextmanager
    def window(
        self, *, model: str | None = None, label: str | None = None
    ) -> Iterator[MeterWindow]:
        """Meter the block as one inference window (see the module docstring)."""
        window = self.start(model=model, label=label)
        try:
            yield window
        except KeyboardInterrupt:
            self._end_quietly(window, "cancelled")
            raise
        except BaseException:
            self._end_quietly(window, "error")
            raise
        self.end(
            window,
            outcome=window.outcome or "ok",
            output_tokens=window.output_tokens,
            prompt_tokens=window.prompt_tokens,
        )

    def gate(self) -> dict[str, Any]:
        """The gate as the agent sees it (`open`, `reason`, ...)."""
        return self._call("GET", "/gate", None)

    # -- internals ------------------------------------------------------------------------------

    def _end_quietly(self, window: MeterWindow, outcome: str) -> None:
        """End the window while an exception propagates; never replace that exception."""
        try:
            self.end(
                window,
                outcome=window.outcome or outcome,
                output_tokens=window.output_tokens,
                prompt_tokens=window.prompt_tokens,
            )
        except MeterClientError as err:
            _LOGGER.warning("Could not end window %s: %s", window.window_id, err)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self.base_url}{API_PATH}{path}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as err:
            raise _error_from(err) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise MeterClientError(f"cannot reach the agent at {self.base_url}: {reason}") from err
        try:
            parsed = json.loads(payload)
        except ValueError as err:
            raise MeterClientError(f"the agent sent a non-JSON answer to {path}") from err
        if not isinstance(parsed, dict):
            raise MeterClientError(f"the agent sent an unexpected answer to {path}")
        return parsed


def _error_from(err: urllib.error.HTTPError) -> MeterClientError:
    code: str | None = None
    message = f"HTTP {err.code}"
    try:
        parsed = json.loads(err.read())
    except (ValueError, OSError):
        parsed = None
    if isinstance(parsed, dict):
        code = parsed.get("error") if isinstance(parsed.get("error"), str) else None
        if isinstance(parsed.get("message"), str):
            message = f"HTTP {err.code}: {parsed['message']}"
    return MeterClientError(message, status=err.code, code=code)
