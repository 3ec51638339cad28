"""The checks that need no EV: ``connects``, ``clock``, ``failsafe_profile``, ``current_profile``
and ``power_profile`` (see README "Commissioning" for what each means to an electrician)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from controller.chargers.profiles import INTERNAL_OPTIONS, NoSafeProfile, Target
from controller.commission.context import RunContext, Sent, answer, describe
from controller.commission.report import Check

SECURITY_PROFILES = {0: "0 (none: for a lab only)", 1: "1 (HTTP Basic)", 2: "2 (TLS and HTTP Basic)"}
STRUCTURAL_QUIRKS = ("txdefault_on_connector_0", "stack_level_zero_only", "relative_profiles")
"""Tried, one at a time, when a profile is refused in both units (as the controller would; not
when the charger did not answer: no answer says nothing about the profile's shape)."""
COMPOSITE_TOLERANCE = 0.1
"""Composite limits are rounded to 0.1 (A or W)."""


def sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else ""


def connects(ctx: RunContext) -> Check:
    st = ctx.state()
    profile = ctx.port.site.ocpp.security_profile
    parts = [f"OCPP {st.ocpp_version}", f"security profile {SECURITY_PROFILES.get(profile, str(profile))}"]
    if st.vendor is None:
        parts.append("no BootNotification on this connection: vendor, model and firmware unknown")
    else:
        parts.append(f"vendor {st.vendor}, model {st.model}, firmware {st.firmware or 'not given'}")
    return Check("connects", True, st.ocpp_version, "; ".join(parts) + ".")


async def clock(ctx: RunContext) -> Check:
    o = ctx.options
    await ctx.wait_until(lambda: ctx.state().clock_offset_samples >= o.clock_samples, o.clock_wait_s)
    st = ctx.state()
    offset = st.clock_offset_s
    if offset is None:
        return Check(
            "clock",
            False,
            None,
            f"The charger sent no timestamp within {o.clock_wait_s:g} s: its clock offset is unknown, so every"
            " control profile is started minutes early to be in force; check that it sends MeterValues and"
            " StatusNotification with timestamps.",
        )
    way = "ahead of" if offset > 0 else "behind"
    detail = (
        f"The charger's clock is {abs(offset):.1f} s {way} ours (from {st.clock_offset_samples} timestamps);"
        f" allowed ±{o.clock_limit_s:g} s."
    )
    ok = abs(offset) <= o.clock_limit_s
    if not ok:
        detail += (
            " Set its clock (NTP): the controller builds profiles on the charger's clock while it measures"
            " the offset, but a clock corrected backwards by more than that later leaves the charger on its"
            " fail-safe until the offset is measured again."
        )
    return Check("clock", ok, round(offset, 1), detail)


def _periods(payload: Any) -> tuple[str, list[tuple[int, float]]] | None:
    """(rate unit, [(start s, limit)]) of a GetCompositeSchedule answer, 1.6 or 2.0.1."""
    schedule = getattr(payload, "charging_schedule", None) or getattr(payload, "schedule", None)
    if not isinstance(schedule, dict):
        return None
    raw = schedule.get("charging_schedule_period") or []
    try:
        periods = [(int(p["start_period"]), float(p["limit"])) for p in raw]
    except (KeyError, TypeError, ValueError):
        return None
    return str(schedule.get("charging_rate_unit", "A")), periods


async def failsafe_profile(ctx: RunContext) -> Check:
    spec = ctx.port.failsafe_spec(ctx.charger_id)
    sent = await ctx.send(spec)
    what = f"Sent {describe(spec)}: {answer(ctx, sent.result)}."
    if not sent.accepted:
        return Check(
            "failsafe_profile",
            False,
            None,
            what + " Without its fail-safe profile the charger is budgeted at its maximum, and a lost link or"
            " a stopped controller leaves it unlimited.",
        )
    duration = max(ctx.options.composite_s, int(ctx.port.site.ocpp.profile_ttl_s) + 30)
    out = await ctx.session.composite_schedule(ctx.connector, duration)
    ctx.check_alive()
    if not out.ok:
        return Check(
            "failsafe_profile",
            True,
            spec.first_limit,
            what + f" GetCompositeSchedule answered {out.status}: the composite cannot be checked on this charger.",
        )
    parsed = _periods(out.payload)
    if parsed is None or not parsed[1]:
        return Check("failsafe_profile", True, spec.first_limit, what + " The composite schedule came back empty.")
    unit, periods = parsed
    last = periods[-1][1]
    target = ctx.target()
    if unit == "W":
        allowed = ctx.failsafe_limit * (1000.0 if ctx.kind == "dc" else target.full_watts_per_a)
    elif ctx.kind == "dc":
        return Check(
            "failsafe_profile",
            True,
            spec.first_limit,
            what + f" The composite came back in A ({last:g} A at the end): not comparable with a limit in kW.",
        )
    else:
        allowed = ctx.failsafe_limit
    shown = f" Composite over {duration} s: {', '.join(f'{v:g} {unit} from {s} s' for s, v in periods[:6])}."
    if last <= allowed + COMPOSITE_TOLERANCE:
        return Check("failsafe_profile", True, spec.first_limit, what + shown)
    return Check(
        "failsafe_profile",
        False,
        spec.first_limit,
        what + shown + f" After every other profile ends it shows {last:g} {unit}, above the fail-safe"
        f" {allowed:g} {unit}.",
    )


async def _wait_for_phases(ctx: RunContext, no_ev: bool) -> None:
    """With an EV drawing, size a W test by the phases it uses (a W limit sized for one phase would
    pause a three-phase EV): wait a little for them to be known."""
    if no_ev or ctx.kind == "dc" or ctx.transaction() is None:
        return
    await ctx.wait_until(lambda: ctx.target().phases_in_use is not None, ctx.options.follow_wait_s)


class NoRoom(str):
    """Why nothing was sent: the headroom allows no test profile (a condition of the run, not the
    charger's doing: the run is incomplete)."""


async def _probe(ctx: RunContext, target: Target) -> Sent | str:
    """Send a short control profile at the fail-safe limit (≤ the headroom) built for ``target``;
    the answer, or why nothing could be sent (:class:`NoRoom`: for lack of headroom)."""
    limit = min(ctx.failsafe_limit, ctx.headroom())
    try:
        spec = ctx.build(limit, ctx.options.probe_s, target)
    except NoSafeProfile as exc:
        return str(exc)
    if not ctx.within_headroom(spec):
        return NoRoom(f"headroom {ctx.headroom():.1f} {ctx.unit} allows no test profile")
    return await ctx.send(spec)


def _answer(ctx: RunContext, sent: Sent | str) -> str:
    if isinstance(sent, str):
        return f"not sent: {sent}"
    return f"sent {describe(sent.spec)} for {_life_s(sent):g} s: {answer(ctx, sent.result)}"


def _life_s(sent: Sent) -> float:
    """How long the profile lasts from when it was sent [s] (our clock)."""
    end = sent.spec.expires_at
    return round((end - sent.sent_at).total_seconds()) if end is not None else 0.0


async def units(ctx: RunContext, *, no_ev: bool) -> tuple[Check, Check]:
    """``current_profile`` and ``power_profile``: which units the charger takes a profile in."""
    await _wait_for_phases(ctx, no_ev)
    w_target = ctx.target(add=["power_only"])
    if ctx.kind == "dc":
        current = Check("current_profile", None, None, "DC charger: its limits go out in W, never in A.")
        w_dc = await _probe(ctx, w_target)
        if _ok(w_dc):
            ctx.units.append("W")
        return current, _unit_check(ctx, "power_profile", "W", w_dc, "")
    a_sent = await _probe(ctx, ctx.target(drop=["power_only"]))
    w_sent = await _probe(ctx, w_target)
    note = ""
    if _refused(a_sent) and _refused(w_sent):
        found = await _try_quirks(ctx, ctx.state().learned_quirks)
        if found is not None:
            quirk, a_sent, w_sent = found
            note = f" Accepted only with quirk {quirk}."
    if _ok(a_sent):
        ctx.units.append("A")
        ctx.disproved.add("power_only")
    if _ok(w_sent):
        ctx.units.append("W")
    current = _unit_check(ctx, "current_profile", "A", a_sent, note)
    if not _ok(a_sent) and isinstance(a_sent, Sent):
        if _ok(w_sent):
            ctx.found.add("power_only")
            extra = " It takes W only: quirk power_only (limits go out in W, sized by the phases the EV uses)."
        elif a_sent.unanswered or (isinstance(w_sent, Sent) and w_sent.unanswered):
            extra = (
                " The charger does not answer SetChargingProfile in time: a charger that does not answer is"
                " uncontrolled — left out of the plan and budgeted at what it draws (its maximum while unknown),"
                " each profile sent counted as in force until it can have ended. Check its link (signal,"
                " latency) and its firmware; no quirk was tried (no answer says nothing about the profile)."
            )
        else:
            extra = (
                " It accepts no profile in A or in W: a charger without smart charging, budgeted at its maximum"
                " whatever the plan."
            )
        current = Check("current_profile", False, None, current.detail + extra)
    return current, _unit_check(ctx, "power_profile", "W", w_sent, note)


def _ok(sent: Sent | str) -> bool:
    return isinstance(sent, Sent) and sent.accepted


def _refused(sent: Sent | str) -> bool:
    """The charger answered, and not with Accepted (a timeout is no answer)."""
    return isinstance(sent, Sent) and not sent.accepted and not sent.unanswered


def _unit_check(ctx: RunContext, name: str, unit: str, sent: Sent | str, note: str) -> Check:
    """Passed: accepted; failed: answered otherwise, or not at all; skipped: nothing could be sent
    (for lack of headroom: the run is then incomplete)."""
    if isinstance(sent, str):
        if isinstance(sent, NoRoom):
            why = ctx.not_tested(name, f"{sent} (commission it again when the site has room)")
        else:
            why = f"{sent} (test it with an EV charging)"
        return Check(name, None, None, f"Not tested: {why}.")
    detail = sentence(_answer(ctx, sent)) + (note if sent.accepted else "")
    return Check(name, sent.accepted, unit if sent.accepted else None, detail)


async def _try_quirks(ctx: RunContext, learned: Iterable[str]) -> tuple[str, Sent | str, Sent | str] | None:
    """Both units rejected: the structural quirks, one at a time (A, then W); the first that makes a
    profile accepted is found (and the other unit tried with it)."""
    known = ctx.target().quirks | frozenset(learned)
    for quirk in STRUCTURAL_QUIRKS:
        if quirk in known or quirk in INTERNAL_OPTIONS:
            continue
        a_sent = await _probe(ctx, ctx.target(add=[quirk], drop=["power_only"]))
        w_sent = await _probe(ctx, ctx.target(add=[quirk, "power_only"]))
        if _ok(a_sent) or _ok(w_sent):  # (a quirk that leaves nothing to send: not this one)
            ctx.found.add(quirk)
            return quirk, a_sent, w_sent
        if any(isinstance(s, Sent) and s.unanswered for s in (a_sent, w_sent)):
            return None  # no answer: stop trying, as the controller does
    return None
