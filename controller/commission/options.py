"""Every timing and threshold of a commissioning run (:class:`CommissionOptions`), with the
reasons for the defaults. Tests shrink the timings; a site keeps the defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields

from controller.chargers.profiles import START_MARGIN_S

IEC_61851_REACTION_S = 5.0
"""IEC 61851-1: an EV follows a changed PWM duty cycle (a new limit) within 5 s — also the
reaction the controller allows a charger by default: a measured reaction above it is what the
report's ``reaction_s`` line is for."""


@dataclass(frozen=True)
class CommissionOptions:
    """Timings [s] and thresholds of one run (A for AC chargers, kW for DC)."""

    sample_s: int = 1
    """Meter sampling interval asked of the charger for the run (OCPP takes whole seconds); the
    site's ``ocpp.meter_sample_s`` is asked for again at the end."""
    poll_s: float = 0.1
    """How often the run looks at what the charger reported while it waits."""
    clock_samples: int = 3
    """Timestamps the clock offset should rest on before it is judged ..."""
    clock_wait_s: float = 20.0
    """... waiting at most this long for them (one timestamp is enough when no more come)."""
    clock_limit_s: float = START_MARGIN_S
    """``clock`` fails when the charger's clock is further off than this. The controller measures
    the offset and builds every profile on the charger's clock, so a steady offset does no harm
    while it is measured; but a clock this far off is one nobody sets (no NTP), and a clock that
    is later corrected *backwards* by more than the profiles' start margin
    (:data:`controller.chargers.profiles.START_MARGIN_S`, 30 s) puts a control profile's start in
    the charger's future until the next timestamp re-measures it — the charger then runs on its
    fail-safe (safe, but out of control) and its meter values are misdated. Hence that margin."""
    probe_s: float = 20.0
    """Validity of the A and W test profiles (``current_profile``, ``power_profile``)."""
    composite_s: int = 60
    """Shortest window asked of GetCompositeSchedule (longer while control profiles sent before
    the run may still be in force: the fail-safe is what is left after them)."""
    ev_wait_s: float = 30.0
    """How long to wait for a transaction on the connector (and then for a draw) before the EV
    checks are skipped as "no EV charging"."""
    reaction_limit_s: float | None = None
    """The reaction expected of an EV: the least allowance a draw gets after a limit changed
    (``ignores_limit``, ``profile_expiry``; a slower EV's measured reaction lengthens it);
    ``None``: IEC 61851-1's 5 s plus one meter interval (the draw is seen at most that late)."""
    follow_timeout_s: float | None = None
    """How long one step waits for the draw to follow before it counts as not followed
    (``follows_limit`` fails); ``None``: three times the reaction limit."""
    follow_steps: int = 4
    """Steps of ``follows_limit`` (down, up, down, up …); the measured reaction is the slowest of
    the steps down."""
    tolerance_a: float = 1.0
    """A draw within this of a limit follows it [A] (meters and EVs are not exact)."""
    tolerance_kw: float = 1.0
    """The same for DC chargers [kW]."""
    min_hold_s: float = 10.0
    """``min_current``: the EV must keep drawing about the minimum this long."""
    resume_limit_s: float = 30.0
    """``resume_after_zero``: the EV must draw again this soon after a pause at 0 A ends. Some
    EVs wait a while before they resume (or sleep); a charger that never lets them is what this
    finds."""
    expiry_s: float = 10.0
    """``profile_expiry``: how long the expiring profile's schedule lasts after the EV had time to
    follow it (the run's reaction allowance: the reaction limit, or a slower EV's measured reaction
    plus a meter interval); its ``validTo`` lies two allowances later, so a charger that holds the
    last period until ``validTo`` shows it (the draw falls within one allowance of ``validTo``,
    not of the schedule's end), and one that holds it past ``validTo`` too."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"commission option {f.name} must be a number > 0, not {value!r}")
        for name in ("sample_s", "clock_samples", "composite_s", "follow_steps"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"commission option {name} must be a whole number, not {getattr(self, name)!r}")

    @property
    def reaction_bound_s(self) -> float:
        """The reaction limit in force [s]."""
        if self.reaction_limit_s is not None:
            return self.reaction_limit_s
        return IEC_61851_REACTION_S + self.sample_s

    @property
    def follow_wait_s(self) -> float:
        """How long one step waits [s]."""
        return self.follow_timeout_s if self.follow_timeout_s is not None else 3.0 * self.reaction_bound_s

    @property
    def step_profile_s(self) -> float:
        """Validity of each EV step's profile [s]: longer than anything waits under one profile
        (a step, the hold at the minimum, the resume), so none ends mid-step."""
        longest = max(self.follow_wait_s + self.min_hold_s, self.follow_wait_s + self.resume_limit_s)
        return longest + self.reaction_bound_s + 10.0
