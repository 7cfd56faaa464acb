"""Shim so that pyvisa finds the simulated bench as the ``@dendrosim`` library."""
from sim_backend.visa import DendroSimVisaLibrary as WRAPPER_CLASS  # noqa: F401
