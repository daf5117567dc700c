"""The `joulegate-agent` command line: main.py parses it and runs a command; inference.py and
power.py add their commands' flags; doctor.py checks the box; measure.py meters one command."""
