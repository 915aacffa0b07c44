"""Hypothesis profiles for the hostile-input suite.

``ci`` (the default, used by ``make test``) keeps every property to a couple of hundred examples;
``HYPOTHESIS_PROFILE=soak`` runs many more. No deadlines: these tests assert behaviour, never speed.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# ci is derandomized so a landing run is reproducible; soak explores new random examples every time.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "soak", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
