"""A simulated charge point (OCPP 1.6J or 2.0.1 client) driving an EV model.

``SimCharger(SimOptions(...))`` connects to a central system, boots, and from then on: keeps the
profiles it is sent (real semantics, :mod:`hil.chargers.composite`), computes its composite limit
over time, lets a plugged-in EV (:mod:`hil.ev`) draw ``min(composite, EV max)``, and reports meter
values at the interval the central system configured. ``keep_connected`` reconnects after a lost
link (bounded back-off), ``announce_needs`` sends the 2.0.1 NotifyEVChargingNeeds, ``leave`` ends
a session while the link is down.

The charger has its own clock (:meth:`SimCharger.charger_now`: the injected clock + an offset + a
drift): every timestamp it sends and every judgement of a profile uses it. Hostile behaviours,
each selectable per charger (:class:`SimOptions`; the defaults are the spec's worst case where the
field differs): clock ahead/behind/drifting; W limits turned into A by the phases the EV actually
uses, and (``w_voltage_v``) by a wrong voltage — a 208 V line-to-line charger dividing by 120 V;
a line-to-line charger's current reported on both lines, as ``L1-L2``, on L1 only or without a
phase (``ll_current_report``); the end of a schedule (fall back vs hold the last period); rejecting every profile;
accepting but ignoring limits; slow, late or missing answers to SetChargingProfile; a reboot that
loses every profile (:meth:`SimCharger.reboot`), or losing them on every reconnect; every quirk in
the site schema's ``KNOWN_QUIRKS``; dropping the link. The EV (:mod:`hil.ev`) reacts to every
change of the offered limit (down and up) after its own ``reaction_s``, counted from the moment
the charger changed the offer. :meth:`SimCharger.allowed_a` tells a safety monitor what the
charger lets its EV draw now by its own rules.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from hil.chargers.composite import (
    Composite,
    ProfileStore,
    RunningTx,
    ScheduleEnd,
    SimProfile,
    WConversion,
    composite_schedule,
    format_time,
)
from hil.ev import EvParams, EvState, grid_currents, step
from hil.ocpp_schema import FrameValidator

LOG = logging.getLogger("hil.chargers")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


ALL_MEASURANDS = ("Current.Import", "Power.Active.Import", "Energy.Active.Import.Register", "SoC")
LineToLineReport = Literal["both_lines", "line_pair", "first_line", "no_phase"]
"""How a line-to-line charger reports its current in ``Current.Import`` (see :class:`SimOptions`)."""


@dataclass
class SimOptions:
    """How one simulated charger behaves. Apart from ``charger_id``, ``version``, ``connectors``
    and ``password``, every field is read live: a test may change one while the charger runs
    (call :meth:`SimCharger.update` first, so the EV's past is computed under the old rules)."""

    charger_id: str
    version: str = "1.6"
    max_a: float = 32.0
    phases: int = 3
    voltage_v: float = 230.0
    connectors: int = 1
    quirks: frozenset[str] = frozenset()
    reject_profiles: bool = False
    """Answer every SetChargingProfile with Rejected (a charger without smart charging)."""
    slow_answer_s: float = 0.0
    """Delay before answering SetChargingProfile (the receive loop waits, as on slow firmware)."""
    tick_s: float = 0.2
    meter_interval_s: float | None = None
    """Fixed meter interval; ``None`` = whatever the central system configures (default 60 s)."""
    password: str | bytes | None = None
    unsupported_measurands: frozenset[str] = frozenset()
    max_stack_level: int = 8
    max_periods: int = 24
    validate_messages: bool = True
    """False: skip JSON-schema validation on the charger side (benchmarks: real chargers are fast)."""
    vendor: str = "depotctl-hil"
    model: str = "SimCharger"
    # --- hostile behaviours (each judged on the charger's own clock) ---------------------------
    clock_offset_s: float = 0.0
    """The charger's clock minus the injected clock at start [s]: > 0 ahead, < 0 behind. May be
    changed while running (a clock set by hand); :meth:`SimCharger.reboot` can reset it."""
    clock_drift_ppm: float = 0.0
    """How fast the charger's clock runs off [µs per s]: after ``t`` s it is ``t·ppm/1e6`` s further off."""
    schedule_end: ScheduleEnd = "fall_back"
    """When a schedule's ``duration`` is over: ``"fall_back"`` to the next valid profile (spec), or
    ``"hold_last"``: keep applying its last period (seen in the field) until ``validTo``. The quirk
    ``holds_last_limit`` in ``quirks`` means ``"hold_last"`` whatever this says."""
    w_conversion: WConversion = "phases_in_use"
    """W → A per phase: divide by the phases the EV actually uses (field truth; a 1-phase EV given
    11040 W takes 48 A on its phase), or ``"number_phases"``: by the period's ``numberPhases``
    (default 3), which only some firmwares do."""
    ignore_limits: bool = False
    """Accept every profile (and report it in GetCompositeSchedule) but let the EV draw as if there
    were none: its own maximum, up to the charger's ``max_a``."""
    late_answer_s: float = 0.0
    """Apply a SetChargingProfile at once but send the answer this much later (the receive loop
    goes on; the central system's call may time out although the profile is in force)."""
    never_answer_profiles: bool = False
    """Apply a SetChargingProfile (if it would be accepted) but never answer it: the central
    system's call times out; the worst case, spec-wise, is that the profile is in force."""
    lose_profiles_on_reconnect: bool = False
    """Every (re)connect after the first starts with no profile at all (firmware that keeps them
    in RAM only)."""
    late_meter_values: bool = False
    """After a transaction's stop, one more meter value of it, taken just before the stop (the EV
    still drawing) and sent after it — firmware that flushes its meter queue late (1.6:
    MeterValues naming the transaction; 2.0.1: a TransactionEvent Updated with the seqNo before
    the Ended's)."""
    resume_after_reboot: bool = True
    """After :meth:`SimCharger.reboot`, an EV still plugged in starts a new transaction at once
    (plug-and-charge / cached authorisation), before any profile was re-installed."""
    # --- line-to-line chargers (North American Level 2: 208 V or 240 V between two lines) ------
    line_to_line: bool = False
    """A single-phase charger between two lines (``phases`` 1, ``voltage_v`` the line-to-line
    voltage): its EV's one current flows out on the charger's L1 and back on its L2, so both carry
    it (:meth:`SimCharger.draw_a`, :meth:`SimCharger.allowed_a`); an A limit is that current, a W
    limit is divided by the line-to-line voltage."""
    ll_current_report: LineToLineReport = "both_lines"
    """How a line-to-line charger reports ``Current.Import``: ``"both_lines"`` (phase ``L1`` and
    ``L2``, each with the current: what the spec's phase means — the current on that line),
    ``"line_pair"`` (one value with phase ``L1-L2``, seen in the field), ``"first_line"`` (``L1``
    only: firmware written for line-to-neutral chargers, also seen; nothing is said about L2) or
    ``"no_phase"`` (one value without a phase — the spec's "overall value", common on
    single-phase firmware). The last two are the worst a central system gets."""
    w_voltage_v: float | None = None
    """The voltage the firmware divides a W limit by, per phase in use (and reports W schedules
    with); ``None``: its real ``voltage_v``. Seen in the field on 208 V line-to-line chargers:
    ``120`` (the voltage to neutral: 1.73 × the current the W meant — the worst), ``230``
    (European firmware) or ``240`` (the split-phase nominal)."""


@dataclass
class Connector:
    connector_id: int
    ev: EvParams | None = None
    ev_state: EvState | None = None
    id_tag: str | None = None
    tx: RunningTx | None = None
    stuck_at_zero: bool = False
    energy_wh: float = 0.0
    seq_no: int = 0
    phases_used: int | None = None
    """Phases the EV draws on as of the last update (``None``: not yet updated)."""
    remote_tag: str | None = None
    """An id tag of a remote start accepted before an EV was plugged in (used at the plug-in)."""
    remote_start_id: int | None = None
    """2.0.1: the ``remoteStartId`` of the remote start that began (or will begin) the transaction."""
    starting: bool = False
    """A transaction is being started (Authorize / StartTransaction in flight)."""
    stopping: bool = False
    """Its transaction's stop is on its way: for the charger the transaction is over (a remote
    stop of it now is rejected), though the answer has not come yet."""


@dataclass
class SimRecord:
    """What tests look at."""

    profiles_received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    profile_answers: list[str] = field(default_factory=list)
    config_changes: list[tuple[str, str, str]] = field(default_factory=list)
    calls_received: list[str] = field(default_factory=list)
    answers_withheld: list[str] = field(default_factory=list)
    """Unique ids of calls the charger never answered (``never_answer_profiles``)."""
    answers_delayed: list[str] = field(default_factory=list)
    """Unique ids of calls answered late (``late_answer_s``)."""
    reboots: int = 0


class SimCharger:
    def __init__(
        self, options: SimOptions, clock: Clock = _utc_now, frame_hook: Callable[[str, str | bytes], None] | None = None
    ) -> None:
        self.o = options
        self.clock = clock
        self.frame_hook = frame_hook
        self.validator: FrameValidator | None = None
        self.store = ProfileStore(
            options.voltage_v,
            "ignores_charge_point_max" in options.quirks,
            schedule_end="hold_last" if "holds_last_limit" in options.quirks else options.schedule_end,
            w_conversion=options.w_conversion,
        )
        self.connectors = {i: Connector(i) for i in range(1, options.connectors + 1)}
        self.config: dict[str, str] = {
            "MeterValueSampleInterval": "60",
            "MeterValuesSampledData": "Energy.Active.Import.Register",
        }
        self.record = SimRecord()
        self.ws: ClientConnection | None = None
        self.cp: Any = None
        self.booted = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._tx_messages = asyncio.Lock()
        """Held while a transaction's meter values or its stop are built and sent: the charger
        sends them in the order it stamps them (the ``ocpp`` package validates each call in a
        thread before taking its call slot, so two calls begun together may leave in either order —
        a meter value of a transaction after its stop, which a CSMS flags)."""
        self._t0 = clock()
        self._tx_counter = 0
        self._url: str | None = None
        self._connect_kw: dict[str, Any] = {}
        self._connects = 0
        self._keeping = False
        self._powered = asyncio.Event()
        self._powered.set()

    # --- time & physics -----------------------------------------------------------------------
    def t_s(self) -> float:
        """Physical time since the sim was made [s], on the injected (true) clock."""
        return (self.clock() - self._t0).total_seconds()

    def _charger_time(self, true_now: datetime) -> datetime:
        elapsed_s = (true_now - self._t0).total_seconds()
        return true_now + timedelta(seconds=self.o.clock_offset_s + self.o.clock_drift_ppm * 1e-6 * elapsed_s)

    def charger_now(self) -> datetime:
        """The charger's own clock: the injected clock + ``clock_offset_s`` + the drift so far."""
        return self._charger_time(self.clock())

    def schedule_end(self) -> ScheduleEnd:
        """What it does when a schedule's ``duration`` is over: ``schedule_end``, or ``"hold_last"``
        with the quirk ``holds_last_limit`` (the site file's name for that behaviour)."""
        return "hold_last" if "holds_last_limit" in self.o.quirks else self.o.schedule_end

    def w_voltage_v(self) -> float:
        """The voltage its firmware converts W limits with [V] (``w_voltage_v``, else ``voltage_v``)."""
        return self.o.w_voltage_v if self.o.w_voltage_v is not None else self.o.voltage_v

    def _on_lines(self, a: float, phases: int) -> tuple[float, float, float]:
        """A current per phase in use on the charger's own L1..L3: a line-to-line charger's one
        current is on its L1 and its L2."""
        if self.o.line_to_line:
            return (a, a, 0.0)
        return (a, a if phases >= 2 else 0.0, a if phases >= 3 else 0.0)

    def _share(self) -> int:
        """Connectors sharing a ChargePointMax: those with a transaction (at least 1)."""
        return max(1, sum(1 for c in self.connectors.values() if c.tx is not None))

    def _ev_phases(self, c: Connector) -> int:
        """Phases the EV could use on this charger (its own, at most the charger's)."""
        return min(c.ev.phases, self.o.phases) if c.ev is not None else self.o.phases

    def _composite_at(self, c: Connector, true_now: datetime) -> Composite:
        st = self.store  # the options may be changed while running
        st.schedule_end, st.w_conversion, st.voltage_v = self.schedule_end(), self.o.w_conversion, self.w_voltage_v()
        st.ignores_charge_point_max = "ignores_charge_point_max" in self.o.quirks
        return st.composite(self._charger_time(true_now), c.connector_id, c.tx, self._ev_phases(c), self._share())

    def composite(self, connector_id: int = 1) -> Composite:
        """The connector's composite now, as the charger holds it (its clock, the EV's phases)."""
        return self._composite_at(self.connectors[connector_id], self.clock())

    def composite_a(self, connector_id: int = 1) -> float | None:
        """The composite limit the charger holds now [A per phase on the phases in use], ``None`` =
        no valid profile. What it *reports*: with ``ignore_limits`` the EV does not follow it."""
        return self.composite(connector_id).limit_a

    def _offer_at(self, c: Connector, true_now: datetime) -> tuple[float | None, int]:
        """(What the charger offers the EV [A per phase], phases in use) at ``true_now``, without
        side effects; ``None`` = no transaction, nothing offered."""
        comp = self._composite_at(c, true_now)
        if c.tx is None:
            return None, comp.phases
        if self.o.ignore_limits or comp.limit_a is None:
            offered = self.o.max_a
        else:
            offered = max(0.0, min(comp.limit_a, self.o.max_a))
        if "no_resume_after_zero" in self.o.quirks and (c.stuck_at_zero or offered < 6.0):
            offered = 0.0
        return offered, comp.phases

    def offered_a(self, connector_id: int = 1) -> float:
        """What the charger offers the EV now [A per phase] (PWM), after the hardware max."""
        c = self.connectors[connector_id]
        comp = self.composite(connector_id)
        limit = None if self.o.ignore_limits else comp.limit_a
        offered = self.o.max_a if limit is None else min(limit, self.o.max_a)
        if "no_resume_after_zero" in self.o.quirks and c.tx is not None and (c.stuck_at_zero or offered < 6.0):
            offered = 0.0
        return offered

    def allowed_a(self, connector_id: int = 1) -> tuple[float, float, float]:
        """What the charger lets its EV draw now by its own rules, per *charger* phase L1..L3 [A]:
        its composite on its own clock, converted by the phases in use, capped at ``max_a``; no valid
        profile (or ``ignore_limits``) → ``max_a`` on each phase the EV uses. Zero without an EV in a
        transaction. Pure: nothing is advanced; the EV follows after its reaction time."""
        c = self.connectors[connector_id]
        if c.ev is None:
            return (0.0, 0.0, 0.0)
        offered, phases = self._offer_at(c, self.clock())
        return self._on_lines(offered or 0.0, phases)

    def _ev_for(self, c: Connector, phases: int) -> EvParams:
        assert c.ev is not None
        return c.ev if c.ev.phases == phases else replace(c.ev, phases=phases)

    def update(self) -> None:
        """Advance every EV to now. A change of the offer since the last update is dated to the
        moment it happened (found by bisection to the µs), so the EV's reaction time runs from then."""
        now = self.clock()
        t = self.t_s()
        for c in self.connectors.values():
            if c.ev is None or c.ev_state is None:
                continue
            state = c.ev_state
            before = state.energy_kwh
            offer, phases = self._offer_at(c, now)
            if offer != state.offered_a and t > state.t_s:
                # on the µs grid of the clocks: the first µs at which the offer differs
                lo, hi = round(state.t_s * 1e6), round(t * 1e6)
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if self._offer_at(c, self._t0 + timedelta(microseconds=mid))[0] != state.offered_a:
                        hi = mid
                    else:
                        lo = mid
                if hi / 1e6 < t:
                    at_offer, at_phases = self._offer_at(c, self._t0 + timedelta(microseconds=hi))
                    state = step(self._ev_for(c, at_phases), state, hi / 1e6, at_offer)
            state = step(self._ev_for(c, phases), state, t, offer)
            if "no_resume_after_zero" in self.o.quirks and c.tx is not None and offer is not None and offer < 6.0:
                c.stuck_at_zero = True
            c.ev_state, c.phases_used = state, phases
            c.energy_wh += (state.energy_kwh - before) * 1000.0

    def phases_in_use(self, connector_id: int = 1) -> int:
        """Phases the EV on this connector draws on (0 without an EV)."""
        c = self.connectors[connector_id]
        if c.ev is None:
            return 0
        return c.phases_used if c.phases_used is not None else self._ev_phases(c)

    def draw_a(self, connector_id: int = 1) -> tuple[float, float, float]:
        c = self.connectors[connector_id]
        if c.ev is None or c.ev_state is None:
            return (0.0, 0.0, 0.0)
        if self.o.line_to_line:
            return self._on_lines(c.ev_state.draw_a, 1)
        return grid_currents(self._ev_for(c, self.phases_in_use(connector_id)), c.ev_state)

    def sample(self, connector_id: int) -> dict[str, float]:
        """Measurand → value for the meter values (names as in OCPP)."""
        self.update()
        c = self.connectors[connector_id]
        cur = self.draw_a(connector_id)
        if self.o.line_to_line:
            out = self._line_to_line_currents(cur[0])
            out["Power.Active.Import"] = cur[0] * self.o.voltage_v
        else:
            out = {f"Current.Import.{ph}": cur[i] for i, ph in enumerate(("L1", "L2", "L3")[: self.o.phases])}
            out["Power.Active.Import"] = sum(cur) * self.o.voltage_v
        out["Energy.Active.Import.Register"] = c.energy_wh
        if c.ev_state is not None:
            out["SoC"] = c.ev_state.soc_pct
        return out

    def _line_to_line_currents(self, a: float) -> dict[str, float]:
        mode = self.o.ll_current_report
        if mode == "line_pair":
            return {"Current.Import.L1-L2": a}
        if mode == "first_line":
            return {"Current.Import.L1": a}
        if mode == "no_phase":
            return {"Current.Import": a}
        return {"Current.Import.L1": a, "Current.Import.L2": a}

    def composite_periods(
        self, connector_id: int, start: datetime, duration_s: int, unit: str | None = "A"
    ) -> list[tuple[int, float]]:
        """The composite limit from ``start`` (charger's clock) on, as the charger would report it
        (A per phase, or W over the phases in use). With ``ignore_limits`` it still reports the profiles."""
        c = self.connectors[connector_id]
        phases = self.composite(connector_id).phases
        periods = composite_schedule(
            self.store, start, duration_s, connector_id, c.tx, self.o.max_a, phases=phases, cp_max_share=self._share()
        )
        if unit == "W":
            return [(o, round(v * self.w_voltage_v() * phases, 1)) for o, v in periods]
        return periods

    # --- profile acceptance (quirks and misbehaviour) -----------------------------------------
    def check_profile(self, p: SimProfile) -> str:
        q = self.o.quirks
        if self.o.reject_profiles:
            return "Rejected"
        if "stack_level_zero_only" in q and p.stack_level != 0:
            return "Rejected"
        if p.stack_level > self.o.max_stack_level:
            return "Rejected"
        if "txdefault_on_connector_0" in q and p.purpose == "TxDefaultProfile" and p.connector_id != 0:
            return "Rejected"
        if "relative_profiles" in q and p.kind != "Relative":
            return "Rejected"
        if "power_only" in q and p.unit != "W":
            return "Rejected"
        if "no_zero_limit" in q and any(limit == 0 for _, limit, _ in p.periods):
            return "Rejected"
        if len(p.periods) > self.o.max_periods or not p.periods or p.periods[0][0] != 0:
            return "Rejected"
        if p.purpose == "ChargePointMaxProfile" and p.connector_id != 0:
            return "Rejected"
        if p.connector_id not in (0, *self.connectors):
            return "Rejected"
        if p.kind == "Absolute" and p.start_schedule is None and self.o.version != "1.6":
            return "Rejected"
        if p.purpose == "TxProfile":
            c = self.connectors.get(p.connector_id)
            if c is None or c.tx is None:
                return "Rejected"
            if p.transaction_id is not None and p.transaction_id != c.tx.transaction_id:
                return "Rejected"
        return "Accepted"

    async def answer_profile(self, p: SimProfile, raw: dict[str, Any]) -> str:
        """Judge and install a SetChargingProfile; the status to answer (whether and when the answer
        goes out is the protocol side's affair: ``late_answer_s``, ``never_answer_profiles``)."""
        self.record.profiles_received.append((p.purpose, raw))
        if self.o.slow_answer_s:
            await asyncio.sleep(self.o.slow_answer_s)
        status = self.check_profile(p)
        if status == "Accepted":
            self.update()  # the EV up to now under the old profiles
            self.store.install(replace(p, installed_at=self.charger_now()))
            self.update()  # the EV sees the new offer now; it reacts after its reaction time
        self.record.profile_answers.append(status)
        return status

    def clear_profiles(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> int:
        """ClearChargingProfile: how many were removed."""
        self.update()
        n = self.store.clear(profile_id, connector_id, purpose, stack_level)
        self.update()
        return n

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of the current link (cancelled by :meth:`close`)."""
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def answer_delay(self) -> float | None:
        """How long after installing a SetChargingProfile its answer goes out [s]; ``None`` = never."""
        if self.o.never_answer_profiles:
            return None
        return max(0.0, self.o.late_answer_s)

    def change_config(self, key: str, value: str) -> str:
        if key == "MeterValueSampleInterval":
            try:
                if int(value) < 0:
                    raise ValueError
            except ValueError:
                return "Rejected"
        elif key == "MeterValuesSampledData":
            items = [v.strip() for v in value.split(",") if v.strip()]
            if any(m not in ALL_MEASURANDS or m in self.o.unsupported_measurands for m in items):
                return "Rejected"
        elif key not in self.config:
            return "NotSupported"
        self.config[key] = value
        self.record.config_changes.append((key, value, "Accepted"))
        return "Accepted"

    def meter_interval(self) -> float:
        if self.o.meter_interval_s is not None:
            return self.o.meter_interval_s
        try:
            return max(0.1, float(self.config["MeterValueSampleInterval"]))
        except ValueError:
            return 60.0

    def measurands(self) -> list[str]:
        return [m.strip() for m in self.config["MeterValuesSampledData"].split(",") if m.strip()]

    # --- connection ---------------------------------------------------------------------------
    async def connect(
        self, url: str, *, ssl_context: ssl.SSLContext | None = None, boot: bool = True, timeout_s: float = 5.0
    ) -> None:
        headers = {}
        if self.o.password is not None:
            pw = self.o.password.encode() if isinstance(self.o.password, str) else self.o.password
            token = base64.b64encode(self.o.charger_id.encode() + b":" + pw).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        self._url, self._connect_kw = url, {"ssl_context": ssl_context, "timeout_s": timeout_s}
        if self.validator is not None:
            self.validator.reset()  # a new connection: nothing is pending on it
        if self.o.lose_profiles_on_reconnect and self._connects > 0:
            self.update()
            self.store.profiles.clear()
            self.update()
        self._connects += 1
        proto = Subprotocol("ocpp2.0.1" if self.o.version == "2.0.1" else "ocpp1.6")
        self.ws = await connect(
            f"{url.rstrip('/')}/{self.o.charger_id}",
            subprotocols=[proto],
            additional_headers=headers,
            ssl=ssl_context,
            open_timeout=timeout_s,
            close_timeout=1,
            ping_interval=None,
            max_size=2**20,
        )
        from hil.chargers.protocol import make_protocol

        self.cp = make_protocol(self, self.ws)
        self._tasks = [asyncio.create_task(self._run_cp()), asyncio.create_task(self._tick_loop())]
        if boot:
            await asyncio.wait_for(self.cp.boot(), timeout_s)
        self.booted.set()
        self._tasks.append(asyncio.create_task(self._meter_loop()))
        for c in self.connectors.values():
            await asyncio.wait_for(self.cp.status(c.connector_id, "Preparing" if c.ev else "Available"), timeout_s)

    async def _run_cp(self) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            await self.cp.start()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.o.tick_s)
            self.update()

    async def _meter_loop(self) -> None:
        last = self.t_s()
        while True:
            await asyncio.sleep(min(self.meter_interval(), 1.0))
            if self.t_s() - last < self.meter_interval() - 1e-3:
                continue  # the interval may have been reconfigured while sleeping
            last = self.t_s()
            for c in self.connectors.values():
                try:
                    async with self._tx_messages:
                        if c.tx is None:
                            continue
                        await self.cp.meter_values(c.connector_id, self.sample(c.connector_id))
                except ConnectionClosed:
                    return
                except Exception:
                    LOG.exception("%s: meter values failed", self.o.charger_id)

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            # asyncio.wait, not ``await t`` under suppress(CancelledError): that would also swallow
            # a cancellation of the caller (e.g. a keep_connected task being stopped)
            await asyncio.wait(tasks, timeout=2.0)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        self.booted.clear()

    async def drop_link(self) -> None:
        """Cut the TCP connection without a close handshake (a pulled cable)."""
        if self.ws is not None:
            self.ws.transport.abort()
        await self.close()

    def connected(self) -> bool:
        return self.ws is not None and self.ws.state.name == "OPEN"

    async def keep_connected(
        self,
        url: str,
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 2.0,
        timeout_s: float = 5.0,
        slots: asyncio.Semaphore | None = None,
        on_change: Callable[[bool], None] | None = None,
        **connect_kw: Any,
    ) -> None:
        """Stay connected until cancelled, as a real charge point does: when the link is lost (the
        central system restarted, ``drop_link``), reconnect and boot again with an exponential
        back-off from ``backoff_initial_s`` to at most ``backoff_max_s`` [s]. After a reconnect,
        connectors with a running transaction report ``Charging`` again. ``slots`` bounds how many
        chargers connect at once; ``on_change(True/False)`` reports each link coming up or going.
        """
        self._keeping = True
        try:
            await self._keep_connected(url, backoff_initial_s, backoff_max_s, timeout_s, slots, on_change, connect_kw)
        finally:
            self._keeping = False

    async def _keep_connected(
        self,
        url: str,
        backoff_initial_s: float,
        backoff_max_s: float,
        timeout_s: float,
        slots: asyncio.Semaphore | None,
        on_change: Callable[[bool], None] | None,
        connect_kw: dict[str, Any],
    ) -> None:
        delay = backoff_initial_s
        while True:
            if not (self.connected() and self.booted.is_set()):
                await self.close()  # tasks of a dead link
                await self._powered.wait()  # not while rebooting
                try:
                    if slots is None:
                        await self.connect(url, timeout_s=timeout_s, **connect_kw)
                    else:
                        async with slots:
                            await self.connect(url, timeout_s=timeout_s, **connect_kw)
                    for c in self.connectors.values():
                        if c.tx is not None:
                            await asyncio.wait_for(self.cp.status(c.connector_id, "Charging"), timeout_s)
                except Exception as exc:  # refused, handshake rejected, boot timed out: try again later
                    LOG.debug("%s: connect failed (%r), retry in %.1f s", self.o.charger_id, exc, delay)
                    await self.close()
                    await asyncio.sleep(delay)
                    delay = min(backoff_max_s, delay * 2.0)
                    continue
                delay = backoff_initial_s
                if on_change is not None:
                    on_change(True)
            ws = self.ws
            if ws is not None:
                await ws.wait_closed()
            if on_change is not None:
                on_change(False)
            await asyncio.sleep(backoff_initial_s)  # not in the same instant (lets a drop_link finish closing)

    # --- frame validation ---------------------------------------------------------------------
    def validate_frames(self) -> FrameValidator:
        """Check every frame this charger receives against the OCPP JSON schemas of its version
        (:mod:`hil.ocpp_schema`; frames it sends are noted to match the answers): the returned
        validator's ``violations``. Chains with a ``frame_hook`` given; idempotent."""
        if self.validator is None:
            validator = self.validator = FrameValidator(self.o.version)
            previous = self.frame_hook

            def hook(direction: str, raw: str | bytes) -> None:
                validator.feed(direction, raw)
                if previous is not None:
                    previous(direction, raw)

            self.frame_hook = hook
        return self.validator

    # --- EV sessions --------------------------------------------------------------------------
    async def plug_in(
        self,
        ev: EvParams,
        soc_pct: float = 20.0,
        id_tag: str = "TAG",
        connector_id: int = 1,
        timeout_s: float = 5.0,
        *,
        start: bool = True,
    ) -> None:
        """Plug an EV in and start a transaction with ``id_tag`` (Authorize first); ``start=False``:
        only plug it in (Preparing) and wait for a remote start. A remote start accepted before
        the plug-in starts the transaction now, with its tag, without Authorize."""
        c = self.connectors[connector_id]
        self.update()
        c.ev, c.ev_state, c.id_tag, c.stuck_at_zero = ev, EvState(self.t_s(), soc_pct), id_tag, False
        c.phases_used = None
        if c.remote_tag is not None:
            c.id_tag, c.remote_tag = c.remote_tag, None
            await self._start_transaction(c, timeout_s, authorize=False)
        elif start:
            await self._start_transaction(c, timeout_s)
        else:
            await asyncio.wait_for(self.cp.status(c.connector_id, "Preparing"), timeout_s)

    # --- remote start / stop (from the central system) ------------------------------------------
    def _remote_connector(self, connector_id: int | None) -> Connector | None:
        if connector_id is not None:
            return self.connectors.get(connector_id)
        free = [c for c in self.connectors.values() if c.tx is None]
        return next((c for c in free if c.ev is not None), free[0] if free else None)

    def remote_start_status(self, connector_id: int | None) -> str:
        """The answer to RemoteStartTransaction / RequestStartTransaction: Rejected when the
        connector is unknown or has a transaction already."""
        c = self._remote_connector(connector_id)
        busy = c is None or c.tx is not None or c.starting or c.remote_tag is not None
        return "Rejected" if busy else "Accepted"

    async def remote_started(
        self, id_tag: str, connector_id: int | None, remote_start_id: int | None = None, timeout_s: float = 5.0
    ) -> None:
        """After accepting a remote start: start now if an EV is plugged in (no Authorize, as with
        ``AuthorizeRemoteTxRequests`` false), else when one is (:meth:`plug_in`)."""
        c = self._remote_connector(connector_id)
        if c is None or c.tx is not None:
            return
        c.remote_start_id = remote_start_id
        if c.ev is None:
            c.remote_tag = id_tag
            return
        c.id_tag = id_tag
        await self._start_transaction(c, timeout_s, authorize=False)

    def _tx_connector(self, transaction_id: str) -> Connector | None:
        return next((c for c in self.connectors.values() if c.tx and c.tx.transaction_id == transaction_id), None)

    def remote_stop_status(self, transaction_id: str) -> str:
        c = self._tx_connector(transaction_id)
        return "Accepted" if c is not None and not c.stopping else "Rejected"

    async def remote_stopped(self, transaction_id: str, timeout_s: float = 5.0) -> None:
        """After accepting a remote stop: end the transaction (reason Remote); the EV stays
        plugged in (Finishing) until :meth:`unplug`."""
        c = self._tx_connector(transaction_id)
        if c is None:
            return
        self.update()
        async with asyncio.timeout(timeout_s), self._tx_messages:
            if c.tx is None or c.tx.transaction_id != transaction_id:
                return  # ended meanwhile (unplugged)
            await self._stop(c, reason="Remote")
            c.tx, c.remote_start_id = None, None
        self.update()
        await asyncio.wait_for(self.cp.status(c.connector_id, "Finishing"), timeout_s)

    async def triggered(self, message: str, connector_id: int | None, timeout_s: float = 5.0) -> None:
        """After accepting a TriggerMessage: send the message asked for."""
        targets = [connector_id] if connector_id in self.connectors else list(self.connectors)
        if message == "Heartbeat":
            await asyncio.wait_for(self.cp.heartbeat(), timeout_s)
        for cid in targets if message in ("StatusNotification", "MeterValues") else []:
            c = self.connectors[cid]
            if message == "StatusNotification":
                status = "Charging" if c.tx else ("Preparing" if c.ev else "Available")
                await asyncio.wait_for(self.cp.status(cid, status), timeout_s)
            elif c.tx is not None:
                await asyncio.wait_for(self.cp.meter_values(cid, self.sample(cid)), timeout_s)

    async def _start_transaction(self, c: Connector, timeout_s: float, *, authorize: bool = True) -> None:
        c.starting = True
        try:
            await self._start_transaction_now(c, timeout_s, authorize)
        finally:
            c.starting = False

    async def _start_transaction_now(self, c: Connector, timeout_s: float, authorize: bool) -> None:
        assert c.id_tag is not None
        await asyncio.wait_for(self.cp.status(c.connector_id, "Preparing"), timeout_s)
        if authorize:
            await asyncio.wait_for(self.cp.authorize(c.id_tag), timeout_s)
        started = self.charger_now()
        tx_id = await asyncio.wait_for(self.cp.start_transaction(c, started), timeout_s)
        self.update()
        c.tx = RunningTx(str(tx_id), started)
        self.update()
        await asyncio.wait_for(self.cp.status(c.connector_id, "Charging"), timeout_s)

    async def unplug(self, connector_id: int = 1, timeout_s: float = 5.0) -> None:
        c = self.connectors[connector_id]
        self.update()
        async with asyncio.timeout(timeout_s), self._tx_messages:
            tx, late = c.tx, (self.sample(connector_id), self.charger_now(), c.seq_no)
            if tx is not None:
                await self._stop(c)
                if self.o.late_meter_values:
                    await self.cp.late_meter_values(c, tx, *late)
            c.tx, c.ev, c.ev_state, c.phases_used, c.remote_start_id = None, None, None, None, None
        await asyncio.wait_for(self.cp.status(connector_id, "Available"), timeout_s)

    async def _stop(self, c: Connector, **kw: Any) -> None:
        """Send the connector's transaction's stop (``_tx_messages`` held); from the moment it is
        sent the transaction is over for the charger (``stopping``), and for its store after."""
        c.stopping = True
        try:
            await self.cp.stop_transaction(c, **kw)
        finally:
            c.stopping = False
        self.store.transaction_ended(c.connector_id)

    def leave(self, connector_id: int = 1) -> None:
        """The EV drives off while the link is down: the session ends here without telling anyone
        (this sim keeps no offline queue of transaction messages)."""
        c = self.connectors[connector_id]
        self.update()
        if c.tx is not None:
            self.store.transaction_ended(connector_id)
        c.tx, c.ev, c.ev_state, c.phases_used = None, None, None, None

    async def reboot(
        self,
        *,
        down_s: float = 0.0,
        reason: Literal["Reboot", "PowerLoss"] = "Reboot",
        clock_offset_s: float | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        """Reboot as real firmware does: the power goes (every EV stops drawing at once), the link
        drops, every profile is lost (the stack-0 fail-safe too), every transaction ends. After
        ``down_s`` [s] it boots again (BootNotification), reconnects (itself, or through a running
        :meth:`keep_connected`), reports each ended transaction (StopTransaction / TransactionEvent
        Ended, ``reason``, stamped with the moment the power went on its clock) and, with
        ``resume_after_reboot``, starts a new transaction for each EV still plugged in, charging
        without any profile until the central system installs one. ``clock_offset_s``: the clock
        it comes back with (e.g. reset to 2000-01-01: a large negative offset).
        """
        self.update()
        self.record.reboots += 1
        went_at = self.charger_now()
        ended: list[tuple[Connector, RunningTx]] = []
        for c in self.connectors.values():
            if c.tx is not None:
                ended.append((c, c.tx))
                c.tx = None
            if c.ev_state is not None:  # contactor open: no reaction time
                c.ev_state = replace(c.ev_state, draw_a=0.0, offered_a=None, applied_a=None, pending=())
            c.stuck_at_zero = False
        self.store.profiles.clear()
        self._powered.clear()
        try:
            if self.ws is not None:
                self.ws.transport.abort()
            await self.close()
            if down_s > 0:
                await asyncio.sleep(down_s)
            if clock_offset_s is not None:
                self.o.clock_offset_s = clock_offset_s
        finally:
            self._powered.set()
        if self._keeping:
            await asyncio.wait_for(self.booted.wait(), timeout_s + 5.0)
        else:
            if self._url is None:
                raise RuntimeError(f"{self.o.charger_id}: reboot before the first connect")
            await self.connect(self._url, **self._connect_kw)
        for c, tx in ended:
            await asyncio.wait_for(self.cp.stop_transaction(c, tx=tx, reason=reason, at=went_at), timeout_s)
        if self.o.resume_after_reboot:
            for c in self.connectors.values():
                if c.ev is not None and c.ev_state is not None and c.id_tag is not None and c.tx is None:
                    await self._start_transaction(c, timeout_s)

    async def announce_needs(
        self,
        connector_id: int = 1,
        *,
        departure: datetime | None = None,
        energy_kwh: float | None = None,
        dc: bool = False,
        timeout_s: float = 5.0,
    ) -> bool:
        """2.0.1: the EV's NotifyEVChargingNeeds (departure time, energy [kWh]) for the plugged-in EV.

        ``dc``: send DC charging parameters (max power = the EV's max current × 3 × the sim's
        voltage, a nominal 400 V battery). Returns False on 1.6 (no such message) or when the
        central system does not accept it.
        """
        c = self.connectors[connector_id]
        if self.o.version != "2.0.1" or c.ev is None:
            return False
        ev = c.ev
        needs: dict[str, Any] = {}
        if dc:
            needs["requested_energy_transfer"] = "DC"
            max_w = ev.max_a * 3 * ev.voltage_v
            dc_params: dict[str, Any] = {
                "ev_max_current": max(1, round(max_w / 400.0)),
                "ev_max_voltage": 400,
                "ev_max_power": round(max_w),
            }
            if c.ev_state is not None:
                dc_params["state_of_charge"] = max(0, min(100, round(c.ev_state.soc_pct)))
            if energy_kwh is not None:
                dc_params["energy_amount"] = round(energy_kwh * 1000.0)
            needs["dc_charging_parameters"] = dc_params
        else:
            needs["requested_energy_transfer"] = "AC_three_phase" if ev.phases == 3 else "AC_single_phase"
            if energy_kwh is not None:
                needs["ac_charging_parameters"] = {
                    "energy_amount": round(energy_kwh * 1000.0),
                    "ev_min_current": round(ev.min_a),
                    "ev_max_current": round(ev.max_a),
                    "ev_max_voltage": round(ev.voltage_v),
                }
        if departure is not None:
            needs["departure_time"] = format_time(departure)
        status = await asyncio.wait_for(self.cp.ev_needs(connector_id, needs), timeout_s)
        return bool(status == "Accepted")

    def next_tx_id(self) -> str:
        self._tx_counter += 1
        return f"{self.o.charger_id}-tx{self._tx_counter}"


async def reconnect_storm(sims: Sequence[SimCharger], url: str, *, boot: bool = True, **connect_kw: Any) -> None:
    """Every charger drops its link at once, then all reconnect at once (a depot power cut)."""
    await asyncio.gather(*(s.drop_link() for s in sims))
    await asyncio.gather(*(s.connect(url, boot=boot, **connect_kw) for s in sims))
