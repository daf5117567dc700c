"""Tests of the Joulegate config flow: user, zeroconf, reauth, reconfigure, options."""

from __future__ import annotations

from collections.abc import Generator
from unittest.mock import AsyncMock, patch

import pytest
from aiohttp import web
from homeassistant.config_entries import SOURCE_USER, SOURCE_ZEROCONF
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.joulegate.config_flow import parse_address
from custom_components.joulegate.const import DEFAULT_PORT, DOMAIN
from demo.procs import free_port

from .common import DEVICE_ID, MockAgentFactory, form_defaults, zeroconf_info
from .fakes.agent import FakeAgent


@pytest.fixture
def mock_setup_entry() -> Generator[AsyncMock]:
    """Keep created entries from being set up: these tests are about the flow."""
    with patch("custom_components.joulegate.async_setup_entry", return_value=True) as mock_setup:
        yield mock_setup


def _user_input(agent: FakeAgent, **overrides: object) -> dict[str, object]:
    return {
        CONF_HOST: agent.host,
        CONF_PORT: agent.port,
        CONF_TOKEN: agent.token,
    } | overrides


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_flow(hass: HomeAssistant, mock_agent: FakeAgent) -> None:
    """The user enters host, port and token; the entry is created after a real connection."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}

    # Surrounding whitespace (a pasted token) is dropped; the port arrives as a float.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _user_input(
            mock_agent, **{CONF_HOST: f" {mock_agent.host} ", CONF_PORT: float(mock_agent.port)}
        )
        | {CONF_TOKEN: f"{mock_agent.token}\n"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "orin-rooftop"
    assert result["data"] == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: mock_agent.port,
        CONF_TOKEN: mock_agent.token,
    }
    assert result["result"].unique_id == DEVICE_ID


@pytest.mark.usefixtures("mock_setup_entry")
@pytest.mark.parametrize(
    ("breakage", "errors"),
    [
        ("token", {CONF_TOKEN: "invalid_auth"}),
        ("port", {"base": "cannot_connect"}),
        ("other_service", {"base": "not_joulegate_agent"}),
        ("no_health_route", {"base": "not_joulegate_agent"}),
        ("html", {"base": "not_joulegate_agent"}),
        ("server_error", {"base": "unknown"}),
    ],
)
async def test_user_flow_errors(
    hass: HomeAssistant, mock_agent: FakeAgent, breakage: str, errors: dict[str, str]
) -> None:
    """Each failure gives its own error, keeps what was typed, and the user can recover."""
    user_input = _user_input(mock_agent)
    if breakage == "token":
        user_input[CONF_TOKEN] = "wrong"
    elif breakage == "port":
        user_input[CONF_PORT] = free_port()
    elif breakage == "other_service":
        mock_agent.health = mock_agent.health | {"service": "some-other-daemon"}
    elif breakage == "no_health_route":
        mock_agent.health_override = lambda: web.Response(status=404, text="Not Found")
    elif breakage == "html":
        mock_agent.health_override = lambda: web.Response(
            text="<html>router</html>", content_type="text/html"
        )
    elif breakage == "server_error":
        mock_agent.fail_status = 500

    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    # What the user typed is offered again.
    assert form_defaults(result)[CONF_HOST] == mock_agent.host

    # Fix the problem, submit again: the entry is created.
    mock_agent.health = mock_agent.health | {"service": "joulegate-agent"}
    mock_agent.health_override = None
    mock_agent.fail_status = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _user_input(mock_agent)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("mock_setup_entry")
@pytest.mark.parametrize(
    "typed",
    [
        "http://127.0.0.1:{port}",
        "127.0.0.1:{port}",
        "http://127.0.0.1:{port}/",
        " HTTP://127.0.0.1:{port} ",
    ],
)
async def test_a_pasted_address_is_read_as_host_and_port(
    hass: HomeAssistant, mock_agent: FakeAgent, typed: str
) -> None:
    """A URL or host:port pasted into the host field: its port wins over the port field."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _user_input(
            mock_agent, **{CONF_HOST: typed.format(port=mock_agent.port), CONF_PORT: DEFAULT_PORT}
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_HOST] == "127.0.0.1"
    assert result["data"][CONF_PORT] == mock_agent.port


@pytest.mark.usefixtures("mock_setup_entry")
async def test_a_url_without_port_uses_the_port_field(
    hass: HomeAssistant, mock_agent: FakeAgent
) -> None:
    """`http://host` takes the port from the port field."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _user_input(mock_agent, **{CONF_HOST: "http://127.0.0.1"})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_HOST] == "127.0.0.1"
    assert result["data"][CONF_PORT] == mock_agent.port


@pytest.mark.usefixtures("mock_setup_entry")
@pytest.mark.parametrize(
    "typed",
    ["https://127.0.0.1", "http://127.0.0.1/api/v1", "two words", "http://", "host:port", "::1:x"],
)
async def test_an_address_that_cannot_be_an_agent_is_refused_before_connecting(
    hass: HomeAssistant, mock_agent: FakeAgent, typed: str
) -> None:
    """Not a host, host:port or http:// URL: the host field says so; nothing is contacted."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch("custom_components.joulegate.config_flow.JoulegateClient") as client:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _user_input(mock_agent, **{CONF_HOST: typed})
        )
    client.assert_not_called()
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_HOST: "invalid_host"}


@pytest.mark.parametrize(
    ("typed", "address"),
    [
        ("fe80::1", ("fe80::1", 8787)),
        ("http://[fe80::1]:9000", ("fe80::1", 9000)),
        ("[fe80::1]:9000", ("fe80::1", 9000)),
        ("orin.local.", ("orin.local.", 8787)),
    ],
)
def test_ipv6_addresses_and_dns_names_are_hosts(typed: str, address: tuple[str, int]) -> None:
    """A bare IPv6 address is a host (its colons are no port); brackets take a port."""
    assert parse_address(typed, DEFAULT_PORT) == address


@pytest.mark.usefixtures("mock_setup_entry")
async def test_an_unexpected_error_is_unknown_and_logged(
    hass: HomeAssistant, mock_agent: FakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug or a library surprise: the form says `unknown`, the log has the traceback."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch(
        "custom_components.joulegate.config_flow.JoulegateClient.health",
        side_effect=RuntimeError("surprise"),
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _user_input(mock_agent)
        )
    assert result["errors"] == {"base": "unknown"}
    assert "surprise" in caplog.text


@pytest.mark.usefixtures("mock_setup_entry")
async def test_reconfigure_reads_a_pasted_url(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """Reconfigure parses the host field the same way."""
    mock_config_entry.add_to_hass(hass)
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: f"http://127.0.0.1:{mock_agent.port}", CONF_PORT: DEFAULT_PORT},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert mock_config_entry.data[CONF_HOST] == "127.0.0.1"
    assert mock_config_entry.data[CONF_PORT] == mock_agent.port


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_flow_already_configured(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """The same agent (same device id) cannot be added twice."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _user_input(mock_agent)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_flow_several_agents(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_agent_factory: MockAgentFactory
) -> None:
    """Two agents (two device ids) give two entries."""
    second = await mock_agent_factory(device_id="0000000000000002", hostname="xavier-shed")
    for target in (mock_agent, second):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _user_input(target)
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
    entries = hass.config_entries.async_entries(DOMAIN)
    assert sorted((entry.title, entry.unique_id) for entry in entries) == [
        ("orin-rooftop", DEVICE_ID),
        ("xavier-shed", "0000000000000002"),
    ]


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_form_defaults(hass: HomeAssistant) -> None:
    """The form proposes the agent's default port."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert form_defaults(result) == {CONF_PORT: DEFAULT_PORT}


@pytest.mark.usefixtures("mock_setup_entry")
async def test_zeroconf_flow(hass: HomeAssistant, mock_agent: FakeAgent) -> None:
    """A discovered agent only needs its token."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(mock_agent.port)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {
        "name": "orin-rooftop",
        "host": "127.0.0.1",
        "port": str(mock_agent.port),
    }
    flow = hass.config_entries.flow.async_get(result["flow_id"])
    assert flow["context"]["title_placeholders"] == {"name": "orin-rooftop"}
    assert flow["context"]["unique_id"] == DEVICE_ID

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: mock_agent.token}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "orin-rooftop"
    assert result["data"] == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: mock_agent.port,
        CONF_TOKEN: mock_agent.token,
    }
    assert result["result"].unique_id == DEVICE_ID


@pytest.mark.usefixtures("mock_setup_entry")
async def test_zeroconf_without_device_id(hass: HomeAssistant, mock_agent: FakeAgent) -> None:
    """An announcement without the device id: the health route supplies it."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=zeroconf_info(mock_agent.port, properties={"hostname": "rig"}),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["description_placeholders"]["name"] == "rig"
    flow = hass.config_entries.flow.async_get(result["flow_id"])
    assert flow["context"]["unique_id"] == DEVICE_ID


@pytest.mark.usefixtures("mock_setup_entry")
@pytest.mark.parametrize(
    ("breakage", "reason"),
    [("port", "cannot_connect"), ("other_service", "not_joulegate_agent")],
)
async def test_zeroconf_without_device_id_abort(
    hass: HomeAssistant, mock_agent: FakeAgent, breakage: str, reason: str
) -> None:
    """Without an id in the announcement, a dead or foreign service aborts discovery."""
    port = mock_agent.port
    if breakage == "port":
        port = free_port()
    else:
        mock_agent.health = mock_agent.health | {"service": "printer"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(port, properties={})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason


@pytest.mark.usefixtures("mock_setup_entry")
async def test_zeroconf_confirm_cannot_connect(hass: HomeAssistant, mock_agent: FakeAgent) -> None:
    """The agent goes away between discovery and the token."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(mock_agent.port)
    )
    await mock_agent.stop()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "whatever"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


async def test_zeroconf_updates_known_agent(
    hass: HomeAssistant, mock_agent_factory: MockAgentFactory, init_integration: MockConfigEntry
) -> None:
    """A configured agent announced at a new address: the entry follows it."""
    moved = await mock_agent_factory()
    new_port = moved.port
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=zeroconf_info(new_port)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert init_integration.data[CONF_PORT] == new_port


@pytest.mark.usefixtures("mock_setup_entry")
async def test_reauth_flow(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """A rotated token: the user enters the new one."""
    mock_config_entry.add_to_hass(hass)
    mock_agent.token = "rotated-token"
    result = await mock_config_entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"] == {"name": "orin-rooftop"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "rotated-token"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert mock_config_entry.data[CONF_TOKEN] == "rotated-token"
    assert mock_config_entry.data[CONF_HOST] == mock_agent.host


@pytest.mark.usefixtures("mock_setup_entry")
async def test_reauth_flow_different_device(
    hass: HomeAssistant, mock_agent: FakeAgent, mock_config_entry: MockConfigEntry
) -> None:
    """Another agent now answers at the address: the token is not stored."""
    mock_config_entry.add_to_hass(hass)
    mock_agent.info = mock_agent.info | {"device_id": "ffffffffffffffff"}
    result = await mock_config_entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: mock_agent.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "different_device"


@pytest.mark.usefixtures("mock_setup_entry")
async def test_reconfigure_flow(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_agent_factory: MockAgentFactory,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The agent moved to another port: the entry is updated, the token kept."""
    mock_config_entry.add_to_hass(hass)
    moved = await mock_agent_factory()
    new_port = moved.port
    result = await mock_config_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    # Nothing listens there: an error, and the form keeps the new values.
    dead_port = free_port()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: dead_port}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: moved.port}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert mock_config_entry.data == {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: new_port,
        CONF_TOKEN: mock_agent.token,
    }


@pytest.mark.usefixtures("mock_setup_entry")
@pytest.mark.parametrize(
    ("breakage", "outcome"),
    [("other_device", "different_device"), ("other_token", "invalid_auth")],
)
async def test_reconfigure_flow_refused(
    hass: HomeAssistant,
    mock_agent: FakeAgent,
    mock_config_entry: MockConfigEntry,
    breakage: str,
    outcome: str,
) -> None:
    """Reconfigure only points the entry at the same agent, with its saved token."""
    mock_config_entry.add_to_hass(hass)
    if breakage == "other_device":
        mock_agent.info = mock_agent.info | {"device_id": "ffffffffffffffff"}
    else:
        mock_agent.token = "another"
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: mock_agent.host, CONF_PORT: mock_agent.port}
    )
    if outcome == "different_device":
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == outcome
    else:
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"base": outcome}


async def test_options_open_at_the_gate_and_offer_no_update_interval(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Polling is fixed (core policy): the options are the surplus gate's, nothing else."""
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "gate"
    assert {str(key) for key in result["data_schema"].schema} == {
        "grid_source",
        "battery_source",
    }
