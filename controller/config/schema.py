"""The site file, schema v1, as pydantic models: types, ranges, defaults, unknown keys.

These key names are a contract: extend, never rename. Cross-field rules (references, the
circuit tree, phase rotations, min/max) live in :mod:`controller.config.checks`, which knows the
exact path of each value. The descriptions here feed ``depotctl schema`` and the README table.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    at: str = Field(description="HH:MM from which the price applies (daily, until the next step).")
    price_per_kwh: float = Field(description="Energy price [currency/kWh].")


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
    tariff: list[TariffStepSection] = Field(default_factory=list, description="Daily time-of-use prices.")
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
