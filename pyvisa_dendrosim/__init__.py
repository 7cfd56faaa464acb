"""Shim so that pyvisa finds the simulated bench as the ``@dendrosim`` library."""
