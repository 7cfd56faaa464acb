"""VISA instrument drivers: one class per capability with per-model command tables.

Drivers know nothing about simulation: real and simulated instruments differ only in the VISA
library string.
"""
