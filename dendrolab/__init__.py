"""dendrolab: measurement pipeline for memristor neuromorphic devices.

Kept import-light on purpose: the CLI must start fast, so nothing heavy is imported here.
"""

__version__ = "0.1.0"
