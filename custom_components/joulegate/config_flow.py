"""Config flow for the Joulegate integration."""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import ip_address
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from yarl import URL

from .client import JoulegateClient
from .const import DEFAULT_PORT, DOMAIN, LOGGER
from .exceptions import (
    JoulegateAuthenticationError,
    JoulegateConnectionError,
    JoulegateError,
    JoulegateNotAgentError,
)
from .models import Info
from .options_flow import JoulegateOptionsFlow

ZEROCONF_SUFFIX = "._joulegate._tcp.local."

HOST_SELECTOR = TextSelector(TextSelectorConfig(autocomplete="off"))
PORT_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)
TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


# A DNS name: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?", re.IGNORECASE)


def parse_address(typed: str, port: int) -> tuple[str, int] | None:
    """Host and port from what was typed in the host field, or None if it cannot be an agent.

    People paste what their browser shows: `192.168.1.20`, `192.168.1.20:8787` or
    `http://192.168.1.20:8787/`. A port in the host field wins over the port field. The agent
    serves plain http at its root, so another scheme or a path is refused rather than dropped.
    """
    text = typed.strip()
    try:
        return str(ip_address(text)), port  # a bare IPv6 address has colons of its own
    except ValueError:
        pass
    if "://" not in text:
        text = f"http://{text}"
    try:
        url = URL(text)
    except ValueError:
        return None
    host = url.host
    if (
        url.scheme.lower() != "http"
        or not host
        or url.user is not None
        or url.path not in ("", "/")
        or url.query_string
        or url.fragment
    ):
        return None
    try:
        host = str(ip_address(host))
    except ValueError:
        if not _HOSTNAME.fullmatch(host):
            return None
    return host, url.explicit_port or port


def _host_port_schema(host: str | None, port: int) -> dict[vol.Marker, Any]:
    return {
        vol.Required(CONF_HOST, default=host or vol.UNDEFINED): HOST_SELECTOR,
        vol.Required(CONF_PORT, default=port): PORT_SELECTOR,
    }


class JoulegateConfigFlow(ConfigFlow, domain=DOMAIN):
    """Adds a Joulegate agent: by hand, or when zeroconf finds one."""

    VERSION = 1
    MINOR_VERSION = 2  # 1.2: the polling interval option is gone

    _discovered_host: str
    _discovered_port: int
    _discovered_name: str

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry[Any]) -> JoulegateOptionsFlow:
        """Return the options flow."""
        return JoulegateOptionsFlow()

    async def _async_validate(
        self, host: str, port: int, token: str, errors: dict[str, str]
    ) -> Info | None:
        """Connect to the agent and check the token; fill `errors` if that fails."""
        client = JoulegateClient(host, port, token, async_get_clientsession(self.hass))
        try:
            await client.health()
            return await client.info()
        except JoulegateAuthenticationError:
            errors[CONF_TOKEN] = "invalid_auth"
        except JoulegateNotAgentError:
            errors["base"] = "not_joulegate_agent"
        except JoulegateConnectionError:
            errors["base"] = "cannot_connect"
        except Exception:  # an unreadable answer (JoulegateResponseError) or a bug
            LOGGER.exception("Unexpected error checking the Joulegate agent at %s:%s", host, port)
            errors["base"] = "unknown"
        return None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the agent's address and token."""
        errors: dict[str, str] = {}
        if user_input is not None:
            token = user_input[CONF_TOKEN].strip()
            address = parse_address(user_input[CONF_HOST], int(user_input[CONF_PORT]))
            if address is None:
                errors[CONF_HOST] = "invalid_host"
            elif info := await self._async_validate(*address, token, errors):
                host, port = address
                await self.async_set_unique_id(info.device_id, raise_on_progress=False)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=info.hostname,
                    data={CONF_HOST: host, CONF_PORT: port, CONF_TOKEN: token},
                )
        else:
            user_input = {}

        return self.async_show_form(
            step_id="user",
            data_schema=vol.Schema(
                {
                    **_host_port_schema(
                        user_input.get(CONF_HOST), int(user_input.get(CONF_PORT, DEFAULT_PORT))
                    ),
                    vol.Required(CONF_TOKEN): TOKEN_SELECTOR,
                }
            ),
            errors=errors,
        )

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """Handle an agent announced over mDNS as `_joulegate._tcp`."""
        host = discovery_info.host
        port = discovery_info.port or DEFAULT_PORT
        properties = discovery_info.properties
        device_id = properties.get("device_id") or properties.get("id")
        if not device_id:
            # Older announcements lack the id: the health route has it, no token needed.
            client = JoulegateClient(host, port, None, async_get_clientsession(self.hass))
            try:
                device_id = (await client.health()).device_id
            except JoulegateNotAgentError:
                return self.async_abort(reason="not_joulegate_agent")
            except JoulegateError:
                return self.async_abort(reason="cannot_connect")

        await self.async_set_unique_id(str(device_id))
        # A known agent with a new address: follow it (and reload its entry).
        self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port})

        self._discovered_host = host
        self._discovered_port = port
        self._discovered_name = str(
            properties.get("hostname") or discovery_info.name.removesuffix(ZEROCONF_SUFFIX)
        )
        self.context["title_placeholders"] = {"name": self._discovered_name}
        self.context["configuration_url"] = f"http://{host}:{port}"
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the token of a discovered agent."""
        errors: dict[str, str] = {}
        host, port = self._discovered_host, self._discovered_port
        if user_input is not None:
            token = user_input[CONF_TOKEN].strip()
            if info := await self._async_validate(host, port, token, errors):
                await self.async_set_unique_id(info.device_id, raise_on_progress=False)
                self._abort_if_unique_id_configured(updates={CONF_HOST: host, CONF_PORT: port})
                return self.async_create_entry(
                    title=info.hostname,
                    data={CONF_HOST: host, CONF_PORT: port, CONF_TOKEN: token},
                )

        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            description_placeholders={
                "name": self._discovered_name,
                "host": host,
                "port": str(port),
            },
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The agent refused the token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the agent's current token."""
        errors: dict[str, str] = {}
        entry = self._get_reauth_entry()
        if user_input is not None:
            token = user_input[CONF_TOKEN].strip()
            if info := await self._async_validate(
                entry.data[CONF_HOST], entry.data[CONF_PORT], token, errors
            ):
                await self.async_set_unique_id(info.device_id)
                self._abort_if_unique_id_mismatch(reason="different_device")
                return self.async_update_reload_and_abort(entry, data_updates={CONF_TOKEN: token})

        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            description_placeholders={"name": entry.title},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Point an entry at the agent's new address."""
        errors: dict[str, str] = {}
        entry = self._get_reconfigure_entry()
        host: str = entry.data[CONF_HOST]
        port: int = entry.data[CONF_PORT]
        if user_input is not None:
            host = user_input[CONF_HOST].strip()
            port = int(user_input[CONF_PORT])
            info = None
            if (address := parse_address(host, port)) is None:
                errors[CONF_HOST] = "invalid_host"
            else:
                host, port = address
                info = await self._async_validate(host, port, entry.data[CONF_TOKEN], errors)
            if CONF_TOKEN in errors:
                # No token field on this form: the agent there has another token.
                errors = {"base": "invalid_auth"}
            if info:
                await self.async_set_unique_id(info.device_id)
                self._abort_if_unique_id_mismatch(reason="different_device")
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_HOST: host, CONF_PORT: port}
                )

        return self.async_show_form(
            step_id="reconfigure",
            data_schema=vol.Schema(_host_port_schema(host, port)),
            description_placeholders={"name": entry.title},
            errors=errors,
        )
