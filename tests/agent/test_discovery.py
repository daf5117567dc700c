"""What the agent announces over mDNS (nothing is sent in tests: only the announcement is built)."""

from __future__ import annotations

from joulegate_agent.api.mdns import SERVICE_TYPE, advertised_addresses, service_info


def test_loopback_agent_is_not_advertised() -> None:
    assert advertised_addresses("127.0.0.1") == []


def test_agent_bound_to_one_address_advertises_that_address() -> None:
    assert advertised_addresses("192.0.2.10") == ["192.0.2.10"]


def test_announcement_carries_the_device_id_and_api_path() -> None:
    info = service_info("3f2a9c0d1e7b4a51", "orin rooftop", 8787, ["192.0.2.10"])
    assert info.type == SERVICE_TYPE == "_joulegate._tcp.local."
    assert info.name.startswith("orin-rooftop-3f2a9c.")
    assert info.port == 8787
    assert info.properties[b"device_id"] == b"3f2a9c0d1e7b4a51"
    assert info.properties[b"path"] == b"/api/v1"
    assert info.parsed_addresses() == ["192.0.2.10"]
