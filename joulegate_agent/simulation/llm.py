"""A simulated local LLM server that speaks llama.cpp, OpenAI-compatible and Ollama.

For demos and tests without a model: `joulegate-agent simulate-llm --port 8080`, then run the
agent with `--upstream http://127.0.0.1:8080`. Responses have the shapes the real servers send
(shared/reference/llm-server-formats.md) and arrive at Jetson-like rates: a prefill pause, then
~25 tokens/s of decode by default.

By default every request is served at once. `slots` makes it a real server's scheduler: with 1
slot requests run one at a time (Ollama on a small board, llama-server `--parallel 1`) and the
rest wait in FIFO order; with N slots (llama-server's default is 4) up to N decode side by side,
each at the set rate. A request may ask for its own decode rate with the simulator-only field
`"simulate_tokens_per_s"` (for tests of streams at different speeds). With `power_mode_file`
(the file an agent on the simulated board writes its power mode to) the decode rate follows the
board's mode: the set rate belongs to the default mode (25W), the others scale it as their
`tokens_per_s` in simulation/board.py.

- llama.cpp native: `POST /completion` (JSON, or SSE with `"stream": true`), with `timings`
- OpenAI-compatible: `POST /v1/chat/completions`, `POST /v1/completions` (SSE ending in
  `data: [DONE]`; `usage` in an extra chunk when `stream_options.include_usage`; a top-level
  `timings` object as llama.cpp adds), `GET /v1/models`
- Ollama: `POST /api/generate`, `POST /api/chat` (NDJSON by default, one object with
  `"stream": false`; counts and nanosecond durations on the `done` object), `GET /api/tags`
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from joulegate_agent.simulation.board import DEFAULT_MODE, mode_named

DEFAULT_MODEL = "llama3.2:3b"
DEFAULT_TOKENS_PER_S = 25.0
DEFAULT_PREFILL_TOKENS_PER_S = 400.0
DEFAULT_MAX_TOKENS = 64
DEFAULT_SLOTS = 0
LLAMA_SERVER_SLOTS = 4
"""llama-server's default number of parallel slots (`--parallel`, `-np`)."""
MAX_TOKENS_LIMIT = 4096
CHARS_PER_TOKEN = 4
FINGERPRINT = "b6000-simulated"

_TEXT = (
    "The sun is high over the roof and the panels push their surplus into the little box "
    "that thinks in joules. Every token it writes is paid for by light that would otherwise "
    "flow back to the grid, and the ledger remembers each one."
)
_WORDS = tuple(_TEXT.split(" "))


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    model: str = DEFAULT_MODEL
    tokens_per_s: float = DEFAULT_TOKENS_PER_S
    """Decode rate; 0 means as fast as possible."""
    prefill_tokens_per_s: float = DEFAULT_PREFILL_TOKENS_PER_S
    """Prompt processing rate; 0 means no prefill pause."""
    default_max_tokens: int = DEFAULT_MAX_TOKENS
    slots: int = DEFAULT_SLOTS
    """Requests served at once (1: one at a time; 0: no limit); the rest wait in FIFO order."""
    power_mode_file: Path | None = None
    """The simulated board's power mode, read on every request; None: always the set rate."""

    def decode_rate(self) -> float:
        """tokens_per_s, scaled to the simulated board's power mode when a mode file is given."""
        if self.power_mode_file is None:
            return self.tokens_per_s
        try:
            name = self.power_mode_file.read_text(encoding="utf-8").strip()
        except OSError:
            return self.tokens_per_s
        mode = mode_named(name) or DEFAULT_MODE
        return self.tokens_per_s * mode.tokens_per_s / DEFAULT_MODE.tokens_per_s

    def __post_init__(self) -> None:
        if self.slots < 0:
            raise ValueError(f"slots cannot be negative, got {self.slots}")


@dataclass(frozen=True, slots=True)
class _Plan:
    prompt_tokens: int
    output_tokens: int
    stream: bool
    model: str
    prompt_s: float
    token_s: float

    @property
    def finish_reason(self) -> str:
        return "length"


def _tokens(count: int) -> list[str]:
    return [(" " if i else "") + _WORDS[i % len(_WORDS)] for i in range(count)]


def _prompt_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        parts.append(prompt)
    elif isinstance(prompt, list):
        parts.extend(p for p in prompt if isinstance(p, str))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                parts.append(message["content"])
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    return "\n".join(parts)


def _int_field(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _ndjson(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class SimulatedLLM:
    """The simulator's handlers; `app()` builds the aiohttp application."""

    def __init__(self, settings: SimulatorSettings | None = None) -> None:
        self.settings = settings or SimulatorSettings()
        self.requests = 0
        self.busy = 0
        """Requests in prefill or decode now (at most `slots`); the others are queued."""
        self._slots = asyncio.Semaphore(self.settings.slots) if self.settings.slots else None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/completion", self.llama_completion)
        app.router.add_post("/completions", self.llama_completion)
        app.router.add_post("/v1/chat/completions", self.openai_chat)
        app.router.add_post("/v1/completions", self.openai_completions)
        app.router.add_get("/v1/models", self.openai_models)
        app.router.add_post("/api/generate", self.ollama_generate)
        app.router.add_post("/api/chat", self.ollama_chat)
        app.router.add_get("/api/tags", self.ollama_tags)
        app.router.add_get("/api/version", self.ollama_version)
        app.router.add_get("/health", self.health)
        return app

    # -- shared ---------------------------------------------------------------------------------

    async def _plan(self, request: web.Request, *, stream_default: bool) -> tuple[_Plan, Any]:
        self.requests += 1
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "request body is not JSON"}),
                content_type="application/json",
            ) from None
        if not isinstance(body, dict):
            body = {}
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        assert isinstance(options, dict)
        requested = _int_field(
            body.get("n_predict"),
            body.get("max_tokens"),
            body.get("max_completion_tokens"),
            options.get("num_predict"),
        )
        settings = self.settings
        tokens_per_s = body.get("simulate_tokens_per_s", settings.decode_rate())
        if (
            isinstance(tokens_per_s, bool)
            or not isinstance(tokens_per_s, (int, float))
            or not 0 <= tokens_per_s < math.inf
        ):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "simulate_tokens_per_s must be a number >= 0"}),
                content_type="application/json",
            )
        output = settings.default_max_tokens if requested is None or requested < 0 else requested
        output = min(output, MAX_TOKENS_LIMIT)
        prompt_tokens = max(1, math.ceil(len(_prompt_text(body)) / CHARS_PER_TOKEN))
        stream = body.get("stream", stream_default)
        model = body.get("model") if isinstance(body.get("model"), str) else settings.model
        plan = _Plan(
            prompt_tokens=prompt_tokens,
            output_tokens=output,
            stream=bool(stream),
            model=model or settings.model,
            prompt_s=(
                prompt_tokens / settings.prefill_tokens_per_s
                if settings.prefill_tokens_per_s > 0
                else 0.0
            ),
            token_s=1.0 / tokens_per_s if tokens_per_s > 0 else 0.0,
        )
        return plan, body

    async def _generate(self, plan: _Plan) -> AsyncIterator[str]:
        """Yield the tokens at the simulated pace (prefill first), once a slot is free."""
        slots = self._slots
        if slots is not None:
            await slots.acquire()
        self.busy += 1
        try:
            if plan.prompt_s:
                await asyncio.sleep(plan.prompt_s)
            started = time.monotonic()  # the first token comes from the prompt's last step
            for index, token in enumerate(_tokens(plan.output_tokens)):
                if plan.token_s and index:
                    delay = started + index * plan.token_s - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield token
        finally:
            self.busy -= 1
            if slots is not None:
                slots.release()

    @staticmethod
    def _timings(plan: _Plan) -> dict[str, Any]:
        prompt_ms = plan.prompt_s * 1000.0
        predicted_ms = plan.token_s * plan.output_tokens * 1000.0
        return {
            "prompt_n": plan.prompt_tokens,
            "prompt_ms": round(prompt_ms, 3),
            "prompt_per_token_ms": round(prompt_ms / plan.prompt_tokens, 3),
            "prompt_per_second": (
                round(plan.prompt_tokens / plan.prompt_s, 3) if plan.prompt_s else 0.0
            ),
            "predicted_n": plan.output_tokens,
            "predicted_ms": round(predicted_ms, 3),
            "predicted_per_token_ms": round(plan.token_s * 1000.0, 3),
            "predicted_per_second": round(1.0 / plan.token_s, 3) if plan.token_s else 0.0,
            "cache_n": 0,
        }

    @staticmethod
    async def _stream(request: web.Request, content_type: str) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        return response

    # -- llama.cpp native -----------------------------------------------------------------------

    async def llama_completion(self, request: web.Request) -> web.StreamResponse:
        plan, _body = await self._plan(request, stream_default=False)
        final_base = {
            "index": 0,
            "id_slot": 0,
            "stop": True,
            "model": plan.model,
            "tokens_predicted": plan.output_tokens,
            "tokens_evaluated": plan.prompt_tokens,
            "truncated": False,
            "stop_type": "limit",
            "stopping_word": "",
            "tokens_cached": plan.prompt_tokens + plan.output_tokens,
        }
        if not plan.stream:
            text = "".join([token async for token in self._generate(plan)])
            return web.json_response(
                {"content": text, "tokens": [], **final_base, "timings": self._timings(plan)}
            )
        response = await self._stream(request, "text/event-stream")
        index = 0
        async for token in self._generate(plan):
            await response.write(
                _sse({"index": 0, "content": token, "tokens": [index], "stop": False})
            )
            index += 1
        await response.write(
            _sse({"content": "", "tokens": [], **final_base, "timings": self._timings(plan)})
        )
        await response.write_eof()
        return response

    # -- OpenAI-compatible ----------------------------------------------------------------------

    def _openai_envelope(self, plan: _Plan, obj: str, request_id: str) -> dict[str, Any]:
        return {
            "created": int(time.time()),
            "model": plan.model,
            "system_fingerprint": FINGERPRINT,
            "object": obj,
            "id": request_id,
        }

    @staticmethod
    def _usage(plan: _Plan) -> dict[str, int]:
        return {
            "completion_tokens": plan.output_tokens,
            "prompt_tokens": plan.prompt_tokens,
            "total_tokens": plan.output_tokens + plan.prompt_tokens,
        }

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._openai(request, chat=True)

    async def openai_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._openai(request, chat=False)

    async def _openai(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        plan, body = await self._plan(request, stream_default=False)
        request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        if not plan.stream:
            text = "".join([token async for token in self._generate(plan)])
            choice: dict[str, Any] = {"finish_reason": plan.finish_reason, "index": 0}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice.update(text=text, logprobs=None)
            return web.json_response(
                {
                    "choices": [choice],
                    **self._openai_envelope(
                        plan, "chat.completion" if chat else "text_completion", request_id
                    ),
                    "usage": self._usage(plan),
                    "timings": self._timings(plan),
                }
            )
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )
        obj = "chat.completion.chunk" if chat else "text_completion"
        envelope = self._openai_envelope(plan, obj, request_id)
        response = await self._stream(request, "text/event-stream")
        if chat:
            first = {"finish_reason": None, "index": 0, "delta": {"role": "assistant"}}
            await response.write(_sse({"choices": [first], **envelope}))
        async for token in self._generate(plan):
            delta: dict[str, Any] = {"finish_reason": None, "index": 0}
            if chat:
                delta["delta"] = {"content": token}
            else:
                delta.update(text=token, logprobs=None)
            await response.write(_sse({"choices": [delta], **envelope}))
        last: dict[str, Any] = {"finish_reason": plan.finish_reason, "index": 0}
        if chat:
            last["delta"] = {}
        else:
            last.update(text="", logprobs=None)
        await response.write(_sse({"choices": [last], **envelope, "timings": self._timings(plan)}))
        if include_usage:
            await response.write(_sse({"choices": [], **envelope, "usage": self._usage(plan)}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def openai_models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.settings.model,
                        "object": "model",
                        "created": int(time.time()),
                        "owned_by": "joulegate-simulator",
                    }
                ],
            }
        )

    # -- Ollama ---------------------------------------------------------------------------------

    def _ollama_done(self, plan: _Plan, elapsed_s: float) -> dict[str, Any]:
        prompt_ns = int(plan.prompt_s * 1e9)
        eval_ns = int(plan.token_s * plan.output_tokens * 1e9)
        return {
            "done": True,
            "done_reason": plan.finish_reason,
            "total_duration": int(elapsed_s * 1e9),
            "load_duration": 1_000_000,
            "prompt_eval_count": plan.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": plan.output_tokens,
            "eval_duration": eval_ns,
        }

    async def ollama_generate(self, request: web.Request) -> web.StreamResponse:
        return await self._ollama(request, chat=False)

    async def ollama_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._ollama(request, chat=True)

    async def _ollama(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        started = time.monotonic()
        plan, _body = await self._plan(request, stream_default=True)

        def piece(text: str) -> dict[str, Any]:
            if chat:
                return {"message": {"role": "assistant", "content": text}}
            return {"response": text}

        if not plan.stream:
            text = "".join([token async for token in self._generate(plan)])
            done = {
                "model": plan.model,
                "created_at": _now_iso(),
                **piece(text),
                **self._ollama_done(plan, time.monotonic() - started),
            }
            if not chat:
                done["context"] = list(range(plan.prompt_tokens + plan.output_tokens))[:32]
            return web.json_response(done)
        response = await self._stream(request, "application/x-ndjson")
        async for token in self._generate(plan):
            await response.write(
                _ndjson(
                    {"model": plan.model, "created_at": _now_iso(), **piece(token), "done": False}
                )
            )
        final = {
            "model": plan.model,
            "created_at": _now_iso(),
            **piece(""),
            **self._ollama_done(plan, time.monotonic() - started),
        }
        await response.write(_ndjson(final))
        await response.write_eof()
        return response

    async def ollama_tags(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "models": [
                    {
                        "name": self.settings.model,
                        "model": self.settings.model,
                        "modified_at": "2026-01-01T00:00:00Z",
                        "size": 2019393189,
                        "digest": "a80c4f17acd5" + "0" * 52,
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "llama",
                            "families": ["llama"],
                            "parameter_size": "3.2B",
                            "quantization_level": "Q4_K_M",
                        },
                    }
                ]
            }
        )

    async def ollama_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.0"})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


async def run_simulator(host: str, port: int, settings: SimulatorSettings) -> None:
    """Serve until cancelled (Ctrl-C)."""
    runner = web.AppRunner(SimulatedLLM(settings).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    slots = f"{settings.slots} at a time" if settings.slots else "no slot limit"
    print(
        f"Simulated LLM server ({settings.model}, {settings.tokens_per_s:g} tokens/s, {slots}) "
        f"on http://{host}:{port} — llama.cpp /completion, OpenAI /v1/*, "
        "Ollama /api/generate and /api/chat",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
