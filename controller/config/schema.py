"""The site file, schema v1, as pydantic models: types, ranges, defaults, unknown keys.

These key names are a contract: extend, never rename. Cross-field rules (references, the
circuit tree, phase rotations, min/max) live in :mod:`controller.config.checks`, which knows the
exact path of each value. The descriptions here feed ``depotctl schema`` and the README table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from controller.config.shorthand import expand_tariff
from controller.model.presets import PRESET_NAMES
from controller.model.site import REGISTER_VALUES as REGISTER_VALUES  # re-exported: the schema names them

SIGNED_CURRENT_PRESETS: tuple[str, ...] = ("carlo-gavazzi-em24", "carlo-gavazzi-em340", "sunspec")
"""Presets whose meters may report signed phase currents (``signed_currents: true`` in the preset
file, which is the truth; a test keeps the two equal)."""
KNOWN_QUIRKS: tuple[str, ...] = (
    "stack_level_zero_only",
    "txdefault_on_connector_0",
    "relative_profiles",
    "power_only",
    "no_zero_limit",
    "no_resume_after_zero",
    "ignores_charge_point_max",
    "holds_last_limit",
)

SLOT_MINUTES: tuple[int, ...] = (5, 10, 15, 20, 30, 60)
DEMAND_WINDOW_MINUTES: tuple[int, ...] = (5, 10, 15, 30, 60)
"""The demand charge's averaging windows [min]: the integration periods utility meters use for a
demand register (15 min is the most common; some utilities use 30 or 60, a few 5 or 10). Each
divides the hour, so windows start on the clock (:00, :15, …) the same way every hour, as the
meter's do."""

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


LIMIT_SUM_HELP = (
    "How the line currents of loads behind this node add up against `limit_a`: `phasor` (what the"
    " breaker sees: loads at different angles, such as line-to-line chargers or a transformer's"
    " primary, partly cancel) or `arithmetic` (magnitudes added: never less, so never unsafe, but it"
    " wastes capacity when loads sit at different angles)."
)


class SiteSection(_Section):
    name: str = Field(min_length=1, description="Human name of the site, shown in status and reports.")
    timezone: str = Field(description="IANA time zone of the site, e.g. Europe/Amsterdam. Departures are local.")
    service: Literal["wye", "delta", "split-phase"] = Field(
        "wye",
        description="Supply system at the grid connection: `wye` (three lines and neutral: 230/400 V,"
        " 120/208 V, 277/480 V), `delta` (three lines, no neutral: 240 V, 480 V) or `split-phase`"
        " (two lines and neutral, 120/240 V).",
    )
    voltage_v: float = Field(
        230.0,
        gt=0,
        le=1000,
        description="Nominal voltage [V]: line-to-neutral on a `wye` or `split-phase` service (230, 120,"
        " 277; at most 400), line-to-line on a `delta` service (240, 480).",
    )


class GridSection(_Section):
    limit_a: float = Field(gt=0, description="Current limit of the grid connection per line [A].")
    margin_a: float = Field(2.0, ge=0, description="Safety margin kept below every limit [A].")
    limit_kw: float | None = Field(None, gt=0, description="Contracted power limit [kW], optional.")
    meter: str | None = Field(None, description="Id of the meter at the grid connection.")
    limit_sum: Literal["phasor", "arithmetic"] = Field("phasor", description=LIMIT_SUM_HELP)


class ModbusSection(_Section):
    host: str | None = Field(None, description="Meter or gateway address (Modbus TCP or RTU over TCP).")
    port: int = Field(502, ge=1, le=65535, description="TCP port.")
    framer: Literal["tcp", "rtu"] = Field("tcp", description="`tcp`, or `rtu` for an RTU-over-TCP gateway.")
    serial: str | None = Field(None, description="Serial device for Modbus RTU, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(9600, gt=0, description="Serial speed [baud].")
    parity: Literal["N", "E", "O"] = Field("N", description="Serial parity: N, E or O.")
    stopbits: int = Field(1, ge=1, le=2, description="Serial stop bits.")
    bytesize: int = Field(8, ge=7, le=8, description="Serial data bits.")
    unit: int = Field(1, ge=0, le=247, description="Modbus unit (device) id.")
    timeout_s: float = Field(0.5, gt=0, le=10, description="Bound on one read [s].")


class RegisterSection(_Section):
    address: int = Field(ge=0, le=65535, description="0-based register address (as sent on the wire).")
    function: Literal["holding", "input"] = Field("holding", description="Function code: holding (3) or input (4).")
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "int64"] = Field(
        "float32", description="Data type."
    )
    word_order: Literal["big", "little"] = Field("big", description="`big`: high word first.")
    scale: float = Field(1.0, description="Multiplier to reach the unit in the value's name.")
    na: int | None = Field(None, description="Raw value meaning 'not available', optional.")


class MeterSection(_Section):
    id: str = Field(min_length=1, description="Unique id, referenced by `grid.meter` and `circuits[].meter`.")
    preset: str | None = Field(None, description="Register map preset: " + ", ".join(PRESET_NAMES) + ".")
    registers: dict[str, RegisterSection] | None = Field(
        None, description="Custom register map instead of a preset; keys: " + ", ".join(REGISTER_VALUES) + "."
    )
    modbus: ModbusSection = Field(description="How to reach the meter.")
    poll_s: float = Field(1.0, gt=0, le=60, description="Read interval [s].")
    stale_after_s: float = Field(5.0, gt=0, description="No good reading for this long → fail-safe [s].")
    invert: bool = Field(False, description="Flip the sign (meter mounted the other way round).")
    signed_currents: bool | None = Field(
        None,
        description="The meter reports phase currents with a sign (negative = export on that phase, or a CT"
        " mounted the other way); limits use their magnitude. Default: true for the presets "
        + ", ".join(SIGNED_CURRENT_PRESETS)
        + ", else false. A negative current from a meter not declared signed is refused as implausible.",
    )


class TransformerSection(_Section):
    """A transformer at the head of a circuit: the circuit's `limit_a`, `margin_a` and `meter` are on
    its primary side; the chargers and circuits below it are on its secondary bus."""

    connection: Literal["delta-wye", "wye-wye", "split-phase"] = Field(
        description="`delta-wye` or `wye-wye` (three-phase, wye secondary), or `split-phase` (single-phase,"
        " centre-tapped secondary: two lines and neutral, 120/240 V)."
    )
    ratio: float = Field(
        gt=0,
        description="Primary : secondary line-to-line voltage (480 V → 208 V: 2.31; 480 V → 240 V"
        " split-phase: 2).",
    )
    primary: str | None = Field(
        None,
        description="`split-phase` only: the two parent lines the primary winding sits across: L1-L2,"
        " L2-L3 or L3-L1 (default L1-L2; only L1-L2 below a split-phase bus).",
    )
    vector_group: Literal["Dyn1", "Dyn11"] | None = Field(
        None,
        description="`delta-wye` only: `Dyn1` (default; secondary lags the primary by 30°, ANSI: North"
        " America) or `Dyn11` (leads by 30°, common in IEC countries). For an unbalanced load it decides"
        " which primary line carries the most.",
    )
    primary_neutral: bool | None = Field(
        None,
        description="`wye-wye` only: true (default) when the primary star point is tied to the parent's"
        " neutral (YNyn); false when it floats (Yyn, and always below a delta bus): then the primary lines"
        " carry the secondary currents less their zero-sequence part.",
    )


class CircuitSection(_Section):
    id: str = Field(min_length=1, description="Unique id of the feeder or sub-board.")
    parent: str = Field("grid", description="Parent circuit id; `grid` is the connection itself.")
    limit_a: float = Field(
        gt=0,
        description="Current limit per line [A] (breaker or cable rating; with a `transformer`: on its primary).",
    )
    margin_a: float | None = Field(None, ge=0, description="Margin for this node [A]; default `grid.margin_a`.")
    meter: str | None = Field(None, description="Id of a sub-meter measuring this circuit, optional.")
    transformer: TransformerSection | None = Field(
        None, description="A transformer feeding this circuit, optional (not allowed on `grid`)."
    )
    limit_sum: Literal["phasor", "arithmetic"] = Field("phasor", description=LIMIT_SUM_HELP)


class ChargerSection(_Section):
    id: str = Field(min_length=1, description="Charge point id as it connects over OCPP.")
    circuit: str = Field("grid", description="Circuit the charger is wired to.")
    kind: Literal["ac", "dc"] = Field("ac", description="`ac` or `dc`.")
    phases: int = Field(
        3, json_schema_extra={"enum": [1, 3]}, description="Wired phases: 1 (line to neutral or line to line) or 3."
    )
    phase_rotation: str | None = Field(
        None,
        description="Grid line of each charger phase: L1-L2-L3, L2-L3-L1 or L3-L1-L2 (3-phase, default "
        "L1-L2-L3); for a 1-phase charger (required) L1, L2 or L3 (line to neutral) or L1-L2, L2-L3 or "
        "L3-L1 (line to line: 208/240 V); a split-phase bus has L1, L2 and L1-L2 only, a delta bus no "
        "neutral.",
    )
    min_a: float = Field(6.0, gt=0, description="Lowest current per phase while charging [A] (AC).")
    max_a: float | None = Field(
        None, gt=0, description="Highest current per phase [A] (AC, required; line-to-line: the line current)."
    )
    max_kw: float | None = Field(None, gt=0, description="Highest power [kW] (DC, required).")
    efficiency: float = Field(0.95, gt=0, le=1, description="DC: power delivered / power drawn.")
    power_factor: float = Field(1.0, gt=0, le=1, description="Power factor of the charger's draw.")
    connectors: int = Field(1, ge=1, le=8, description="Number of connectors (EVSEs).")
    allow_min_below_6a: bool = Field(False, description="Permit `min_a` below the IEC 61851 minimum of 6 A.")
    ocpp_quirks: list[str] = Field(default_factory=list, description="Field quirks: " + ", ".join(KNOWN_QUIRKS) + ".")
    reaction_s: float | None = Field(
        None,
        gt=0,
        le=120,
        description="How long its EVs take to follow a new limit [s] (measured by `depotctl commission`);"
        " unset: max(5 s, the last commissioning's measurement), else 5 s; below 5 s shortens the"
        " charger's allowances (check-config warns).",
    )


class FailsafeSection(_Section):
    charger_a: float = Field(6.0, ge=0, description="Per-phase limit of every AC charger in fail-safe [A].")
    dc_kw: float = Field(10.0, ge=0, description="Power limit of every DC charger in fail-safe [kW].")


class UpstreamSection(_Section):
    """The operator's CSMS (local-controller mode). Each charger that connects to depotctl is
    connected upstream as itself, at `{url}/{charger id}`, with the OCPP version it speaks; its
    messages pass through, and a charging profile from the CSMS becomes a cap on depotctl's plan."""

    url: str = Field(
        min_length=1,
        description="The CSMS's OCPP endpoint without the charger id, e.g. wss://csms.example.com/ocpp:"
        " `ws://` for security profiles 0 and 1, `wss://` for 2; no trailing `/`, no credentials.",
    )
    security_profile: int = Field(
        2,
        ge=0,
        le=2,
        description="How depotctl authenticates to the CSMS, as OCPP defines the profiles: 0 none (lab),"
        " 1 HTTP Basic auth over `ws://`, 2 TLS and HTTP Basic auth over `wss://` (3, client"
        " certificates, is not supported).",
    )
    passwords_file: str | None = Field(
        None,
        min_length=1,
        description="YAML mapping charger id → the password the CSMS expects of it (profiles 1 and 2:"
        " required), as `ocpp.passwords_file`. A charger without one is warned about.",
    )
    ca_file: str | None = Field(
        None,
        min_length=1,
        description="CA certificates (PEM) to verify the CSMS's TLS certificate with (`wss://` only);"
        " default: the system's trusted CAs.",
    )
    offline_authorize: Literal["cache", "accept", "reject"] = Field(
        "cache",
        description="How an id tag is answered while the CSMS is unreachable: `cache` (as the CSMS"
        " answered it before, or its local authorisation list says), `accept` (every tag) or `reject`"
        " (none).",
    )


class OcppSection(_Section):
    listen: str = Field("0.0.0.0:9000", description="HOST:PORT the OCPP server listens on.")
    path: str = Field("/ocpp", description="URL path prefix; chargers connect to PATH/CHARGER-ID.")
    security_profile: int = Field(1, ge=0, le=2, description="0 none (lab), 1 HTTP Basic, 2 TLS + Basic.")
    passwords_file: str | None = Field(None, description="YAML mapping charger id → password (profiles 1, 2).")
    tls_cert_file: str | None = Field(None, description="TLS certificate chain, PEM (profile 2).")
    tls_key_file: str | None = Field(None, description="TLS private key, PEM (profile 2).")
    accept_unknown: bool = Field(False, description="Accept chargers not listed in `chargers`.")
    profile_ttl_s: float = Field(120.0, ge=10, le=3600, description="Control profiles expire after [s].")
    heartbeat_s: int = Field(300, ge=10, description="Heartbeat interval given at boot [s].")
    call_timeout_s: float = Field(5.0, gt=0, le=30, description="Bound on one call to a charger [s].")
    meter_sample_s: int = Field(10, ge=1, le=900, description="MeterValueSampleInterval asked of chargers [s].")
    upstream: UpstreamSection | None = Field(
        None,
        description="The operator's CSMS (back office), optional: with it depotctl is the depot's local"
        " controller, between the chargers and the CSMS. Without it depotctl is the only central system.",
    )


class ControlSection(_Section):
    plan_every_s: float = Field(15.0, ge=1, le=900, description="Re-plan interval [s].")
    horizon_h: float = Field(24.0, gt=0, le=72, description="Planning horizon cap [h].")
    slot_min: int = Field(15, json_schema_extra={"enum": list(SLOT_MINUTES)}, description="Slot length near now [min].")
    default_dwell_h: float = Field(8.0, gt=0, le=72, description="Assumed stay of a session with no departure [h].")
    deadband_a: float = Field(0.5, ge=0, description="Limit changes smaller than this are not sent [A].")
    solver_time_limit_s: float = Field(2.0, gt=0, le=60, description="Time limit of one LP solve [s].")
    recover_cycles: int = Field(3, ge=1, le=100, description="Good cycles needed to leave fail-safe.")
    when_short: Literal["share", "complete"] = Field(
        "complete",
        description=(
            "When not every departure's need can be met within a priority class: `complete` as many"
            " vehicles as possible, then the most energy for the rest (departures first,"
            " docs/planner.md), or `share` the shortfall in proportion to need (nobody waits; on real"
            " session data far fewer vehicles are ready on time)."
        ),
    )
    departure_history: bool = Field(
        True,
        description=(
            "Plan a vehicle that habitually leaves early against an earlier departure than declared,"
            " from its history of declared vs actual departures (docs/departures.md)."
        ),
    )
    plan_cost: bool = Field(
        False,
        description=(
            "Let the planner move charging to cheaper hours and under the billing period's peak"
            " (tariff.energy, prices_file, tariff.demand, PV) once the departures are decided."
            " With a demand charge it also counts the vehicles the depot's own history (the sessions of"
            " the last weekdays, or weekend days, in the history database) says are still to come today,"
            " and plans a DC bus whose state of charge it knows on its battery's taper."
            " Off by default: in the simulator it still costs a few departures on real session data"
            " (docs/planner.md, 'The bill'); the bill is tracked and shown either way."
        ),
    )


class VehicleSection(_Section):
    id: str = Field(min_length=1, description="Vehicle id (fleet number).")
    id_tags: list[str] = Field(default_factory=list, description="RFID/id tags that identify the vehicle.")
    battery_kwh: float | None = Field(None, gt=0, description="Usable battery capacity [kWh].")
    max_kw: float | None = Field(None, gt=0, description="Vehicle's highest charging power [kW].")
    max_a: float | None = Field(None, gt=0, description="Vehicle's highest AC current per phase [A].")
    priority: int = Field(5, ge=1, le=9, description="1 (served first) … 9 (served last).")
    tenant: str | None = Field(None, description="Operator owning the vehicle (multi-tenant depots).")


class DepartsSection(_Section):
    at: str = Field(description="HH:MM (recurring, with `days`) or an ISO local date-time (one-off).")
    days: list[Day] | None = Field(None, description="Weekdays of a recurring departure: mon … sun.")


class ScheduleSection(_Section):
    vehicle: str = Field(description="Vehicle id.")
    departs: DepartsSection = Field(description="When the vehicle leaves.")
    energy_kwh: float | None = Field(None, gt=0, description="Energy needed by departure [kWh].")
    target_soc_pct: float | None = Field(None, gt=0, le=100, description="Or: state of charge at departure [%].")
    priority: int | None = Field(None, ge=1, le=9, description="Overrides the vehicle's priority.")


class TariffStepSection(_Section):
    at: str = Field(
        description="HH:MM (site-local) from which the price applies, every day, until the next step;"
        " steps in time order. Before the first step of the day the last one's price applies."
    )
    price_per_kwh: float = Field(
        description="Energy price [currency per kWh imported]; may be negative (a day-ahead market's"
        " surplus hours)."
    )


class DemandSection(_Section):
    """The demand charge: the billing period's highest average grid import over one window, priced
    per kW. The planner keeps new load under the period's peak so far where departures allow."""

    price_per_kw: float = Field(
        ge=0, description="Price of the billing period's peak [currency per kW of the highest window average]."
    )
    window_min: int = Field(
        15,
        json_schema_extra={"enum": list(DEMAND_WINDOW_MINUTES)},
        description="Averaging window of the utility's demand meter [min]: 5, 10, 15, 30 or 60 — the"
        " integration periods demand meters use, each dividing the hour so windows start on the"
        " clock (:00, :15, …) as the meter's do. Ask the utility; 15 is the most common.",
    )
    period: Literal["month"] = Field(
        "month",
        description="Billing period whose peak is charged: `month` (the calendar month, site-local), the"
        " only one supported.",
    )


class TariffSection(_Section):
    """What the depot pays for electricity. The older form, a list of energy steps
    (`tariff: [{at: "00:00", price_per_kwh: 0.18}, …]`), is shorthand for `tariff: {energy: [...]}`."""

    currency: str = Field(
        "EUR",
        description="ISO 4217 code of every price in this section (EUR, USD, GBP, …): 3 capital letters.",
    )
    energy: list[TariffStepSection] = Field(
        default_factory=list, description="Daily time-of-use energy prices, site-local, repeating every day."
    )
    prices_file: str | None = Field(
        None,
        min_length=1,
        description="CSV of dated prices (ISO start time, price per kWh), e.g. day-ahead prices an"
        " operator's cron job drops there; where it covers a time it wins over `energy`. Re-read when"
        " it changes; check-config warns while it does not exist.",
    )
    demand: DemandSection | None = Field(None, description="The demand charge, optional.")


class PvSection(_Section):
    """On-site PV production. The base load stays grid import minus EV current; the PV meter's
    history gives the day-ahead PV forecast."""

    meter: str = Field(
        min_length=1,
        description="Id of the meter in `meters` measuring the PV output alone (a meter with a power"
        " register; not the grid's or a circuit's meter).",
    )


class ApiSection(_Section):
    listen: str = Field("127.0.0.1:8080", description="HOST:PORT of the HTTP API and status page.")
    tokens_file: str | None = Field(None, description="YAML list of API tokens (hashes) with roles.")


class MetricsSection(_Section):
    listen: str = Field("127.0.0.1:9464", description="HOST:PORT of the Prometheus /metrics endpoint.")


class StorageSection(_Section):
    path: str = Field("/var/lib/depotctl/depot.db", description="SQLite database file.")
    retention_days: int = Field(90, ge=1, le=3650, description="History kept [days].")


class SiteFile(_Section):
    """One depot: its grid connection, circuit tree, meters, chargers, vehicles and departures."""

    model_config = ConfigDict(title="depotctl site file (schema v1)")

    version: int = Field(1, ge=1, le=1, description="Schema version of this file (1).")
    site: SiteSection = Field(description="Name, time zone, supply system and nominal voltage.")
    grid: GridSection = Field(description="The grid connection: the root of the circuit tree.")
    meters: list[MeterSection] = Field(default_factory=list, description="Modbus meters.")
    circuits: list[CircuitSection] = Field(default_factory=list, description="Feeders and sub-boards (flat list).")
    chargers: list[ChargerSection] = Field(default_factory=list, description="Charge points.")
    failsafe: FailsafeSection = Field(default_factory=FailsafeSection, description="Limits used when blind.")
    ocpp: OcppSection = Field(default_factory=OcppSection, description="The OCPP server chargers connect to.")
    control: ControlSection = Field(default_factory=ControlSection, description="Planner timing and tuning.")
    vehicles: list[VehicleSection] = Field(default_factory=list, description="Fleet vehicles.")
    schedules: list[ScheduleSection] = Field(default_factory=list, description="Departures.")
    tariff: Annotated[
        TariffSection, BeforeValidator(expand_tariff, json_schema_input_type=TariffSection | list[TariffStepSection])
    ] = Field(
        default_factory=TariffSection,
        description="Energy prices and the demand charge (a list of energy steps: the older short form).",
    )
    pv: PvSection | None = Field(None, description="On-site PV production, optional.")
    api: ApiSection = Field(default_factory=ApiSection, description="HTTP API for fleet managers.")
    metrics: MetricsSection = Field(default_factory=MetricsSection, description="Prometheus endpoint.")
    storage: StorageSection = Field(default_factory=StorageSection, description="History database.")


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model inside a field's type (``list[X]``, ``X | None``, ``dict[str, X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = section_model(arg)
        if found is not None:
            return found
    return None
