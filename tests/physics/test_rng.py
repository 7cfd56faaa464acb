"""Counter-based random streams: log-normal factors keep the draw shape when sigma is 0."""

from __future__ import annotations

import numpy as np

from sim_backend.physics import rng


def test_lognormal_sigma_zero_has_the_shape_of_the_draws() -> None:
    keys = rng.device_keys(1, 0, 0, np.arange(4))
    events = np.arange(3)[:, None]
    drawn = rng.lognormal(keys, "s", 0.1, events)
    flat = rng.lognormal(keys, "s", 0.0, events)
    assert drawn.shape == flat.shape == (3, 4)
    assert np.all(flat == 1.0)
    # scalar event: one factor per key, as with sigma > 0
    assert rng.lognormal(keys, "s", 0.0, 5).shape == rng.lognormal(keys, "s", 0.2, 5).shape
