"""The metering proxy: `routes` relays requests to the upstream LLM server, `dialects` reads
token counts from the responses as they pass."""
