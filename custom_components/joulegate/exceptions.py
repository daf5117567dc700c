"""The errors of the Joulegate client: one family, so a caller can catch `JoulegateError`."""

from __future__ import annotations


class JoulegateError(Exception):
    """Base error of the Joulegate client."""


class JoulegateConnectionError(JoulegateError):
    """The agent could not be reached, or the connection broke or timed out."""


class JoulegateAuthenticationError(JoulegateError):
    """The agent refused the bearer token (HTTP 401 or 403)."""


class JoulegateNotAgentError(JoulegateError):
    """Something answered at that address, but it is not a Joulegate agent."""


class JoulegateResponseError(JoulegateError):
    """The agent answered with an error status or a body the client cannot read."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        """Keep the HTTP status and the agent's machine-readable error code."""
        super().__init__(message)
        self.status = status
        self.code = code
