"""Commissioning timings for the tests that run it inside the daemon against the rig (the EVs react
in 0.3 s, the chargers report every second): one set, so the API, daemon and CLI tests agree."""

from __future__ import annotations

from controller.commission.options import CommissionOptions

RIG_OPTIONS = CommissionOptions(
    clock_samples=1,
    clock_wait_s=3.0,
    ev_wait_s=5.0,
    reaction_limit_s=2.0,
    follow_steps=2,
    min_hold_s=1.0,
    resume_limit_s=4.0,
    expiry_s=1.0,
    probe_s=5.0,
)
EV_REACTION_S = 0.3
