"""Joulegate edge agent: meters the energy of every inference on the box it runs on."""

__version__ = "0.1.0"
