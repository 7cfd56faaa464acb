"""The simulated bench: device physics, simulated instruments and the ``@dendrosim`` pyvisa backend.

Nothing in here may be imported by ``instruments/`` or ``protocols/``: the simulator sits
below VISA.
"""
