"""The world at the integration's edges, faked: the agent's API on 127.0.0.1, the home's meters."""
