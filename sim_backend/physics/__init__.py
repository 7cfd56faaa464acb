"""Device physics: pure numpy on device batches, no I/O, no clock, no unkeyed randomness.

Dendrite (volatile TaOx), soma (NbOx threshold switch), dendrite-soma unit, synapse (1T1R RRAM),
wafer variation. Every state update is exact for piecewise-constant voltage segments.
"""
