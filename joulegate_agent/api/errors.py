"""Every error leaves the agent as JSON: {"error": code, "message": sentence}."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from joulegate_agent.errors import JoulegateError


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return web.json_response(
        {"error": code, "message": message, **extra}, status=status, headers=headers
    )


class ApiError(JoulegateError):
    """Raised by handlers for a bad request; the middleware turns it into a JSON response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
