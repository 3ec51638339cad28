"""Hypothesis settings profiles for the daemon's closed-loop property tests.

Registered here, selected explicitly by the tests that use them (never loaded globally, so the
other Hypothesis tests keep their own settings):

* ``invariant`` — ``make test``: a couple of short random fault sequences (each step runs the real
  daemon against the rig for a few seconds of real time);
* ``invariant-soak`` — ``make soak`` (``DEPOTCTL_SOAK=1``): many more and longer ones;
  ``DEPOTCTL_SOAK_EXAMPLES`` / ``DEPOTCTL_SOAK_STEPS`` change its size.

No shrinking: every step takes seconds of wall time and the world is not deterministic (real
sockets, real time), so a failure is reported with the sequence that found it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_CLOSED_LOOP = {
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
    "phases": (Phase.explicit, Phase.reuse, Phase.generate),
    "print_blob": True,
}

# three examples: Hypothesis makes the first the simplest (the first rule, repeated: crash and restart)
# and the second an empty sequence; the third is a random one
settings.register_profile("invariant", max_examples=3, stateful_step_count=6, **_CLOSED_LOOP)  # type: ignore[arg-type]
settings.register_profile(
    "invariant-soak",
    max_examples=int(os.environ.get("DEPOTCTL_SOAK_EXAMPLES", "30")),
    stateful_step_count=int(os.environ.get("DEPOTCTL_SOAK_STEPS", "15")),
    **_CLOSED_LOOP,  # type: ignore[arg-type]
)
