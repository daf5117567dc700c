"""mDNS advertisement of `_joulegate._tcp.local.`, so Home Assistant finds the agent by itself."""

from __future__ import annotations

import ipaddress
import logging
import socket

import ifaddr
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from joulegate_agent import __version__

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_joulegate._tcp.local."


def lan_addresses() -> list[str]:
    """IPv4 addresses of this box's interfaces, loopback and link-local left out."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue
            address = ipaddress.IPv4Address(ip.ip)
            if not (address.is_loopback or address.is_link_local):
                found.append(str(address))
    return found


def advertised_addresses(host: str) -> list[str]:
    """What to announce for a bind address: every LAN address for 0.0.0.0, else the address itself.

    A loopback bind is announced nowhere: nobody on the LAN could reach it.
    """
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - comparing, not binding
        return lan_addresses()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []
    return [] if address.is_loopback else [str(address)]


def service_info(
    device_id: str, hostname: str, port: int, addresses: list[str]
) -> AsyncServiceInfo:
    label = "".join(c if c.isalnum() or c == "-" else "-" for c in hostname)[:40] or "joulegate"
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{label}-{device_id[:6]}.{SERVICE_TYPE}",
        port=port,
        addresses=[socket.inet_aton(a) for a in addresses],
        properties={
            "device_id": device_id,
            "api_version": "1",
            "version": __version__,
            "path": "/api/v1",
        },
        server=f"{label}.local.",
    )


class Advertiser:
    def __init__(self, device_id: str, host: str, port: int) -> None:
        self._info = service_info(device_id, socket.gethostname(), port, advertised_addresses(host))
        self._zeroconf: AsyncZeroconf | None = None

    @property
    def addresses(self) -> list[str]:
        return self._info.parsed_addresses()

    async def start(self) -> None:
        if not self.addresses:
            _LOGGER.info("Not advertising over mDNS: the agent is not reachable from the LAN")
            return
        self._zeroconf = AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=self.addresses)
        await self._zeroconf.async_register_service(self._info)
        _LOGGER.info("Advertising %s on %s", self._info.name, ", ".join(self.addresses))

    async def stop(self) -> None:
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_service(self._info)
            await self._zeroconf.async_close()
            self._zeroconf = None
