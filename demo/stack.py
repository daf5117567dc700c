"""Steps shared by the demo and the end-to-end tests: the owner user, the Joulegate entry.

All through Home Assistant's own REST and websocket APIs, as the frontend does them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from demo.ha_client import JOULEGATE, HomeAssistantClient, HomeAssistantError
from demo.procs import Service, ServiceError, http_status

T = TypeVar("T")

OWNER_NAME = "Demo"
RECOVERY_MODE = "Activating recovery mode"
OWNER_USERNAME = "demo"


@dataclass(slots=True)
class Credentials:
    username: str
    password: str
    token: str | None = None  # a long-lived access token of that user

    @classmethod
    def load(cls, path: Path) -> Credentials | None:
        try:
            data = json.loads(path.read_text())
            return cls(data["username"], data["password"], data.get("token"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
        tmp.replace(path)


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    service: Service | None = None,
) -> T:
    """Await `check()` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if service is not None:
            service.check_running()
        try:
            result = await check()
            if result is not None and result is not False:
                return result
        except (HomeAssistantError, aiohttp.ClientError, OSError, TimeoutError) as err:
            last_error = err
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"{what}: not within {timeout:.0f} s{detail}")
        await asyncio.sleep(interval)


async def wait_http_async(
    url: str, *, timeout: float, service: Service | None = None, ok: tuple[int, ...] = (200,)
) -> int:
    """Poll a URL (in a thread, so that Ctrl-C stays responsive) until it answers one of `ok`."""

    async def check() -> int | None:
        status = await asyncio.to_thread(http_status, url)
        return status if status in ok else None

    try:
        return await wait_until(check, timeout=timeout, what=url, service=service)
    except TimeoutError as err:
        if service is not None:
            raise ServiceError(f"{err}\nThe end of {service.log_path}:\n{service.tail()}") from err
        raise


async def wait_for_home_assistant(base_url: str, service: Service, timeout: float) -> None:
    """Until Home Assistant's HTTP server answers (its web app manifest needs no login, and
    asking for it does not count as a failed login, as an anonymous /api/ would).

    A configuration Home Assistant cannot load sends it into recovery mode, where it ignores the
    configuration (and listens on 0.0.0.0:8123): that stops it at once, with the reason.
    """

    async def up() -> int | None:
        log = await asyncio.to_thread(service.tail, 400)
        if RECOVERY_MODE in log:
            reasons = [line for line in log.splitlines() if "ERROR" in line][-8:]
            service.stop()
            raise ServiceError(
                f"Home Assistant could not load its configuration and started in recovery "
                f"mode; its errors ({service.log_path}):\n" + "\n".join(reasons)
            )
        status = await asyncio.to_thread(http_status, f"{base_url}/manifest.json")
        return status if status == 200 else None

    try:
        await wait_until(up, timeout=timeout, what=f"Home Assistant at {base_url}", service=service)
    except TimeoutError as err:
        raise ServiceError(f"{err}\nThe end of {service.log_path}:\n{service.tail()}") from err


async def ensure_owner(
    ha: HomeAssistantClient, credentials_path: Path, *, token_name: str
) -> Credentials:
    """Log in as the demo's owner, creating it (onboarding) on a fresh config; sets ha.token."""
    saved = Credentials.load(credentials_path)
    steps = await ha.onboarding_steps()
    if steps and not steps.get("user", True):
        password = saved.password if saved else secrets.token_urlsafe(12)
        await ha.onboard_owner(OWNER_NAME, OWNER_USERNAME, password)
        creds = Credentials(OWNER_USERNAME, password)
    elif saved is None:
        raise RuntimeError(
            f"this Home Assistant already has its users, but {credentials_path} is missing: "
            "delete the demo's Home Assistant folder to start over"
        )
    else:
        creds = saved
        if creds.token:
            ha.token = creds.token
            if await ha.token_works():
                return creds
        await ha.login(creds.username, creds.password)
    creds.token = await ha.create_long_lived_token(token_name)
    ha.token = creds.token
    creds.save(credentials_path)
    return creds


async def wait_running(ha: HomeAssistantClient, timeout: float = 120.0) -> None:
    async def running() -> bool:
        return await ha.core_state() == "RUNNING"

    await wait_until(running, timeout=timeout, what="Home Assistant to finish starting")


async def wait_entry_loaded(
    ha: HomeAssistantClient, entry_id: str, *, timeout: float = 60.0
) -> dict[str, Any]:
    """Until the entry is loaded (after it was added, or reloaded by an options change)."""

    async def loaded() -> dict[str, Any] | None:
        for entry in await ha.config_entries(JOULEGATE):
            if entry["entry_id"] == entry_id and entry["state"] == "loaded":
                return entry
        return None

    return await wait_until(loaded, timeout=timeout, what="the Joulegate entry to load")


async def joulegate_entities(ha: HomeAssistantClient, entry_id: str) -> dict[str, str]:
    """{unique-id key (board_power, gate, ...): entity_id} for the entry's entities."""
    entities: dict[str, str] = {}
    for item in await ha.entity_registry():
        if item.get("config_entry_id") != entry_id:
            continue
        unique_id = str(item.get("unique_id", ""))
        key = unique_id.split("_", 1)[1] if "_" in unique_id else unique_id
        entities[key] = item["entity_id"]
    return entities


def entity_prefix(entities: dict[str, str]) -> str:
    """The object-id prefix of the agent's entities: `sensor.orin_rooftop_board_power` ->
    `orin_rooftop_`."""
    board = entities.get("board_power")
    if board is None:
        raise HomeAssistantError(f"the Joulegate entry has no board power sensor: {entities}")
    return board.split(".", 1)[1].removesuffix("board_power")
