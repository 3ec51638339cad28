"""``profile_expiry``: does the charger fall back to its fail-safe when a control profile ends?

A control profile at a limit clearly above the fail-safe one (≤ the headroom, ≤ what the EV
draws) is sent with a schedule lasting :attr:`CommissionOptions.expiry_s` once the EV has had time
to follow it, and a ``validTo`` two reaction allowances after that; within one allowance of the
schedule's end the draw must fall to the fail-safe limit. A charger that holds the last period
(until ``validTo``, or longer) fails it: quirk ``holds_last_limit``, which makes the controller
budget it as holding its last limit until a lower one is sent (docs/safety.md). The profile ends by
itself either way.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from controller.chargers.profiles import NoSafeProfile
from controller.commission.context import RunContext, describe, fmt
from controller.commission.report import Check


async def profile_expiry(ctx: RunContext) -> Check:
    """The check (see the module docstring); the quirk ``holds_last_limit`` when it fails."""
    o, tol = ctx.options, ctx.tolerance
    name = "profile_expiry"
    if ctx.ev_stuck:
        return Check(name, None, None, "Not tested: the EV stopped drawing (resume_after_zero).")
    fs = ctx.failsafe_limit
    headroom = ctx.headroom()
    limit = min(headroom, ctx.ev_draw if ctx.ev_draw is not None else headroom)
    if headroom < fs + 2 * tol:
        why = f"the headroom ({headroom:.1f} {ctx.unit}) allows no limit clearly above the fail-safe"
        why += f" {fs:g} {ctx.unit}"
        return Check(name, None, None, f"Not tested: {why}.")
    if limit < fs + 2 * tol:
        why = f"the EV draws at most {limit:.1f} {ctx.unit}, not clearly above the fail-safe {fs:g} {ctx.unit}"
        return Check(name, None, None, f"Not tested: {why}.")
    bound = ctx.allowance_s  # the EV's own reaction (follows_limit) may be slower than the limit
    try:  # the schedule lasts expiry_s once the EV has had time to come up to the limit
        spec = ctx.build(limit, o.expiry_s + bound)
    except NoSafeProfile as exc:
        return Check(name, None, None, f"Not tested: {exc}.")
    end = spec.expires_at
    if spec.valid_to is not None:  # a charger that holds the last period until validTo shows it
        spec = replace(spec, valid_to=spec.valid_to + timedelta(seconds=2 * bound))
        if spec.kind == "Absolute" and spec.charger_end is not None:  # now the (whole-second) duration's end
            end = spec.charger_end - timedelta(seconds=spec.clock_offset_s or 0.0)
        spec = replace(spec, expires_at=end, expires_not_before=end)
    sent = await ctx.offer(spec)
    if isinstance(sent, str):
        return Check(name, None, None, f"Not tested: {sent}.")
    if end is None:
        end = sent.sent_at + timedelta(seconds=o.expiry_s + bound)
    up = await ctx.wait_sample(lambda s: s.value >= limit - tol, sent.sent_at, o.follow_wait_s)
    if up is None:
        return Check(name, None, None, f"Not tested: the draw did not come up to {limit:.1f} {ctx.unit}.")
    await ctx.wait_until(lambda: ctx.now() >= end, max(0.0, (end - ctx.now()).total_seconds()) + 1.0)
    fell = await ctx.wait_sample(lambda s: s.value <= fs + tol, end, bound)
    sent_text = f"Sent {describe(spec)}, its schedule ending after {o.expiry_s + bound:g} s"
    sent_text += f" (validTo {2 * bound:g} s later)"
    if fell is not None:
        took = (fell.at - end).total_seconds()
        ctx.disproved.add("holds_last_limit")
        detail = f"{sent_text}: {fell.value:.1f} {ctx.unit} {took:.1f} s after its end."
        return Check(name, True, round(took, 2), detail)
    after = ctx.watch.since(end)
    held = max((s.value for s in after), default=None)
    ctx.found.add("holds_last_limit")
    detail = (
        f"{sent_text}: still {fmt(held, ctx.unit)} {bound:g} s after its end, above the fail-safe"
        f" {fs:g} {ctx.unit}."
        " Quirk holds_last_limit: the charger is budgeted as holding its last limit until a lower one is sent."
    )
    return Check(name, False, round(held, 1) if held is not None else None, detail)
