"""Response models of the HTTP API: the contract between the daemon and its clients.

The daemon fills a :class:`StatusResponse` every time ``GET /api/v1/status`` is asked; ``depotctl
status`` and the demo read it back. Units are in the field names (``_a`` ampere, ``_w`` watt,
``_kw`` kilowatt, ``_kwh`` kilowatt-hour, ``_s`` seconds, ``_ms`` milliseconds, ``_pct`` percent)
and in each field's description, which the OpenAPI document carries.

Conventions:

- A per-phase value is a list of exactly three numbers: grid phases L1, L2, L3 (after each
  charger's phase rotation, so they add up along the circuit tree).
- ``None`` means *not known* (no reading yet, no such device), never zero.
- Every timestamp carries its UTC offset; numbers are finite (NaN and ±inf are rejected, so a bad
  reading shows up as a construction error in the daemon, not as a ``null`` a client cannot read).
- Clients ignore fields they do not know, so the daemon may add fields without breaking an
  older ``depotctl status``; renaming or removing one is a breaking change.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

PhaseTriple = Annotated[
    list[float], Field(min_length=3, max_length=3, description="Per grid phase: L1, L2, L3.")
]
"""Three numbers, one per grid phase L1, L2, L3."""

Count = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="ignore")


class FailsafeInfo(_Model):
    """The fail-safe state machine: when active, every charger is held at its fail-safe limit."""

    active: bool = Field(description="True while the site is in fail-safe.")
    reason: str = Field(description="Why fail-safe is (or last was) active, e.g. 'grid meter stale'.")
    since: AwareDatetime = Field(description="When the state last changed.")
    good_cycles: Count = Field(description="Consecutive good cycles so far, counting towards recovery.")
    recover_cycles: Count = Field(description="Good cycles needed to leave fail-safe.")


class GridInfo(_Model):
    """The grid connection: the root of the circuit tree."""

    meter: str | None = Field(description="Id of the grid meter; None when the site has none.")
    current_a: PhaseTriple | None = Field(description="Measured current per phase L1, L2, L3 [A]; None if unknown.")
    power_w: float | None = Field(description="Measured active power, import positive [W]; None if unknown.")
    limit_a: float = Field(description="Current limit per phase of the grid connection [A].")
    margin_a: float = Field(description="Safety margin kept below limit_a [A]; the usable limit is limit − margin.")
    limit_kw: float | None = Field(description="Contracted power limit [kW]; None when there is none.")


class NodeInfo(_Model):
    """One circuit of the site tree (the grid connection, a feeder, a sub-distribution …)."""

    id: str = Field(description="Circuit id from the site file.")
    parent: str | None = Field(description="Id of the parent circuit; None for the root.")
    limit_a: float = Field(description="Current limit per phase [A].")
    margin_a: float = Field(description="Safety margin kept below limit_a [A].")
    measured_a: PhaseTriple | None = Field(
        description="Measured current per phase L1, L2, L3 [A]; None when the circuit has no (fresh) meter."
    )
    planned_a: PhaseTriple | None = Field(
        description="Current per phase the current plan puts on this circuit, EV plus base load [A]; None if no plan."
    )
    headroom_a: PhaseTriple | None = Field(
        description="limit − margin − load per phase [A], load = measured if known, else planned; None if neither."
    )


class MeterInfo(_Model):
    """One Modbus meter and the health of its readings."""

    id: str = Field(description="Meter id from the site file.")
    age_s: float | None = Field(description="Age of the last good reading [s]; None before the first one.")
    stale: bool = Field(description="True when the last good reading is older than stale_after_s.")
    problem: str | None = Field(description="The current problem (connection, implausible value …); None if fine.")
    accepted: Count = Field(description="Readings accepted since start.")
    rejected: Count = Field(description="Readings rejected as implausible since start.")
    failed: Count = Field(description="Reads that failed (timeout, connection, Modbus error) since start.")


class SessionInfo(_Model):
    """A charging session on one connector, with its departure promise."""

    session_id: str = Field(description="Session id (the OCPP transaction id when there is one).")
    connector: int = Field(ge=0, description="Connector (OCPP 1.6) or EVSE (2.0.1) number.")
    vehicle_id: str | None = Field(description="Vehicle recognised by its id tag; None if unknown.")
    started_at: AwareDatetime = Field(description="When the session started.")
    departure_at: AwareDatetime | None = Field(description="When the vehicle must be ready; None if not set.")
    energy_need_kwh: float | None = Field(description="Energy the session still had to receive at start [kWh].")
    delivered_kwh: float = Field(description="Energy delivered in this session so far [kWh].")
    expected_kwh: float | None = Field(
        description="Energy the plan expects to have delivered by departure [kWh]; None without a departure/plan."
    )
    will_meet_departure: bool | None = Field(
        description="True if the plan meets the need by departure, False if not; None when there is nothing to meet."
    )
    soc_pct: float | None = Field(description="State of charge reported by the vehicle [%]; None if unknown.")
    eta: AwareDatetime | None = Field(
        description="When the plan expects the need to be met; None if never within the horizon or no need."
    )


class UncontrolledInfo(_Model):
    """Why a charger is not under control: it rejects or ignores the limits it is sent."""

    reason: str = Field(description="What showed it, e.g. 'rejected a profile: …' or 'draws 31.0 A on a 6.0 A limit'.")
    since: AwareDatetime = Field(description="When it was marked uncontrolled.")


class ChargerInfo(_Model):
    """One charger (charge point): connection, offered limit and draw."""

    id: str = Field(description="Charger id (OCPP charge point identity).")
    circuit: str = Field(description="Id of the circuit the charger hangs on.")
    kind: Literal["ac", "dc"] = Field(description="AC (limited in A per phase) or DC (limited in kW).")
    connected: bool = Field(description="True while the charger's OCPP connection is up.")
    ocpp_version: str | None = Field(description="OCPP version spoken ('1.6', '2.0.1'); None before it connected.")
    status: str | None = Field(description="Last connector status reported (e.g. 'Charging'); None if none yet.")
    limit: float | None = Field(description="Limit offered now, in `unit` [A per phase or kW]; None if none sent.")
    unit: Literal["A", "kW"] = Field(description="Unit of `limit`.")
    limit_source: str | None = Field(
        description="Why the limit is what it is (e.g. 'plan', 'failsafe', 'circuit feeder-a L2'); None if unknown."
    )
    current_a: PhaseTriple | None = Field(
        description="Measured draw per grid phase L1, L2, L3 [A]; None if the charger never reported it."
    )
    energy_wh: float | None = Field(description="Energy register of the charger [Wh]; None if never reported.")
    sessions: list[SessionInfo] = Field(description="Sessions running on this charger, one per busy connector.")
    uncontrolled: UncontrolledInfo | None = Field(
        None,
        description="Set while the charger rejects or ignores its limits: it is budgeted at what it draws (up to its "
        "maximum), left out of the plan, and the others share what is left; None while it is controlled.",
    )
    clock_offset_s: float | None = Field(
        None,
        description="Measured offset of the charger's clock, charger minus the daemon [s], positive = ahead; None "
        "until it was measured.",
    )
    failsafe_installed: bool | None = Field(
        None,
        description="True once the charger confirmed its fail-safe profile (what it obeys without the daemon); False "
        "while it has not, and it is budgeted at its maximum; None from a daemon that does not report it.",
    )
    commissioned: Literal["passed", "failed", "running", "never"] = Field(
        "never",
        description="Its last commissioning (`depotctl commission`): passed, failed (a check failed or the run was"
        " aborted), running now, or never commissioned.",
    )


class PlanInfo(_Model):
    """The last plan the planner produced."""

    at: AwareDatetime = Field(description="When the plan was made.")
    solver: str = Field(description="Who made it: e.g. 'highs', 'cbc', 'fallback'.")
    total_ms: float = Field(ge=0, description="Time to build and solve the plan [ms].")
    sessions: Count = Field(description="Sessions planned for.")
    warnings: list[str] = Field(description="Planner warnings (infeasible need, repaired minimum …).")
    fallback_reason: str | None = Field(
        None, description="Why a fallback solver made it (HiGHS failed or timed out); None when HiGHS did."
    )
    status: str | None = Field(
        None, description="The solver's model status of the last plan, e.g. 'Optimal', 'Time limit reached'."
    )
    iterations: int | None = Field(None, ge=0, description="Simplex iterations of the last plan's LP solves.")
    warm: bool | None = Field(None, description="True when the last plan hot-started the kept HiGHS model.")
    build_ms: float | None = Field(None, ge=0, description="Model build (or update) time of the last plan [ms].")
    solve_ms: float | None = Field(None, ge=0, description="Solve time of the last plan [ms].")
    planned_in: str | None = Field(
        None, description="Where the last plan was made: 'worker' (the planner process), 'daemon thread' or "
        "'heuristic' (the worker failed)."
    )
    wait_ms: float | None = Field(
        None, ge=0, description="What the plan loop waited for the last plan (worker: pickling and pipe included) [ms]."
    )
    plans_last_hour: int | None = Field(None, ge=0, description="Plans made in the last hour.")
    fallbacks_last_hour: int | None = Field(
        None, ge=0, description="Of those, plans not made by HiGHS in the planner (CBC, heuristic, worker trouble)."
    )
    fallback_reasons_last_hour: dict[str, int] | None = Field(
        None, description="Why they fell back (the five most frequent reasons, with counts)."
    )
    total_ms_p50: float | None = Field(None, description="Median planner time over the last hour [ms].")
    total_ms_p99: float | None = Field(None, description="99th percentile planner time over the last hour [ms].")
    wait_ms_p50: float | None = Field(None, description="Median wait for a plan over the last hour [ms].")
    wait_ms_p99: float | None = Field(None, description="99th percentile wait for a plan over the last hour [ms].")
    recent_total_ms: list[float] | None = Field(
        None, description="The planner's time of each of the last (at most 100) plans, oldest first [ms]."
    )
    recent_wait_ms: list[float] | None = Field(
        None, description="The plan loop's wait for each of the same plans, oldest first [ms]."
    )


class LoopInfo(_Model):
    """Statistics of the control loop since start."""

    cycles: Count = Field(description="Control cycles run since start.")
    cycle_ms_p50: float | None = Field(description="Median cycle duration [ms]; None before the first cycle.")
    cycle_ms_p99: float | None = Field(description="99th percentile cycle duration [ms]; None before the first cycle.")
    sheds: Count = Field(description="Overload sheds done by the fast loop since start.")
    last_shed_at: AwareDatetime | None = Field(description="When the last shed happened; None if never.")
    shed_ms_p50: float | None = Field(description="Median time from overload reading to shed sent [ms]; None if none.")
    shed_ms_p99: float | None = Field(description="99th percentile of the shed time [ms]; None if no shed yet.")


class StoreInfo(_Model):
    """The SQLite history store, written off the control path."""

    path: str = Field(description="Database file.")
    written: Count = Field(description="Rows written since start.")
    dropped: Count = Field(description="Rows dropped because the write queue was full or the store broken.")
    queue_depth: Count = Field(description="Rows waiting to be written.")
    broken: bool = Field(description="True when the store gave up writing (disk full, corrupt file …).")


class PricesFileInfo(_Model):
    """The dated prices file (``tariff.prices_file``)."""

    path: str = Field(description="The file as read.")
    prices: Count = Field(description="Price steps in force from it.")
    loaded_at: AwareDatetime | None = Field(description="When those were read; None: never read successfully.")
    covers_until: AwareDatetime | None = Field(
        description="Where its prices end (the end of the last step's hour); None without prices."
    )
    error: str | None = Field(
        description="Why the file was last refused (every problem as file:line: what), while that stands: the "
        "prices read before stay in force; None when its last read was good."
    )
    error_at: AwareDatetime | None = Field(description="When it was refused; None when it was not.")


class DemandWindowInfo(_Model):
    """One averaging window of grid import for the demand charge."""

    start: AwareDatetime = Field(description="The window's start (aligned to the site-local clock).")
    end: AwareDatetime = Field(description="Its end.")
    average_kw: float | None = Field(description="Average grid import over the time readings covered [kW].")
    coverage: float = Field(ge=0, le=1, description="Share of the window (so far) its readings covered, 0..1.")
    partial: bool = Field(description="True when readings are missing (coverage below 98 %).")


class EnergyInfo(_Model):
    """The bill: the price now, today's import and cost, the billing period's peak, PV."""

    currency: str = Field(description="The tariff's currency.")
    price_per_kwh: float | None = Field(description="Price of grid energy now, per kWh; None without a price.")
    price_source: Literal["prices file", "tariff"] | None = Field(
        description="Where it comes from: the dated prices file, or the site's daily tariff."
    )
    day: date = Field(description="Today, site-local.")
    today_import_kwh: float | None = Field(description="Grid import today so far [kWh]; None before a reading.")
    today_cost: float | None = Field(
        description="Its cost in `currency`; None when no price covered any of it (unknown, not 0)."
    )
    cost_total: float | None = Field(
        description="Cost of import since records began (depot_energy_cost_total); None without energy prices."
    )
    demand_price_per_kw: float | None = Field(description="The demand charge per kW of peak; None without one.")
    window_min: int = Field(ge=1, description="The averaging window of the peak [min].")
    period_start: AwareDatetime = Field(description="Start of the billing period (the site-local month).")
    peak_kw: float | None = Field(
        description="The period's peak so far [kW]: the highest window average, or what the window in progress "
        "has committed if higher; None: nothing yet."
    )
    peak_window: DemandWindowInfo | None = Field(description="The period's highest closed window; None: none yet.")
    window: DemandWindowInfo | None = Field(description="The window in progress; None before a reading.")
    demand_charge: float | None = Field(
        description="The demand charge the peak so far costs (peak_kw × demand_price_per_kw); None without one."
    )
    prices_file: PricesFileInfo | None = Field(description="The dated prices file; None when there is none.")
    pv_meter: str | None = Field(description="The PV meter; None without PV.")
    pv_kw: float | None = Field(description="PV output now [kW]; None without PV or a fresh reading.")


class UpstreamLinkInfo(_Model):
    """One charger's link to the operator's CSMS (local-controller mode)."""

    charger_id: str
    state: Literal["connecting", "up", "down", "closed"] = Field(
        description="connecting (an attempt under way), up, down (between attempts: back-off), closed (the "
        "charger is not connected to depotctl)."
    )
    connected: bool = Field(description="True while the link is up.")
    queue_messages: Count = Field(description="The charger's messages queued for the CSMS, not yet delivered.")
    since: AwareDatetime | None = Field(description="When the link entered this state.")


class UpstreamInfo(_Model):
    """Local-controller mode: depotctl between the chargers and the operator's CSMS."""

    url: str = Field(description="The CSMS (each charger connects as {url}/{charger id}).")
    connected: Count = Field(description="Chargers whose upstream link is up.")
    chargers: Count = Field(description="Chargers with an upstream link (connected to depotctl) or a backlog.")
    queue_messages: Count = Field(description="Messages queued for the CSMS, all chargers (in SQLite).")
    links: list[UpstreamLinkInfo]


class StatusResponse(_Model):
    """``GET /api/v1/status``: everything an operator needs on one page."""

    version: str = Field(description="depotctl version of the daemon.")
    site: str = Field(description="Site name from the site file.")
    timezone: str = Field(description="IANA time zone of the site, e.g. 'Europe/Berlin'.")
    now: AwareDatetime = Field(description="When this status was made.")
    started_at: AwareDatetime = Field(description="When the daemon started.")
    config_file: str = Field(description="Path of the site file in use.")
    config_loaded_at: AwareDatetime = Field(description="When the site file was last (re)loaded.")
    failsafe: FailsafeInfo
    grid: GridInfo
    nodes: list[NodeInfo] = Field(description="Circuits of the site tree, parents before children.")
    meters: list[MeterInfo]
    chargers: list[ChargerInfo]
    plan: PlanInfo | None = Field(description="The last plan; None before the first one.")
    loop: LoopInfo
    store: StoreInfo | None = Field(description="The history store; None when storage is off.")
    energy: EnergyInfo | None = Field(
        None, description="The bill: price, today's cost, the billing period's peak, PV; None from an older daemon."
    )
    upstream: UpstreamInfo | None = Field(
        default=None, description="Local-controller mode's links to the CSMS; None without ocpp.upstream."
    )


class ErrorResponse(_Model):
    """Body of every error answer (FastAPI's convention)."""

    detail: str = Field(description="What went wrong, for a human.")
