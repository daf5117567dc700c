"""Tests of the Joulegate Home Assistant integration."""
