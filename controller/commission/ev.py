"""The checks that need an EV charging: ``phases_in_use``, ``follows_limit``, ``min_current``,
``resume_after_zero``, then ``profile_expiry`` (:mod:`.expiry`) — and, over every step before it,
``ignores_limit``.

Every limit goes out as a short control profile (:attr:`CommissionOptions.step_profile_s`)
capped at the connector's headroom at the moment of sending; the draw is read from the meter
values (:class:`~controller.commission.measure.DrawWatch`). A reaction is the time from sending
a limit to the first sample that shows it followed, so it includes one meter interval. The EV's
reaction the run reports (and the controller then allows the charger) is the *slowest* of the
steps *down* — a raise followed late costs nothing, a decrease followed late overloads a node —
and only when every step was answered and followed: a partial measurement could only shorten
an allowance.

A check not made for want of an EV charging or of headroom is recorded as such
(:meth:`RunContext.not_tested`): the run did not test what it was asked to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from controller.chargers.profiles import NoSafeProfile
from controller.commission.context import RunContext, Sent, fmt
from controller.commission.expiry import profile_expiry
from controller.commission.measure import Sample
from controller.commission.options import IEC_61851_REACTION_S
from controller.commission.report import Check

Add = Callable[[Check], None]


class EvChecks:
    """One run's EV checks, in order (:meth:`run`)."""

    def __init__(self, ctx: RunContext, add: Add) -> None:
        self.ctx = ctx
        self.add = add
        self.o = ctx.options
        self.started: datetime | None = None
        """When the first EV step was sent: ``ignores_limit`` judges from here."""

    # --- sending ------------------------------------------------------------------------------
    async def step(self, limit: float, ttl_s: float | None = None, *, drop: tuple[str, ...] = ()) -> Sent | str:
        """Send ``limit`` (capped at the headroom now); the answer, or why nothing was sent."""
        ctx = self.ctx
        # right after the run's own last change the headroom is cautious for about a meter
        # interval (the charger's reading lags the meter): wait that long for room, then cap
        await ctx.wait_until(lambda: ctx.headroom() >= limit, 2.0 * self.o.sample_s + 1.0)
        capped = min(limit, ctx.headroom())
        try:
            spec = ctx.build(capped, self.o.step_profile_s if ttl_s is None else ttl_s, ctx.target(drop=drop))
        except NoSafeProfile as exc:
            return str(exc)
        return await ctx.offer(spec)

    def skip_rest(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            self.add(Check(name, None, None, why))

    # --- the sequence -------------------------------------------------------------------------
    async def run(self) -> None:
        ctx = self.ctx
        rest = ("follows_limit", "min_current", "resume_after_zero", "ignores_limit", "profile_expiry")
        hi = ctx.headroom()
        before = ctx.watch.latest()
        raised = await self.step(hi)
        if isinstance(raised, str):
            await self.phases(None)
            self.skip_rest(rest, f"The charger takes no control profile ({raised}): nothing to follow.")
            return
        self.started = raised.sent_at
        drawing = await ctx.wait_sample(lambda s: s.value > ctx.tolerance, raised.sent_at, self.o.follow_wait_s)
        if drawing is None:
            why = (
                f"No EV charging: a transaction but no draw within {self.o.follow_wait_s:g} s at"
                f" {raised.limit:.1f} {ctx.unit}."
            )
            ctx.not_tested("EV checks", why + " Commission it again with an EV that charges (or with --no-ev).")
            self.skip_rest(("phases_in_use", *rest), why)
            return
        await self.settle(raised, before)
        await self.phases(raised.sent_at)
        await self.follows(raised)
        await self.min_current()
        await self.resume()
        if self.ignores():
            self.add(Check("profile_expiry", None, None, "Not tested: the charger ignores limits (ignores_limit)."))
        else:
            self.add(await profile_expiry(self.ctx))

    async def settle(self, raised: Sent, before: Sample | None) -> None:
        """After the first raise: wait until the EV draws what it will under it (it reached the
        limit, or two samples agree above where it was), bounded; that is :attr:`ev_draw`."""
        ctx, tol = self.ctx, self.ctx.tolerance
        floor = (before.value if before is not None else 0.0) + tol
        last: list[Sample] = []

        def settled() -> bool:
            fresh = ctx.watch.since(raised.sent_at)
            if fresh and fresh[-1].value >= raised.limit - tol:
                return True
            last[:] = fresh[-2:]
            return len(last) == 2 and last[0].value > floor and abs(last[1].value - last[0].value) <= tol

        await ctx.wait_until(settled, self.o.follow_wait_s)
        latest = ctx.watch.latest()
        ctx.ev_draw = latest.value if latest is not None else None

    async def phases(self, since: datetime | None) -> None:
        ctx = self.ctx
        if ctx.kind == "dc":
            self.add(Check("phases_in_use", None, None, "DC charger: no AC phases to count."))
            return
        if since is None:
            await ctx.wait_sample(lambda s: s.value > ctx.tolerance, ctx.now(), self.o.follow_wait_s)
        c = ctx.state().connectors.get(ctx.connector)
        used = c.measured.phases_in_use(since) if c is not None else None
        latest = ctx.watch.latest()
        if used is None or latest is None:
            self.add(Check("phases_in_use", None, None, "No EV charging: no per-phase draw to count."))
            return
        ctx.phases_in_use = used
        shown = ", ".join(f"L{i + 1} {fmt(v, 'A')}" for i, v in enumerate(latest.phases_a[: ctx.charger.phases]))
        detail = f"{shown}: the EV draws on {used} of the charger's {ctx.charger.phases} phases."
        sized = {p.phases for s in ctx.sent if s.accepted and s.spec.unit == "W" for p in s.spec.periods[:1]}
        if ctx.kind == "ac" and "A" not in ctx.units and sized and max(p or 0 for p in sized) < ctx.charger.phases:
            detail += (
                f" Measured under W limits sent with numberPhases {max(p or 0 for p in sized)} (sized for the"
                " phases known then): the charger may have switched the EV to fewer phases than it can use."
            )
        if used < ctx.charger.phases and "W" in ctx.units:
            detail += (
                " Warning: the charger divides a limit in W by the phases in use, so a W limit gives this EV"
                f" {ctx.charger.phases // used}× the current per phase of a three-phase one; the controller sizes W"
                " limits by the phases it measures per session."
            )
        self.add(Check("phases_in_use", True, used, detail))

    async def follows(self, raised: Sent) -> None:
        """``follows_limit``: down and up steps; passed when every step was answered and the draw
        followed it within :attr:`CommissionOptions.follow_wait_s`. The reaction measured — the
        slowest step down, rounded up — is then the report's ``reaction_s`` (above 5 s: a
        ``reaction_s`` line to add to the site file); otherwise none is reported."""
        ctx, tol = self.ctx, self.ctx.tolerance
        top = min(raised.limit, ctx.ev_draw if ctx.ev_draw is not None else raised.limit)
        floor = ctx.charger.min_a if ctx.kind == "ac" else 0.0
        low = max(floor, math.floor(top / 2.0))
        if top - low < 2 * tol:
            why = (
                f"Under {raised.limit:.1f} {ctx.unit} (the headroom) the EV draws {top:.1f} {ctx.unit}: no room for a"
                f" step down to {low:.1f} {ctx.unit} and back."
            )
            self.add(Check("follows_limit", None, None, ctx.not_tested("follows_limit", why)))
            return
        downs: list[float] = []
        notes: list[str] = []
        missed: list[str] = []
        for i in range(self.o.follow_steps):
            down = i % 2 == 0
            way = "down" if down else "up"
            sent = await self.step(low if down else ctx.headroom())
            if isinstance(sent, str):
                notes.append(f"step {i + 1} ({way}) not made: {sent}")
                missed.append(f"step {i + 1} ({way}) could not be made")
                break
            goal = sent.limit if down else min(sent.limit, top)

            def reached(s: Sample, down: bool = down, goal: float = goal) -> bool:
                return s.value <= goal + tol if down else s.value >= goal - tol

            hit = await ctx.wait_sample(reached, sent.sent_at, self.o.follow_wait_s)
            if hit is None:
                now = ctx.watch.latest()
                still = fmt(now.value if now else None, ctx.unit)
                notes.append(f"{way} to {sent.limit:.1f} {ctx.unit}: still {still} after {self.o.follow_wait_s:g} s")
                missed.append(f"the draw did not follow step {i + 1} ({way}) within {self.o.follow_wait_s:g} s")
                continue
            reaction = (hit.at - sent.sent_at).total_seconds()
            if down:
                downs.append(reaction)
            notes.append(f"{way} to {sent.limit:.1f} {ctx.unit}: {reaction:.1f} s")
        detail = "Steps " + "; ".join(notes) + "."
        if missed or not downs:
            ctx.reaction_s = None
            detail += (
                f" Not followed: {'; '.join(missed) or 'no step down was made'}. No reaction time is reported: one"
                " measured on steps that were not all followed would only shorten the allowances."
            )
            self.add(Check("follows_limit", False, None, detail))
            return
        slowest = math.ceil(round(max(downs) * 100.0, 6)) / 100.0  # rounded up: an allowance never shorter
        ctx.reaction_s = slowest
        detail += f" Reaction to a lower limit (the slowest step down): {slowest:g} s."
        if slowest > IEC_61851_REACTION_S:
            detail += (
                f" Slower than the {IEC_61851_REACTION_S:g} s of IEC 61851-1 the controller allows by default: add the"
                " report's reaction_s line under the charger (the shed and the plan then allow it that long); a"
                " very slow EV is the EV, not the charger — try another."
            )
        self.add(Check("follows_limit", True, slowest, detail))

    async def min_current(self) -> None:
        ctx, tol = self.ctx, self.ctx.tolerance
        if ctx.kind == "dc":
            self.add(Check("min_current", None, None, "DC charger: no minimum current (A-only check)."))
            return
        min_a = ctx.charger.min_a
        sent = await self.step(min_a)
        if isinstance(sent, str) or sent.limit < min_a - 0.05:
            why = sent if isinstance(sent, str) else f"the headroom ({ctx.headroom():.1f} A) is below {min_a:g} A"
            self.add(Check("min_current", None, None, f"Not tested: {ctx.not_tested('min_current', why)}."))
            return
        hit = await ctx.wait_sample(lambda s: s.value <= min_a + tol, sent.sent_at, self.o.follow_wait_s)
        if hit is None:
            self.add(Check("min_current", False, None, f"Sent {min_a:g} A: the draw did not come down to it."))
            return
        await ctx.sleep(self.o.min_hold_s)
        held = ctx.watch.between(hit.at, hit.at + timedelta(seconds=self.o.min_hold_s))
        lowest = min((s.value for s in held), default=hit.value)
        ok = all(abs(s.value - min_a) <= tol for s in held) and lowest > tol
        detail = (
            f"Sent {min_a:g} A for {self.o.min_hold_s:g} s: drew {lowest:.1f}–{max(s.value for s in held):.1f} A"
            f" ({len(held)} samples)."
            if held
            else f"Sent {min_a:g} A: no meter values during the hold."
        )
        if lowest <= tol:
            detail += " The EV paused at the minimum: raise the charger's min_a in the site file."
        self.add(Check("min_current", ok and bool(held), round(lowest, 1), detail))

    async def resume(self) -> None:
        ctx, tol = self.ctx, self.ctx.tolerance
        name = "resume_after_zero"
        if ctx.kind == "dc":
            self.add(Check(name, None, None, "DC charger: the pause below 6 A is an AC (IEC 61851) matter."))
            return
        if "no_resume_after_zero" in ctx.charger.ocpp_quirks:
            why = "Not tested: the site file says no_resume_after_zero (a pause would end this EV's charging)."
            self.add(Check(name, None, None, why))
            return
        min_a = ctx.charger.min_a
        zero = await self.step(0.0, drop=("no_resume_after_zero",))
        if isinstance(zero, str):
            self.add(Check(name, None, None, f"Not tested: {zero}."))
            return
        paused = await ctx.wait_sample(lambda s: s.value <= tol, zero.sent_at, self.o.follow_wait_s)
        if paused is None:
            now = ctx.watch.latest()
            why = f"Sent {zero.limit:g} A: the EV did not pause (still {fmt(now.value if now else None, 'A')})."
            self.add(Check(name, None, None, why + " Resume not testable (see ignores_limit)."))
            return
        back = await self.step(min_a, drop=("no_resume_after_zero",))
        if isinstance(back, str):
            self.add(Check(name, None, None, f"Paused at {zero.limit:g} A; the minimum not sent: {back}."))
            return
        resumed = await ctx.wait_sample(lambda s: s.value >= back.limit - tol, back.sent_at, self.o.resume_limit_s)
        if resumed is None:
            ctx.found.add("no_resume_after_zero")
            ctx.ev_stuck = True
            detail = (
                f"Paused at {zero.limit:g} A, then {back.limit:g} A: no draw within {self.o.resume_limit_s:g} s."
                " Quirk no_resume_after_zero: the controller then never sends less than the minimum."
            )
            self.add(Check(name, False, None, detail))
            return
        ctx.disproved.add("no_resume_after_zero")
        took = (resumed.at - back.sent_at).total_seconds()
        detail = f"Paused at {zero.limit:g} A; drew {resumed.value:.1f} A again {took:.1f} s after {back.limit:g} A."
        self.add(Check(name, True, round(took, 2), detail))

    def ignores(self) -> bool:
        """``ignores_limit`` over every sample since the first step; True when it failed."""
        ctx = self.ctx
        if self.started is None:
            return False
        grace = ctx.allowance_s
        samples = ctx.watch.since(self.started)
        worst, where = ctx.log.worst_excess(samples, grace)
        tol = ctx.tolerance
        if where is not None and worst > tol:
            allowed = ctx.log.allowed(where.at, grace)
            detail = (
                f"Drew {where.value:.1f} {ctx.unit} where {fmt(allowed, ctx.unit)} was allowed"
                f" ({grace:g} s after the limit changed): it ignores limits. It is left out of the plan and budgeted"
                " at what it draws."
            )
            self.add(Check("ignores_limit", False, round(worst, 1), detail))
            return True
        detail = (
            f"{len(samples)} samples: never more than {tol:g} {ctx.unit} above the limit once {grace:g} s had passed"
            f" (worst {max(worst, 0.0):.1f} {ctx.unit})."
        )
        self.add(Check("ignores_limit", True, round(max(worst, 0.0), 1), detail))
        return False
