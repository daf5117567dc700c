"""The agent's HTTP API (v1)."""
