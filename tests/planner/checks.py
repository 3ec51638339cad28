"""Independent checks of a Plan against its Snapshot, written from the site model (not the LP)."""

from __future__ import annotations

from datetime import datetime, timedelta

from controller.model import GRID_ID, Plan, Snapshot, dc_phase_current_a

TOL_A = 0.1


def effective_base(snap: Snapshot) -> dict[str, list[float]]:
    """Measured non-EV load per node; a parent carries at least what a metered child carries."""
    site = snap.site
    base = {n: [max(0.0, float(v)) for v in snap.base_load_a.get(n, (0.0, 0.0, 0.0))] for n in site.node_ids()}
    for node in reversed(site.node_ids()):
        if node == GRID_ID:
            continue
        parent = site.circuit(node).parent
        base[parent] = [max(a, b) for a, b in zip(base[parent], base[node], strict=True)]
    return base


def slot_values(plan: Plan) -> dict[str, list[float]]:
    """Per session, the limit in force in each slot (0 after departure)."""
    out: dict[str, list[float]] = {}
    for sp in plan.sessions:
        vals: list[float] = []
        for start in plan.slot_starts:
            v = 0.0
            if start < sp.departure_at or start == plan.slot_starts[0]:
                for s_start, s_val in sp.schedule:
                    if s_start <= start:
                        v = s_val
            vals.append(v)
        out[sp.session_id] = vals
    return out


def phase_currents(snap: Snapshot, plan: Plan) -> dict[str, list[tuple[float, float, float]]]:
    """Grid current per phase per slot for each session, from the schedule values."""
    site = snap.site
    volt = site.site.voltage_v
    out: dict[str, list[tuple[float, float, float]]] = {}
    for sp in plan.sessions:
        if not sp.grid_phases:
            continue
        ch = site.charger(sp.charger_id)
        per_slot = []
        for v in slot_values(plan)[sp.session_id]:
            amps = v if sp.kind == "ac" else dc_phase_current_a(v, volt, ch.efficiency, ch.power_factor) * 3 / len(
                sp.grid_phases
            )
            cur = [0.0, 0.0, 0.0]
            for ph in sp.grid_phases:
                cur[ph] = amps
            per_slot.append((cur[0], cur[1], cur[2]))
        out[sp.session_id] = per_slot
    return out


def limit_violations(snap: Snapshot, plan: Plan, tol: float = TOL_A) -> list[str]:
    """Every node, phase and slot where base + EV current exceeds limit - margin (by more than tol).

    Where the base load alone is over, any EV current on that phase under the node is a violation.
    """
    site = snap.site
    base = effective_base(snap)
    currents = phase_currents(snap, plan)
    charger_of = {sp.session_id: sp.charger_id for sp in plan.sessions}
    problems: list[str] = []
    for node in site.node_ids():
        room = site.node_limit_a(node) - site.node_margin_a(node)
        users = [sid for sid in currents if node in site.ancestors(site.charger(charger_of[sid]).circuit)]
        for ph in range(3):
            for k, start in enumerate(plan.slot_starts):
                ev = sum(currents[sid][k][ph] for sid in users)
                allowed = max(room, base[node][ph])
                if base[node][ph] + ev > allowed + tol or (base[node][ph] > room and ev > tol):
                    problems.append(f"{node} L{ph + 1} slot {k} ({start:%H:%M}): base {base[node][ph]:.1f} + ev "
                                    f"{ev:.1f} > {room:.1f}")
    if site.grid.limit_kw is not None:
        for k in range(len(plan.slot_starts)):
            kw = sum(base[GRID_ID]) * site.site.voltage_v / 1000.0
            for sp in plan.sessions:
                if not sp.grid_phases:
                    continue
                v = slot_values(plan)[sp.session_id][k]
                ch = site.charger(sp.charger_id)
                kw += v * site.site.voltage_v * len(sp.grid_phases) / 1000.0 if sp.kind == "ac" else v / ch.efficiency
            if kw > site.grid.limit_kw + 0.1 and kw > sum(base[GRID_ID]) * site.site.voltage_v / 1000.0 + 0.1:
                problems.append(f"grid kW slot {k}: {kw:.1f} > {site.grid.limit_kw}")
    return problems


def bound_violations(snap: Snapshot, plan: Plan) -> list[str]:
    """AC limits must be 0 or within [min_a, max_a]; DC within [0, max_kw]."""
    site = snap.site
    problems: list[str] = []
    for sp in plan.sessions:
        if not sp.grid_phases:
            continue
        ch = site.charger(sp.charger_id)
        for start, v in sp.schedule:
            if v < 0:
                problems.append(f"{sp.session_id} {start}: negative {v}")
            if ch.kind == "ac" and v > 0:
                hi = ch.max_a if ch.max_a is not None else 32.0
                if v < ch.min_a - 1e-9 or v > hi + 1e-9:
                    problems.append(f"{sp.session_id} {start:%H:%M}: {v} A outside [{ch.min_a}, {hi}]")
            if ch.kind == "dc" and ch.max_kw is not None and v > ch.max_kw + 1e-9:
                problems.append(f"{sp.session_id} {start:%H:%M}: {v} kW > {ch.max_kw}")
    return problems


def cap_violations(snap: Snapshot, plan: Plan, tol: float = 1e-6) -> list[str]:
    """Every slot where a session's limit is above the least outside cap (``SessionState.cap``) in
    force during the slot — steps ``(from, limit)`` each until the next (a step the next one starts
    with at the same time is never in force), none before the first — or
    an AC limit above 0 while such a cap is below the charger's minimum current. A cap that cannot
    be read (a time without a zone) allows nothing."""
    site = snap.site
    states = {s.session_id: s for s in snap.sessions}
    values = slot_values(plan)
    ends = [*plan.slot_starts[1:], plan.horizon_end]
    problems: list[str] = []
    for sp in plan.sessions:
        st = states.get(sp.session_id)
        if st is None or not st.cap or not sp.grid_phases:
            continue
        if any(at_.tzinfo is None for at_, _ in st.cap):
            steps = [(plan.slot_starts[0], 0.0)]
        else:
            steps = sorted(st.cap, key=lambda c: c[0])
        ch = site.charger(sp.charger_id)
        for k, (start, end) in enumerate(zip(plan.slot_starts, ends, strict=True)):
            in_force = [v for i, (at_, v) in enumerate(steps)
                        if at_ < max(end, start + timedelta(microseconds=1))
                        and (i + 1 == len(steps) or steps[i + 1][0] > max(start, at_))]  # 0 s long: never
            if not in_force:
                continue
            cap = min(in_force)
            v = values[sp.session_id][k]
            if v > cap + tol:
                problems.append(f"{sp.session_id} slot {k} ({start:%H:%M}): {v} > outside cap {cap}")
            elif ch.kind == "ac" and v > 0.0 and cap < ch.min_a - 1e-9:
                problems.append(f"{sp.session_id} slot {k} ({start:%H:%M}): {v} A under a cap {cap} below min")
    return problems


def at(plan: Plan, when: datetime) -> int:
    """Index of the slot running at ``when``."""
    k = 0
    for i, s in enumerate(plan.slot_starts):
        if s <= when:
            k = i
    return k
