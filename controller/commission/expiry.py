"""``profile_expiry``: does the charger fall back to its fail-safe when a control profile ends?

A control profile at a limit clearly above the fail-safe one (≤ the headroom, ≤ what the EV
draws) is sent with a schedule lasting :attr:`CommissionOptions.expiry_s` once the EV has had time
to follow it, and a ``validTo`` two reaction allowances after the schedule's end. What the charger
does then is one of three:

* the draw falls to the fail-safe limit within one allowance of the schedule's end: it falls back
  at the end of the schedule (OCPP's reading) — passed;
* it holds the last period after the schedule's end but falls back by ``validTo`` (plus one
  allowance): it holds *until validTo* — firmwares differ here (docs/safety.md, hazard 10) —
  failed, quirk ``holds_last_limit``: the controller's own profiles carry ``validTo`` = their end
  and are budgeted until then, so this much is covered already, but a charger that does not fall
  back where the schedule ends is one whose end of profile we do not trust: it is budgeted as
  holding its last limit until a lower one is accepted (docs/safety.md, hazard 23) — the
  conservative reading, and what an electrician sees as the failure it is;
* it still draws above the fail-safe one allowance after ``validTo``: it holds the last limit
  *past validTo* (until a newer profile replaces it) — failed, quirk ``holds_last_limit``.

Waiting past ``validTo`` is what tells the last two apart (the detail says which; the measured
value is how long it held after the schedule's end, or what it still drew). The profile ends by itself on a
charger that keeps to ``validTo``; one that does not is held at its maximum for the run anyway.
A check not made for want of headroom or of an EV drawing enough makes the run incomplete.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from controller.chargers.profiles import NoSafeProfile
from controller.commission.context import RunContext, describe, fmt
from controller.commission.report import Check

NAME = "profile_expiry"


def _not_tested(ctx: RunContext, why: str) -> Check:
    return Check(NAME, None, None, f"Not tested: {ctx.not_tested(NAME, why)}.")


async def profile_expiry(ctx: RunContext) -> Check:
    """The check (see the module docstring); the quirk ``holds_last_limit`` when it fails."""
    o, tol = ctx.options, ctx.tolerance
    if ctx.ev_stuck:
        return Check(NAME, None, None, "Not tested: the EV stopped drawing (resume_after_zero).")
    fs = ctx.failsafe_limit
    headroom = ctx.headroom()
    limit = min(headroom, ctx.ev_draw if ctx.ev_draw is not None else headroom)
    if headroom < fs + 2 * tol:
        why = f"the headroom ({headroom:.1f} {ctx.unit}) allows no limit clearly above the fail-safe"
        return _not_tested(ctx, f"{why} {fs:g} {ctx.unit}")
    if limit < fs + 2 * tol:
        why = f"the EV draws at most {limit:.1f} {ctx.unit}, not clearly above the fail-safe {fs:g} {ctx.unit}"
        return _not_tested(ctx, why)
    bound = ctx.allowance_s  # the EV's own reaction (follows_limit) may be slower than the limit
    hold_s = 2 * bound
    try:  # the schedule lasts expiry_s once the EV has had time to come up to the limit
        spec = ctx.build(limit, o.expiry_s + bound)
    except NoSafeProfile as exc:
        return _not_tested(ctx, str(exc))
    end = spec.expires_at
    offset = timedelta(seconds=spec.clock_offset_s or 0.0)
    if spec.valid_to is not None:  # a charger that holds the last period until validTo shows it
        spec = replace(spec, valid_to=spec.valid_to + timedelta(seconds=hold_s))
        if spec.kind == "Absolute" and spec.charger_end is not None:  # now the (whole-second) duration's end
            end = spec.charger_end - offset
        spec = replace(spec, expires_at=end, expires_not_before=end)
    sent = await ctx.offer(spec)
    if isinstance(sent, str):
        return _not_tested(ctx, sent)
    if end is None:
        end = sent.sent_at + timedelta(seconds=o.expiry_s + bound)
    valid_to = spec.valid_to - offset if spec.valid_to is not None else None  # our clock
    up = await ctx.wait_sample(lambda s: s.value >= limit - tol, sent.sent_at, o.follow_wait_s)
    if up is None:
        return _not_tested(ctx, f"the draw did not come up to {limit:.1f} {ctx.unit}")
    await ctx.wait_until(lambda: ctx.now() >= end, max(0.0, (end - ctx.now()).total_seconds()) + 1.0)
    last = max(end, valid_to if valid_to is not None else end) + timedelta(seconds=bound)
    fell = await ctx.wait_sample(lambda s: s.value <= fs + tol, end, max(0.0, (last - ctx.now()).total_seconds()))
    sent_text = f"Sent {describe(spec)}, its schedule ending after {o.expiry_s + bound:g} s"
    sent_text += f" (validTo {hold_s:g} s later)"
    held = max((s.value for s in ctx.watch.between(end, fell.at if fell is not None else last)), default=None)
    if fell is not None:
        took = (fell.at - end).total_seconds()
        if took <= bound:
            ctx.disproved.add("holds_last_limit")
            return Check(
                NAME, True, round(took, 2), f"{sent_text}: {fell.value:.1f} {ctx.unit} {took:.1f} s after its end."
            )
        to_valid = (fell.at - valid_to).total_seconds() if valid_to is not None else took
        ctx.found.add("holds_last_limit")
        detail = (
            f"{sent_text}: it held {fmt(held, ctx.unit)} after the schedule's end and fell to"
            f" {fell.value:.1f} {ctx.unit} only {took:.1f} s after it ({to_valid:+.1f} s from validTo): the charger"
            " holds the last period until validTo instead of falling back where the schedule ends. The controller's"
            " own profiles end at validTo, so this much is covered; quirk holds_last_limit budgets it, to be safe,"
            " as holding its last limit until a newer profile replaces it."
        )
        return Check(NAME, False, round(took, 2), detail)
    ctx.found.add("holds_last_limit")
    detail = (
        f"{sent_text}: still {fmt(held, ctx.unit)} {bound:g} s after its validTo, above the fail-safe"
        f" {fs:g} {ctx.unit}: the charger holds its last limit past validTo."
        " Quirk holds_last_limit: the charger is budgeted as holding its last limit until a newer profile replaces it."
    )
    return Check(NAME, False, round(held, 1) if held is not None else None, detail)
