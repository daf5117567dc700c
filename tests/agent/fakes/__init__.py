"""Fakes of the world at the agent's edges: LLM servers (llm_answers.py, upstream.py), sysfs
trees shaped like real boxes (sysfs_trees.py), a stepping energy counter (counter_world.py) and
board-power traces with known integrals (power_traces.py)."""
