"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from aiohttp import web

from joulegate_agent.agent import Agent

AGENT_KEY = web.AppKey("agent", Agent)
