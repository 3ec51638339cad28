"""The site as the rest of the system sees it: frozen, validated, units in every name.

Produced by :mod:`controller.config` from the electrician's YAML file. Nothing here does I/O.
Phases are numbered 0, 1, 2 for grid L1, L2, L3 throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import cached_property
from typing import Literal

PHASES: tuple[str, str, str] = ("L1", "L2", "L3")
GRID_ID = "grid"

REGISTER_VALUES: tuple[str, ...] = (
    "current_l1_a",
    "current_l2_a",
    "current_l3_a",
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l3_v",
    "power_l1_w",
    "power_l2_w",
    "power_l3_w",
    "power_w",
    "import_kwh",
    "export_kwh",
)
"""The values a meter's register map may hold (preset files and the site's ``registers:``)."""

ChargerKind = Literal["ac", "dc"]
Service = Literal["wye", "delta", "split-phase"]
"""The supply system: ``wye`` (three phases and neutral, ``voltage_v`` line-to-neutral: 230, 120,
277), ``delta`` (three phases without neutral, ``voltage_v`` line-to-line: 240, 480) or
``split-phase`` (two lines 180° apart and neutral, ``voltage_v`` line-to-neutral: 120; 240 line-to-line)."""
LimitSum = Literal["phasor", "arithmetic"]
"""How a node's line current is summed: as phasors (what the breaker sees) or arithmetically (the
sum of magnitudes: never less, so never unsafe, but it wastes capacity when loads sit at
different angles)."""
TransformerConnection = Literal["delta-wye", "wye-wye", "split-phase"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SiteInfo:
    name: str
    timezone: str
    voltage_v: float = 230.0
    service: Service = "wye"


@dataclass(frozen=True)
class ModbusLink:
    """How to reach a meter: Modbus TCP, RTU over TCP (a gateway) or RTU over a serial port."""

    unit: int = 1
    host: str | None = None
    port: int = 502
    framer: Literal["tcp", "rtu"] = "tcp"
    serial: str | None = None
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 0.5

    @property
    def connection_key(self) -> str:
        """Meters with the same key share one connection (one hub)."""
        if self.serial is not None:
            return f"serial:{self.serial}"
        return f"{self.framer}://{self.host}:{self.port}"


@dataclass(frozen=True)
class RegisterSpec:
    """Where one value lives in a custom meter's register map."""

    address: int
    function: Literal["holding", "input"] = "holding"
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "int64"] = "float32"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    na: int | None = None


@dataclass(frozen=True)
class Meter:
    id: str
    modbus: ModbusLink
    preset: str | None = None
    registers: tuple[tuple[str, RegisterSpec], ...] = ()
    poll_s: float = 1.0
    stale_after_s: float = 5.0
    invert: bool = False
    signed_currents: bool | None = None
    """The meter reports phase currents with a sign (negative = export on that phase). ``None``:
    as its preset says (custom maps: no). Limits always use the magnitude."""


@dataclass(frozen=True)
class Grid:
    limit_a: float
    margin_a: float = 2.0
    limit_kw: float | None = None
    meter: str | None = None
    limit_sum: LimitSum = "phasor"


@dataclass(frozen=True)
class Transformer:
    """A transformer at the head of a circuit node: the node's limit (and its meter) is on the
    primary side; the chargers and circuits below it are on the secondary side.

    ``ratio`` is primary : secondary line-to-line voltage (480 V → 208 V: 2.31). ``delta-wye``
    and ``wye-wye`` give a three-phase wye secondary; ``split-phase`` is a single-phase,
    centre-tapped transformer whose primary winding sits across the two parent lines ``primary``
    and whose secondary is a 120/240 V style split-phase system (``ratio`` = primary voltage :
    secondary line-to-line voltage, 480 V → 240 V: 2.0).
    """

    connection: TransformerConnection
    ratio: float
    primary: str = "L1-L2"
    vector_group: Literal["Dyn1", "Dyn11"] = "Dyn1"
    primary_neutral: bool = True
    """wye-wye only: the primary star point is tied to the parent's neutral (YNyn: each primary line
    carries its secondary line's current / ratio). ``False``: floating (Yyn; the only choice on a
    delta parent): the secondary's zero-sequence current cannot flow on the primary, whose lines
    carry (I − I0) / ratio."""
    """delta-wye only: ``Dyn1`` (secondary lags the primary by 30°: ANSI, North America; primary
    line A carries secondary a − b) or ``Dyn11`` (leads by 30°: common in IEC countries; A carries
    a − c). For an unbalanced load it decides which primary line carries the most."""


@dataclass(frozen=True)
class Circuit:
    """A node of the circuit tree below the grid connection (a feeder or sub-board)."""

    id: str
    limit_a: float
    parent: str = GRID_ID
    margin_a: float | None = None
    meter: str | None = None
    transformer: Transformer | None = None
    limit_sum: LimitSum = "phasor"


@dataclass(frozen=True)
class PhasorConstraint:
    """An explicit limit on a phasor sum of charger currents: ``|sum coef * I_charger| <= limit_a``.

    ``terms`` maps a charger id to the complex coefficient per A of the charger's line current
    (per A per phase for a three-phase charger). Not written in a site file: used where a site
    model comes with its own constraint matrix (the ACN-Sim adapter).
    """

    id: str
    limit_a: float
    terms: tuple[tuple[str, complex], ...]
    margin_a: float = 0.0


@dataclass(frozen=True)
class Charger:
    id: str
    circuit: str
    kind: ChargerKind
    phases: int
    phase_rotation: str
    min_a: float = 6.0
    max_a: float | None = None
    max_kw: float | None = None
    efficiency: float = 0.95
    power_factor: float = 1.0
    connectors: int = 1
    allow_min_below_6a: bool = False
    ocpp_quirks: tuple[str, ...] = ()
    reaction_s: float | None = None
    """How long its EVs take to follow a new limit [s], as the site file says (None: not said)."""

    @cached_property
    def grid_phases(self) -> tuple[int, ...]:
        """Grid phase index (0..2) for each of the charger's own phases, in charger order. A
        line-to-line charger (``phases: 1``, ``phase_rotation: L1-L2``) lists both of its lines."""
        return tuple(PHASES.index(p) for p in self.phase_rotation.split("-"))

    @property
    def line_to_line(self) -> bool:
        """A single-phase charger connected between two lines (208/240 V), not line to neutral."""
        return self.phases == 1 and len(self.grid_phases) == 2


@dataclass(frozen=True)
class Failsafe:
    charger_a: float = 6.0
    dc_kw: float = 10.0


@dataclass(frozen=True)
class Ocpp:
    listen: str = "0.0.0.0:9000"
    path: str = "/ocpp"
    security_profile: int = 1
    passwords_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    accept_unknown: bool = False
    profile_ttl_s: float = 120.0
    heartbeat_s: int = 300
    call_timeout_s: float = 5.0
    meter_sample_s: int = 10
    upstream: Upstream | None = None
    """Local-controller mode: the operator's CSMS that every charger is also connected to, through
    depotctl (``None``: depotctl is the only central system)."""


OfflineAuthorize = Literal["cache", "accept", "reject"]


@dataclass(frozen=True)
class Upstream:
    """The operator's CSMS (``ocpp.upstream``). Each charger is connected upstream as itself:
    ``{url}/{charger id}``, with the OCPP version the charger speaks."""

    url: str
    security_profile: int = 2
    passwords_file: str | None = None
    """Charger id → the password the CSMS expects (security profiles 1 and 2)."""
    ca_file: str | None = None
    offline_authorize: OfflineAuthorize = "cache"
    """How an id tag is answered while the CSMS is unreachable: ``cache`` (the CSMS's earlier
    answers and its local list), ``accept`` or ``reject``."""


@dataclass(frozen=True)
class Control:
    plan_every_s: float = 15.0
    horizon_h: float = 24.0
    slot_min: int = 15
    default_dwell_h: float = 8.0
    deadband_a: float = 0.5
    solver_time_limit_s: float = 2.0
    recover_cycles: int = 3
    when_short: Literal["share", "complete"] = "complete"
    departure_history: bool = True
    plan_cost: bool = False
    """Let the planner's cost stage move charging by price and demand charge (issue 16). Off by
    default: measured in the simulator it still costs departures on real session data."""


@dataclass(frozen=True)
class Vehicle:
    id: str
    id_tags: tuple[str, ...] = ()
    battery_kwh: float | None = None
    max_kw: float | None = None
    max_a: float | None = None
    priority: int = 5
    tenant: str | None = None


@dataclass(frozen=True)
class Schedule:
    """A departure: recurring (``days`` + ``at``) or one-off (``on`` + ``at``), site-local time."""

    vehicle: str
    at: time
    days: tuple[Weekday, ...] = ()
    on: datetime | None = None
    energy_kwh: float | None = None
    target_soc_pct: float | None = None
    priority: int | None = None


@dataclass(frozen=True)
class TariffStep:
    """From ``at`` (site-local time of day) until the next step, energy costs ``price_per_kwh``."""

    at: time
    price_per_kwh: float


DemandPeriod = Literal["month"]


@dataclass(frozen=True)
class DemandCharge:
    """The demand charge: the billing period's highest ``window_min`` average of grid import
    costs ``price_per_kw`` per kW."""

    price_per_kw: float
    window_min: int = 15
    period: DemandPeriod = "month"


@dataclass(frozen=True)
class Tariff:
    """What the depot pays: ``energy`` (daily time-of-use steps, site-local), optionally dated
    prices from ``prices_file`` (where present they win) and a demand charge.

    The site file's older form ``tariff: [{at, price_per_kwh}]`` is the same as
    ``tariff: {energy: [...]}``."""

    currency: str = "EUR"
    energy: tuple[TariffStep, ...] = ()
    prices_file: str | None = None
    demand: DemandCharge | None = None

    @property
    def active(self) -> bool:
        """Whether there is anything to price: energy steps, a prices file or a demand charge."""
        return bool(self.energy) or self.prices_file is not None or self.demand is not None


@dataclass(frozen=True)
class Pv:
    """On-site production, measured by ``meter`` (its power is the PV output, >= 0)."""

    meter: str


@dataclass(frozen=True)
class Api:
    listen: str = "127.0.0.1:8080"
    tokens_file: str | None = None


@dataclass(frozen=True)
class Metrics:
    listen: str = "127.0.0.1:9464"


@dataclass(frozen=True)
class Storage:
    path: str = "/var/lib/depotctl/depot.db"
    retention_days: int = 90


@dataclass(frozen=True)
class Site:
    site: SiteInfo
    grid: Grid
    meters: tuple[Meter, ...] = ()
    circuits: tuple[Circuit, ...] = ()
    chargers: tuple[Charger, ...] = ()
    failsafe: Failsafe = field(default_factory=Failsafe)
    ocpp: Ocpp = field(default_factory=Ocpp)
    control: Control = field(default_factory=Control)
    vehicles: tuple[Vehicle, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    tariff: Tariff = field(default_factory=Tariff)
    pv: Pv | None = None
    constraints: tuple[PhasorConstraint, ...] = ()
    api: Api = field(default_factory=Api)
    metrics: Metrics = field(default_factory=Metrics)
    storage: Storage = field(default_factory=Storage)

    @cached_property
    def derived(self) -> dict[object, object]:
        """Values other modules derive from this Site once and reuse (e.g. a charger's line
        phasors, :func:`controller.model.phasor.charger_phasors`). The Site never changes."""
        return {}

    # --- tree helpers (indexed once per Site: the fast loop asks them per charger, per cycle) ----
    @cached_property
    def _circuit_index(self) -> dict[str, Circuit]:
        return {c.id: c for c in self.circuits}

    @cached_property
    def _charger_index(self) -> dict[str, Charger]:
        return {ch.id: ch for ch in self.chargers}

    @cached_property
    def _children_index(self) -> dict[str, tuple[Circuit, ...]]:
        out: dict[str, list[Circuit]] = {}
        for c in self.circuits:
            out.setdefault(c.parent, []).append(c)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _ancestors_index(self) -> dict[str, tuple[str, ...]]:
        return {}

    @cached_property
    def _under_index(self) -> dict[str, tuple[Charger, ...]]:
        out: dict[str, list[Charger]] = {}
        for ch in self.chargers:
            for node in self.ancestors(ch.circuit):
                out.setdefault(node, []).append(ch)
        return {k: tuple(v) for k, v in out.items()}

    def circuit(self, circuit_id: str) -> Circuit:
        try:
            return self._circuit_index[circuit_id]
        except KeyError:
            raise KeyError(circuit_id) from None

    def node_ids(self) -> tuple[str, ...]:
        """Every node of the tree, the grid first, parents before children."""
        return (GRID_ID, *(c.id for c in self.walk_circuits()))

    def children(self, node_id: str) -> tuple[Circuit, ...]:
        return self._children_index.get(node_id, ())

    def walk_circuits(self, node_id: str = GRID_ID) -> Iterator[Circuit]:
        """Depth-first, parents before children, in file order."""
        for child in self.children(node_id):
            yield child
            yield from self.walk_circuits(child.id)

    def node_limit_a(self, node_id: str) -> float:
        return self.grid.limit_a if node_id == GRID_ID else self.circuit(node_id).limit_a

    def node_limit_sum(self, node_id: str) -> LimitSum:
        return self.grid.limit_sum if node_id == GRID_ID else self.circuit(node_id).limit_sum

    def transformer(self, node_id: str) -> Transformer | None:
        return None if node_id == GRID_ID else self.circuit(node_id).transformer

    def node_margin_a(self, node_id: str) -> float:
        if node_id == GRID_ID:
            return self.grid.margin_a
        margin = self.circuit(node_id).margin_a
        return self.grid.margin_a if margin is None else margin

    def ancestors(self, node_id: str) -> tuple[str, ...]:
        """The node itself, then each parent up to and including ``grid``."""
        cached = self._ancestors_index.get(node_id)
        if cached is not None:
            return cached
        path = [node_id]
        at = node_id
        while at != GRID_ID:
            at = self.circuit(at).parent
            path.append(at)
        out = tuple(path)
        self._ancestors_index[node_id] = out
        return out

    def chargers_under(self, node_id: str) -> tuple[Charger, ...]:
        return self._under_index.get(node_id, ())

    def charger(self, charger_id: str) -> Charger:
        try:
            return self._charger_index[charger_id]
        except KeyError:
            raise KeyError(charger_id) from None

    def vehicle(self, vehicle_id: str) -> Vehicle:
        for v in self.vehicles:
            if v.id == vehicle_id:
                return v
        raise KeyError(vehicle_id)


def dc_phase_current_a(power_kw: float, voltage_v: float, efficiency: float, power_factor: float) -> float:
    """Per-phase grid current [A] drawn by a 3-phase-fed DC charger delivering ``power_kw`` [kW]."""
    return power_kw * 1000.0 / (efficiency * power_factor * 3.0 * voltage_v)
