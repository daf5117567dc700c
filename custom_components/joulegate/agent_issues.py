"""Repairs about the agent itself: another agent at the entry's address, a ledger it cannot save.

Unlike the gate's input issues, these describe the agent, so their texts name the agent and its
figures (device ids, row counts, its own error message) and nothing Home Assistant would have to
translate.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .models import Info, Storage

WRONG_DEVICE = "wrong_device"
STORAGE = "storage"


def _issue_id(entry_id: str, kind: str) -> str:
    return f"{entry_id}_{kind}"


def entry_url(entry_id: str) -> str:
    """The entry on the integration's page, where its menu offers Reconfigure."""
    return f"/config/integrations/integration/{DOMAIN}#config_entry={entry_id}"


def raise_wrong_device(hass: HomeAssistant, entry: ConfigEntry[Any], found: Info) -> None:
    """Another agent answers at the entry's address (a DHCP lease moved to another box).

    Setup keeps retrying, since zeroconf follows the right agent to its new address and reloads
    only entries that are loaded or retrying; the issue tells the user meanwhile, and links to
    the entry, whose Reconfigure points it at the new address by hand.
    """
    ir.async_create_issue(
        hass,
        DOMAIN,
        _issue_id(entry.entry_id, WRONG_DEVICE),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=WRONG_DEVICE,
        translation_placeholders={
            "agent": entry.title,
            "address": f"{entry.data[CONF_HOST]}:{entry.data[CONF_PORT]}",
            "expected": str(entry.unique_id),
            "found": found.device_id,
            "found_name": found.hostname,
            "entry_url": entry_url(entry.entry_id),
        },
    )


def clear_wrong_device(hass: HomeAssistant, entry_id: str) -> None:
    """The right agent answers again."""
    ir.async_delete_issue(hass, DOMAIN, _issue_id(entry_id, WRONG_DEVICE))


def update_storage_issue(
    hass: HomeAssistant, entry: ConfigEntry[Any], storage: Storage | None
) -> None:
    """Raise the storage issue while the agent reports its ledger unhealthy, clear it after.

    An agent too old to report its storage (`None`) raises nothing.
    """
    issue_id = _issue_id(entry.entry_id, STORAGE)
    if storage is None or storage.healthy:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    placeholders = {
        "agent": entry.title,
        "pending_rows": str(storage.pending_rows),
        "spool_capacity": str(storage.spool_capacity),
    }
    if storage.error:
        placeholders["error"] = storage.error
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="storage_failing" if storage.error else "storage_failing_no_detail",
        translation_placeholders=placeholders,
    )


def clear_storage_issue(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is unloaded: nothing follows the agent's storage any more."""
    ir.async_delete_issue(hass, DOMAIN, _issue_id(entry_id, STORAGE))


def delete_agent_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Remove every agent issue of an entry (it is removed)."""
    clear_wrong_device(hass, entry_id)
    clear_storage_issue(hass, entry_id)
