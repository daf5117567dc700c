"""A box without hardware: board.py is the simulated Orin Nano power source, llm.py the
simulated LLM server (`joulegate-agent simulate-llm`)."""
