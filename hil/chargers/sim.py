"""A simulated charge point (OCPP 1.6J or 2.0.1 client) driving an EV model.

``SimCharger(SimOptions(...))`` connects to a central system, boots, and from then on: keeps the
profiles it is sent (real semantics, :mod:`hil.chargers.composite`), computes its composite limit
over time, lets a plugged-in EV (:mod:`hil.ev`) draw ``min(composite, EV max)``, and reports meter
values at the interval the central system configured. Misbehaviour is optional: every quirk in
the site schema's ``KNOWN_QUIRKS``, rejecting all profiles, slow answers, dropping the link.
``keep_connected`` reconnects after a lost link (bounded back-off), ``announce_needs`` sends the
2.0.1 NotifyEVChargingNeeds, ``leave`` ends a session while the link is down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from hil.chargers.composite import ProfileStore, RunningTx, SimProfile, composite_schedule, format_time
from hil.ev import EvParams, EvState, grid_currents, step

LOG = logging.getLogger("hil.chargers")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


ALL_MEASURANDS = ("Current.Import", "Power.Active.Import", "Energy.Active.Import.Register", "SoC")


@dataclass
class SimOptions:
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


@dataclass
class SimRecord:
    """What tests look at."""

    profiles_received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    profile_answers: list[str] = field(default_factory=list)
    config_changes: list[tuple[str, str, str]] = field(default_factory=list)
    calls_received: list[str] = field(default_factory=list)


class SimCharger:
    def __init__(
        self, options: SimOptions, clock: Clock = _utc_now, frame_hook: Callable[[str, str | bytes], None] | None = None
    ) -> None:
        self.o = options
        self.clock = clock
        self.frame_hook = frame_hook
        self.store = ProfileStore(options.voltage_v, "ignores_charge_point_max" in options.quirks)
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
        self._t0 = clock()
        self._tx_counter = 0

    # --- time & physics -----------------------------------------------------------------------
    def t_s(self) -> float:
        return (self.clock() - self._t0).total_seconds()

    def composite_a(self, connector_id: int = 1) -> float | None:
        c = self.connectors[connector_id]
        return self.store.composite_a(self.clock(), connector_id, c.tx)

    def offered_a(self, connector_id: int = 1) -> float:
        """What the charger offers the EV now [A per phase] (PWM), after the hardware max."""
        c = self.connectors[connector_id]
        limit = self.composite_a(connector_id)
        offered = self.o.max_a if limit is None else min(limit, self.o.max_a)
        if "no_resume_after_zero" in self.o.quirks and c.tx is not None:
            if offered < 6.0:
                c.stuck_at_zero = True
            if c.stuck_at_zero:
                offered = 0.0
        return offered

    def update(self) -> None:
        """Advance every EV to now."""
        t = self.t_s()
        for c in self.connectors.values():
            if c.ev is None or c.ev_state is None:
                continue
            before = c.ev_state.energy_kwh
            c.ev_state = step(c.ev, c.ev_state, t, self.offered_a(c.connector_id) if c.tx else None)
            c.energy_wh += (c.ev_state.energy_kwh - before) * 1000.0

    def draw_a(self, connector_id: int = 1) -> tuple[float, float, float]:
        c = self.connectors[connector_id]
        if c.ev is None or c.ev_state is None:
            return (0.0, 0.0, 0.0)
        return grid_currents(c.ev, c.ev_state)

    def sample(self, connector_id: int) -> dict[str, float]:
        """Measurand → value for the meter values (names as in OCPP)."""
        self.update()
        c = self.connectors[connector_id]
        cur = self.draw_a(connector_id)
        out = {f"Current.Import.{ph}": cur[i] for i, ph in enumerate(("L1", "L2", "L3")[: self.o.phases])}
        out["Power.Active.Import"] = sum(cur) * self.o.voltage_v
        out["Energy.Active.Import.Register"] = c.energy_wh
        if c.ev_state is not None:
            out["SoC"] = c.ev_state.soc_pct
        return out

    def composite_periods(
        self, connector_id: int, start: datetime, duration_s: int, unit: str | None = "A"
    ) -> list[tuple[int, float]]:
        """The composite limit from ``start`` on, as the charger would report it (A, or W)."""
        c = self.connectors[connector_id]
        periods = composite_schedule(self.store, start, duration_s, connector_id, c.tx, self.o.max_a)
        if unit == "W":
            return [(o, round(v * self.o.voltage_v * self.o.phases, 1)) for o, v in periods]
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
        self.record.profiles_received.append((p.purpose, raw))
        if self.o.slow_answer_s:
            await asyncio.sleep(self.o.slow_answer_s)
        status = self.check_profile(p)
        if status == "Accepted":
            self.update()
            self.store.install(p)
        self.record.profile_answers.append(status)
        return status

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
                if c.tx is None:
                    continue
                try:
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
        delay = backoff_initial_s
        while True:
            if not (self.connected() and self.booted.is_set()):
                await self.close()  # tasks of a dead link
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

    # --- EV sessions --------------------------------------------------------------------------
    async def plug_in(
        self, ev: EvParams, soc_pct: float = 20.0, id_tag: str = "TAG", connector_id: int = 1, timeout_s: float = 5.0
    ) -> None:
        c = self.connectors[connector_id]
        c.ev, c.ev_state, c.id_tag, c.stuck_at_zero = ev, EvState(self.t_s(), soc_pct), id_tag, False
        await asyncio.wait_for(self.cp.status(connector_id, "Preparing"), timeout_s)
        await asyncio.wait_for(self.cp.authorize(id_tag), timeout_s)
        tx_id = await asyncio.wait_for(self.cp.start_transaction(c), timeout_s)
        c.tx = RunningTx(str(tx_id), self.clock())
        await asyncio.wait_for(self.cp.status(connector_id, "Charging"), timeout_s)

    async def unplug(self, connector_id: int = 1, timeout_s: float = 5.0) -> None:
        c = self.connectors[connector_id]
        self.update()
        if c.tx is not None:
            await asyncio.wait_for(self.cp.stop_transaction(c), timeout_s)
            self.store.transaction_ended(connector_id)
        c.tx, c.ev, c.ev_state = None, None, None
        await asyncio.wait_for(self.cp.status(connector_id, "Available"), timeout_s)

    def leave(self, connector_id: int = 1) -> None:
        """The EV drives off while the link is down: the session ends here without telling anyone
        (this sim keeps no offline queue of transaction messages)."""
        c = self.connectors[connector_id]
        self.update()
        if c.tx is not None:
            self.store.transaction_ended(connector_id)
        c.tx, c.ev, c.ev_state = None, None, None

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
