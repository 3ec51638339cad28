"""What the central system knows about each charger. Plain mutable records, updated by the OCPP
handlers, read by the daemon (snapshot building), the API and the metrics.

Phases in :class:`Measured` are the *charger's* phases (L1, L2, L3 as the charger reports them);
map them to grid phases with ``Charger.grid_phases``.

Every time here is on *our* clock. A charger's own timestamps only feed its clock-offset
estimate (:attr:`ChargerState.clock_estimate`) and are mapped through it: a reading's ``at`` is when we
received it, backdated by how old the charger says the sample was (a queued value is old, a
fresh one is as fresh as its receipt, whatever the charger's clock says).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.chargers.clock import from_ocpp
from controller.chargers.clock_offset import ClockOffset
from controller.chargers.profiles import ProfileSpec
from controller.model.site import Site, Vehicle

PHASE_NAMES = ("L1", "L2", "L3")
PHASE_IN_USE_MIN_A = 1.0
"""A phase counts as in use above this current and above a fifth of the busiest phase."""
ENDED_KEPT = 64
"""How many ended transaction ids a charger's state remembers (until it boots again)."""
LATE_AFTER_END_S = 600.0
"""A current or power sample from before a transaction's end received within this long after it
is what the stopped EV drew (:meth:`Measured.before_draw_ended`)."""


@dataclass
class Reading:
    value: float
    at: datetime
    """On our clock: received at, backdated by the sample's age as the charger's clock tells it."""
    sampled_at: datetime | None = None
    """The charger's own timestamp (its clock, for diagnostics only)."""


@dataclass
class Measured:
    """Latest meter values of one connector, each with its own timestamp."""

    current_a: list[Reading | None] = field(default_factory=lambda: [None, None, None])
    current_unphased_a: Reading | None = None
    """``Current.Import`` reported without a phase: the current of a single-phase charger (a
    line-to-line one may report only this); ambiguous on a multi-phase one, used only for
    single-phase chargers (:func:`controller.chargers.planning.grid_currents`)."""
    power_w: Reading | None = None
    energy_wh: Reading | None = None
    soc_pct: Reading | None = None
    draw_ended_at: datetime | None = None
    """When the connector's last transaction ended, on our clock: its currents and power from
    before are not what the connector draws now (the EV stopped), and a meter value stamped before
    it that arrives later (a charger that flushes its queue after the stop, a message sent again)
    is not taken as a reading (:meth:`draw_ended`)."""
    draw_ended_stamp: datetime | None = None
    """The same moment by the charger's own clock (compared with its samples' own stamps: right
    whatever its clock's offset, measured or not)."""

    def draw_ended(self, at: datetime, stamp: datetime | None) -> None:
        """A transaction ended at ``at`` (our clock; ``stamp``: the charger's): the readings of what
        the connector draws are forgotten — with nothing fresh the daemon bounds its draw by its
        profiles (docs/safety.md), rather than keep counting the stopped EV's current, which would
        make the base load (grid import − the EVs' currents) look smaller than it is."""
        self.current_a = [None, None, None]
        self.current_unphased_a = None
        self.power_w = None
        self.draw_ended_at, self.draw_ended_stamp = at, stamp

    def before_draw_ended(self, at: datetime, stamp: datetime | None, received_at: datetime) -> bool:
        """A sample from before the last transaction's end: received within
        :data:`LATE_AFTER_END_S` of it, at or before it on our clock (``at``: its stamp through the
        offset estimate) *and*, where both carry one, by the charger's own stamps. Both must say so,
        so that a charger clock set back after the stop (a DST or NTP step the estimate follows)
        cannot hold its later readings back — a reading withheld hides a draw at an unmetered node.
        A sample stamped in the stop's own second is taken as before it (1-second stamps): a
        charger still drawing after its stop shows it from its next sample."""
        ended = self.draw_ended_at
        if ended is None or (received_at - ended).total_seconds() > LATE_AFTER_END_S or at > ended:
            return False
        if stamp is not None and self.draw_ended_stamp is not None:
            return stamp <= self.draw_ended_stamp
        return True

    def currents(self) -> tuple[float | None, float | None, float | None]:
        c = [r.value if r is not None else None for r in self.current_a]
        return (c[0], c[1], c[2])

    def phases_in_use(self, since: datetime | None = None) -> int | None:
        """1 or 3 (counted from the charger's first phase), or ``None`` when not drawing; only
        readings at or after ``since`` count (a previous session's phases are not this one's)."""
        values = [r.value for r in self.current_a if r is not None and (since is None or r.at >= since)]
        if not values:
            return None
        peak = max(values)
        if peak < PHASE_IN_USE_MIN_A * 2:
            return None
        used = sum(1 for v in values if v >= max(PHASE_IN_USE_MIN_A, peak / 5))
        return 1 if used == 1 else 3 if used == 3 else used


@dataclass
class Transaction:
    transaction_id: int | str
    connector_id: int
    id_tag: str | None
    vehicle_id: str | None
    started_at: datetime
    """On our clock: the charger's start stamp mapped through its measured offset (≤ ``seen_at``)."""
    meter_start_wh: float | None = None
    departure_at: datetime | None = None
    energy_need_kwh: float | None = None
    energy_need_at_wh: float | None = None
    """Meter register when the EV reported ``energy_need_kwh`` (to compute what remains)."""
    phases_in_use: int | None = None
    """Last detected from per-phase currents while drawing (1 or 3); sticks for the transaction."""
    ended_at: datetime | None = None
    stop_reason: str | None = None
    seen_at: datetime | None = None
    """When *we* received the start (``None``: restored after a restart); bounds Relative profiles."""
    phases_reported: int | None = None
    """Phases the charger says the EV uses (2.0.1 ``numberOfPhasesUsed``), when it says."""

    @property
    def phases_known(self) -> int | None:
        """Phases in use: measured during this transaction, else as reported, else ``None``."""
        return self.phases_in_use if self.phases_in_use is not None else self.phases_reported


@dataclass
class ConnectorState:
    status: str = "Unknown"
    error_code: str | None = None
    updated_at: datetime | None = None
    transaction: Transaction | None = None
    measured: Measured = field(default_factory=Measured)


@dataclass
class Capabilities:
    max_stack_level: int | None = None
    rate_units: tuple[str, ...] = ()
    max_periods: int | None = None
    max_profiles: int | None = None
    raw: dict[str, str] = field(default_factory=dict)
    measurands: tuple[str, ...] = ()


@dataclass
class AcceptedProfile:
    """A profile the charger accepted, and when."""

    spec: ProfileSpec
    accepted_at: datetime


@dataclass
class ChargerState:
    charger_id: str
    ocpp_version: str | None = None
    connected: bool = False
    connected_at: datetime | None = None
    last_seen: datetime | None = None
    booted_at: datetime | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    connectors: dict[int, ConnectorState] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)
    failsafe: AcceptedProfile | None = None
    accepted: dict[int, AcceptedProfile] = field(default_factory=dict)
    learned_quirks: tuple[str, ...] = ()
    last_rejection: str | None = None
    counters: Counter[str] = field(default_factory=Counter)
    clock_estimate: ClockOffset = field(default_factory=ClockOffset)
    """Estimate of this charger's clock offset, from its timestamps against our receive times."""
    failsafe_confirmed: bool = False
    """The fail-safe profile was accepted at the current fail-safe value (kept by Control)."""
    ended_ids: deque[str] = field(default_factory=lambda: deque(maxlen=ENDED_KEPT))
    """The ids of the transactions that ended here last (since it booted): a message naming one
    (sent again, or late) does not start it again (:meth:`after_end`)."""

    def transaction_ended(self, connector_id: int, transaction_id: int | str, at: datetime,
                          stamp: datetime | None) -> None:
        """A transaction ended (StopTransaction, TransactionEvent Ended): no longer the connector's,
        its id remembered, and what the connector drew forgotten (:meth:`Measured.draw_ended`)."""
        c = self.connector(connector_id)
        c.transaction = None
        c.measured.draw_ended(at, stamp)
        self.ended_ids.append(str(transaction_id))

    def transaction_started(self, connector_id: int, tx: Transaction) -> None:
        """A transaction began on the connector: its samples are its own (whatever the charger's
        clock says of them against the last one's end — a reboot may have set it back)."""
        c = self.connector(connector_id)
        c.transaction = tx
        c.measured.draw_ended_at = c.measured.draw_ended_stamp = None

    def has_ended(self, transaction_id: int | str) -> bool:
        return str(transaction_id) in self.ended_ids

    def after_end(self, transaction_id: int | str, event_type: str) -> bool:
        """A 2.0.1 TransactionEvent naming a transaction that ended here: its Updated or Ended, sent
        again or late, is answered and ignored. A ``Started`` is a new transaction that happens to
        reuse the id (firmware whose counter restarts): the id is forgotten, the event taken."""
        if not self.has_ended(transaction_id):
            return False
        if event_type == "Started":
            self.ended_ids.remove(str(transaction_id))
            return False
        return True

    @property
    def clock_offset_s(self) -> float | None:
        """``charger clock − our clock`` [s]; ``None`` while unmeasured."""
        return self.clock_estimate.offset_s

    @property
    def clock_offset_samples(self) -> int:
        return self.clock_estimate.samples

    def observe_time(self, stamp: Any, received_at: datetime) -> datetime | None:
        """Feed one charger timestamp (OCPP text or datetime) to the offset estimate; returns it
        parsed, ``None`` when absent or unreadable."""
        if stamp is None or stamp == "":
            return None
        try:
            parsed = stamp if isinstance(stamp, datetime) else from_ocpp(str(stamp))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        self.clock_estimate.observe(parsed, received_at)
        return parsed

    def to_ours(self, charger_time: datetime | None, received_at: datetime) -> datetime:
        """A charger time (from a message received at ``received_at``) on our clock, never later
        than the receipt; ``received_at`` when the time or the offset is unknown."""
        mapped = self.clock_estimate.to_ours(charger_time) if charger_time is not None else None
        return received_at if mapped is None else min(mapped, received_at)

    def note_boot(self, now: datetime) -> None:
        """A BootNotification: the clock may have been reset, the offset is measured anew."""
        self.booted_at = now
        self.clock_estimate.reset()
        for c in self.connectors.values():  # its clock may be another now: our clock judges what is late
            c.measured.draw_ended_stamp = None
        self.ended_ids.clear()  # its transaction ids may start again

    def connector(self, connector_id: int) -> ConnectorState:
        if connector_id not in self.connectors:
            self.connectors[connector_id] = ConnectorState()
        return self.connectors[connector_id]

    def transaction(self, connector_id: int) -> Transaction | None:
        c = self.connectors.get(connector_id)
        return c.transaction if c is not None else None

    def find_transaction(self, transaction_id: int | str) -> Transaction | None:
        for c in self.connectors.values():
            if c.transaction is not None and str(c.transaction.transaction_id) == str(transaction_id):
                return c.transaction
        return None

    def phases_in_use(self, connector_id: int = 1) -> int | None:
        c = self.connectors.get(connector_id)
        return c.measured.phases_in_use() if c is not None else None

    def note_meter_values(self, connector_id: int) -> None:
        """After meter values: remember the phases the transaction's EV draws on, and the energy
        register at its start where the charger did not say (2.0.1, or a session restored after a
        restart: then energy counts from the first reading we see)."""
        c = self.connector(connector_id)
        tx = c.transaction
        since = None if tx is None else tx.started_at if tx.seen_at is None else min(tx.started_at, tx.seen_at)
        detected = c.measured.phases_in_use(since)
        if tx is not None and detected is not None:
            tx.phases_in_use = detected
        register = c.measured.energy_wh
        if tx is not None and register is not None:
            # 2.0.1 has no meterStart, and an EV may announce its need before the first energy
            # reading: the first reading of the transaction stands in for both
            if tx.meter_start_wh is None:
                tx.meter_start_wh = register.value
            if tx.energy_need_kwh is not None and tx.energy_need_at_wh is None:
                tx.energy_need_at_wh = register.value


def vehicle_for_tag(site: Site, id_tag: str | None) -> Vehicle | None:
    if id_tag is None:
        return None
    for v in site.vehicles:
        if id_tag in v.id_tags:
            return v
    return None


# --- meter values (1.6 and 2.0.1 share the shape closely enough) -----------------------------

_MEASURANDS = {
    "Current.Import": "current",
    "Power.Active.Import": "power",
    "Energy.Active.Import.Register": "energy",
    "SoC": "soc",
}
_MULTIPLIER_UNITS = {"kW": ("W", 1000.0), "kWh": ("Wh", 1000.0), "W": ("W", 1.0), "Wh": ("Wh", 1.0)}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def apply_meter_values(
    measured: Measured,
    meter_values: Iterable[Mapping[str, Any]],
    received_at: datetime,
    clock: ClockOffset | None = None,
) -> int:
    """Fold snake_case meter values (as the ``ocpp`` handlers get them) into ``measured``.

    Returns how many sampled values were used. Unknown measurands and non-numeric values are
    skipped; ``Current.Import`` without a phase goes to ``current_unphased_a`` (not a phase). Each timestamp feeds
    ``clock`` (the charger's offset estimate; without one, a fresh estimate for this message
    only) and each reading's ``at`` is its timestamp mapped to our clock, at most
    ``received_at``; older samples never overwrite newer ones.
    """
    clock = clock if clock is not None else ClockOffset()
    batch = list(meter_values)
    stamps: list[datetime | None] = []
    for mv in batch:
        try:
            stamp: datetime | None = from_ocpp(str(mv.get("timestamp")))
        except ValueError:
            stamp = None
        stamps.append(stamp)
        if stamp is not None:
            clock.observe(stamp, received_at)
    used = 0
    for mv, stamp in zip(batch, stamps, strict=True):
        mapped = clock.to_ours(stamp) if stamp is not None else None
        at = received_at if mapped is None else min(mapped, received_at)
        for sv in mv.get("sampled_value", []) or []:
            kind = _MEASURANDS.get(str(sv.get("measurand", "Energy.Active.Import.Register")))
            value = _number(sv.get("value"))
            if kind is None or value is None:
                continue
            unit = sv.get("unit")
            multiplier = 1.0
            uom = sv.get("unit_of_measure")
            if isinstance(uom, Mapping):
                unit = uom.get("unit", unit)
                multiplier = 10.0 ** float(uom.get("multiplier", 0) or 0)
            value *= multiplier
            if unit in _MULTIPLIER_UNITS:
                value *= _MULTIPLIER_UNITS[str(unit)][1]
            phase = str(sv.get("phase", ""))
            reading = Reading(value, at, stamp)
            if kind in ("current", "power") and measured.before_draw_ended(at, stamp, received_at):
                continue  # what a stopped transaction drew, sent late: not a reading of now
            if kind == "current":
                name = phase.split("-")[0]
                if name in PHASE_NAMES:
                    idx = PHASE_NAMES.index(name)
                    old = measured.current_a[idx]
                    if old is None or old.at <= at:
                        measured.current_a[idx] = reading
                        used += 1
                elif not phase:
                    prev = measured.current_unphased_a
                    if prev is None or prev.at <= at:
                        measured.current_unphased_a = reading
                        used += 1
                continue
            if phase and kind != "soc":
                continue  # per-phase power/energy: the totals are enough
            attr = {"power": "power_w", "energy": "energy_wh", "soc": "soc_pct"}[kind]
            old_r: Reading | None = getattr(measured, attr)
            if old_r is None or old_r.at <= at:
                setattr(measured, attr, reading)
                used += 1
    return used
