"""The Joulegate demo: the whole system on one machine, for real.

`./scripts/demo` runs `python -m demo`, which starts the simulated LLM server, the agent in front
of it, a real Home Assistant with the integration configured against the agent, a simulated sunny
day (PV, house load, battery, grid) that drives Home Assistant's sensors, and a stream of inference
requests. The end-to-end tests in `tests/e2e/` reuse these modules.

This package is the demo's helper code only: it is not part of the agent (`joulegate_agent`) nor
of the integration (`custom_components/joulegate`).
"""
