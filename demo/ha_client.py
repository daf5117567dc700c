"""A small client for the parts of Home Assistant's REST and websocket APIs the demo needs.

Onboarding (the owner user, no clicks), the login flow, tokens, config and options flows,
states, events and the entity registry. Everything is the API the frontend itself uses.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import aiohttp

JOULEGATE = "joulegate"


class HomeAssistantError(RuntimeError):
    """Home Assistant answered with an error status, or a flow did not go as expected."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_in: float


class HomeAssistantClient:
    """One Home Assistant at `base_url` (e.g. http://127.0.0.1:8123), as one user."""

    def __init__(
        self, base_url: str, session: aiohttp.ClientSession, token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.token = token
        self.client_id = f"{self.base_url}/"
        self._ids = itertools.count(1)

    # --- plain requests -------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        auth: bool = True,
        ok: tuple[int, ...] = (200, 201),
        timeout: float = 30.0,
    ) -> Any:
        async with self.session.request(
            method,
            f"{self.base_url}{path}",
            json=json,
            data=data,
            headers=self._headers() if auth else {},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
            try:
                body: Any = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            if response.status not in ok:
                raise HomeAssistantError(
                    f"{method} {path}: HTTP {response.status}: {text[:500]}",
                    response.status,
                    body,
                )
            return body

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.request("POST", path, json=json, **kwargs)

    # --- users and tokens -----------------------------------------------------------------

    async def onboarding_steps(self) -> dict[str, bool]:
        """{step: done}; empty once onboarding is over (the route is then gone)."""
        try:
            steps = await self.get("/api/onboarding", auth=False)
        except HomeAssistantError as err:
            if err.status == 404:
                return {}
            raise
        return {step["step"]: step["done"] for step in steps}

    async def onboard_owner(self, name: str, username: str, password: str) -> Tokens:
        """Create the owner through onboarding's user step, then log in with its auth code."""
        body = await self.post(
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": name,
                "username": username,
                "password": password,
                "language": "en",
            },
            auth=False,
        )
        return await self.exchange_code(body["auth_code"])

    async def login(self, username: str, password: str) -> Tokens:
        """Home Assistant's login flow, as its login page runs it."""
        flow = await self.post(
            "/auth/login_flow",
            {
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.client_id}?auth_callback=1",
            },
            auth=False,
        )
        result = await self.post(
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self.client_id, "username": username, "password": password},
            auth=False,
        )
        if result.get("type") != "create_entry":
            raise HomeAssistantError(f"login as {username!r} failed: {result}", body=result)
        return await self.exchange_code(result["result"])

    async def exchange_code(self, code: str) -> Tokens:
        body = await self.request(
            "POST",
            "/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
            auth=False,
        )
        self.token = body["access_token"]
        return Tokens(body["access_token"], body.get("refresh_token"), body["expires_in"])

    async def token_works(self) -> bool:
        try:
            await self.get("/api/")
        except HomeAssistantError as err:
            if err.status in (401, 403):
                return False
            raise
        return True

    async def create_long_lived_token(self, client_name: str, days: int = 3650) -> str:
        token: str = await self.ws(
            {"type": "auth/long_lived_access_token", "client_name": client_name, "lifespan": days}
        )
        return token

    # --- websocket ------------------------------------------------------------------------

    async def ws(self, command: dict[str, Any], timeout: float = 30.0) -> Any:
        """One websocket command on a fresh connection; returns its result."""
        url = self.base_url.replace("http", "ws", 1) + "/api/websocket"
        async with asyncio.timeout(timeout), self.session.ws_connect(url) as sock:
            hello = await sock.receive_json()
            if hello.get("type") != "auth_required":
                raise HomeAssistantError(f"unexpected websocket greeting: {hello}")
            await sock.send_json({"type": "auth", "access_token": self.token})
            auth = await sock.receive_json()
            if auth.get("type") != "auth_ok":
                raise HomeAssistantError(f"websocket authentication failed: {auth}")
            msg_id = next(self._ids)
            await sock.send_json({"id": msg_id, **command})
            while True:
                msg = await sock.receive_json()
                if msg.get("id") == msg_id and msg.get("type") == "result":
                    if not msg.get("success"):
                        raise HomeAssistantError(
                            f"websocket {command['type']}: {msg.get('error')}", body=msg
                        )
                    return msg.get("result")

    async def entity_registry(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self.ws({"type": "config/entity_registry/list"})
        return entries

    # --- states, events, services ---------------------------------------------------------

    async def states(self) -> dict[str, dict[str, Any]]:
        return {state["entity_id"]: state for state in await self.get("/api/states")}

    async def state(self, entity_id: str) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = await self.get(f"/api/states/{entity_id}")
        except HomeAssistantError as err:
            if err.status == 404:
                return None
            raise
        return state

    async def fire_event(self, event_type: str, data: dict[str, Any]) -> None:
        await self.post(f"/api/events/{event_type}", data)

    async def core_state(self) -> str:
        config = await self.get("/api/config")
        return str(config.get("state", "RUNNING"))

    # --- config entries and flows ---------------------------------------------------------

    async def config_entries(self, domain: str = JOULEGATE) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self.get(
            f"/api/config/config_entries/entry?domain={domain}"
        )
        return entries

    async def delete_config_entry(self, entry_id: str) -> None:
        await self.request("DELETE", f"/api/config/config_entries/entry/{entry_id}")

    async def config_flow(self, handler: str, *steps: dict[str, Any]) -> dict[str, Any]:
        """Start a config flow and answer its forms with `steps`, in order; returns the end."""
        result = await self.post(
            "/api/config/config_entries/flow", {"handler": handler, "show_advanced_options": True}
        )
        return await self._answer("/api/config/config_entries/flow", result, steps)

    async def options_flow(self, entry_id: str, *steps: dict[str, Any]) -> dict[str, Any]:
        """Open an entry's options and answer its forms (menus: {"next_step_id": ...})."""
        result = await self.post("/api/config/config_entries/options/flow", {"handler": entry_id})
        return await self._answer("/api/config/config_entries/options/flow", result, steps)

    async def options_form(self, entry_id: str) -> dict[str, Any]:
        """The first form (or menu) of an entry's options, and abort the flow again."""
        result: dict[str, Any] = await self.post(
            "/api/config/config_entries/options/flow", {"handler": entry_id}
        )
        await self.request("DELETE", f"/api/config/config_entries/options/flow/{result['flow_id']}")
        return result

    async def _answer(
        self, base: str, result: dict[str, Any], steps: tuple[dict[str, Any], ...]
    ) -> dict[str, Any]:
        for data in steps:
            if result.get("type") not in ("form", "menu"):
                raise HomeAssistantError(f"flow ended before all steps were answered: {result}")
            result = await self.post(f"{base}/{result['flow_id']}", data)
            if result.get("errors"):
                raise HomeAssistantError(
                    f"flow step {result.get('step_id')!r} refused {data}: {result['errors']}",
                    body=result,
                )
        return result
