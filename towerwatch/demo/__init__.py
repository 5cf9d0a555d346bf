"""Wiring the whole system together on one machine: the demo and its tests."""
