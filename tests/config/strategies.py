"""Hypothesis strategies for valid sites, built as model objects (the loader's output type)."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

from hypothesis import strategies as st

from controller.config.schema import DEMAND_WINDOW_MINUTES
from controller.model import site as m
from controller.model.presets import PRESET_NAMES

DATA = Path(__file__).parent / "data"
UPSTREAM_PASSWORDS = str(DATA / "upstream-passwords.yaml")
CA_FILE = str(DATA / "csms-ca.pem")
CURRENCIES = ["EUR", "CHF", "USD", "GBP", "SEK"]
CSMS_HOSTS = ["csms.example.com", "10.0.0.7:9000", "[::1]:8443", "backoffice"]
CSMS_PATHS = ["", "/ocpp", "/steve/websocket/CentralSystemService", "/ocpp/v16"]

# Words YAML 1.1 would turn into numbers, booleans, null or times if they were not quoted.
TRICKY = ["0012", "1e3", "yes", "off", "null", "05:30", "0x1F", "N", "-1", ".5", "~"]
TIMEZONES = ["Europe/Amsterdam", "Europe/London", "America/New_York", "Australia/Sydney", "UTC"]
ROT3 = ["L1-L2-L3", "L2-L3-L1", "L3-L1-L2"]
PAIRS = ["L1-L2", "L2-L3", "L3-L1"]
VOLTAGES: dict[m.Service, list[float]] = {
    "wye": [120.0, 230.0, 240.0, 277.0],
    "delta": [208.0, 240.0, 480.0, 600.0],
    "split-phase": [110.0, 120.0],
}
ONE_PHASE: dict[m.Service, list[str]] = {
    "wye": ["L1", "L2", "L3", *PAIRS],
    "delta": PAIRS,
    "split-phase": ["L1", "L2", "L1-L2"],
}
limit_sum: st.SearchStrategy[m.LimitSum] = st.sampled_from(["phasor", "arithmetic"])

ident = st.one_of(st.sampled_from(TRICKY), st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True))
text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
amps = st.floats(min_value=10, max_value=2000, allow_nan=False, allow_infinity=False)
pos = st.floats(min_value=0.1, max_value=1000, allow_nan=False, allow_infinity=False)
ratio = st.floats(min_value=0.5, max_value=1.0, allow_nan=False)


@st.composite
def transformers(draw: st.DrawFn, parent_bus: m.Service) -> m.Transformer:
    """A transformer a circuit on a ``parent_bus`` may have (three-phase ones need three lines, wye-wye a neutral)."""
    ratio_ = draw(st.floats(min_value=0.5, max_value=5.0, allow_nan=False))
    connection: m.TransformerConnection = "split-phase"
    if parent_bus == "wye":
        connection = draw(st.sampled_from(["delta-wye", "wye-wye", "split-phase"]))
    elif parent_bus == "delta":  # a wye-wye primary needs a neutral
        connection = draw(st.sampled_from(["delta-wye", "split-phase"]))
    if connection == "delta-wye":
        return m.Transformer(connection, ratio_, vector_group=draw(st.sampled_from(["Dyn1", "Dyn11"])))
    if connection != "split-phase":
        return m.Transformer(connection, ratio_)  # `primary` stays the model's default: files cannot set it
    primary = "L1-L2" if parent_bus == "split-phase" else draw(st.sampled_from(PAIRS))
    return m.Transformer("split-phase", ratio_, primary)


@st.composite
def tariffs(draw: st.DrawFn) -> m.Tariff:
    """Either form's worth of tariff: energy steps only (written as the list), or with a currency,
    dated prices and a demand charge (written as the mapping)."""
    minutes = sorted(draw(st.lists(st.integers(0, 24 * 60 - 1), max_size=4, unique=True)))
    energy = tuple(m.TariffStep(time(t // 60, t % 60), draw(st.floats(-1, 1))) for t in minutes)
    if draw(st.booleans()):
        return m.Tariff(energy=energy)
    demand = None
    if draw(st.booleans()):
        price = draw(st.floats(0, 100, allow_nan=False, allow_infinity=False))
        demand = m.DemandCharge(price, draw(st.sampled_from(DEMAND_WINDOW_MINUTES)))
    return m.Tariff(
        currency=draw(st.sampled_from(CURRENCIES)),
        energy=energy,
        prices_file=draw(st.none() | st.sampled_from(["/var/lib/depotctl/prices.csv", "prices 2026.csv"])),
        demand=demand,
    )


@st.composite
def upstreams(draw: st.DrawFn) -> m.Upstream:
    profile = draw(st.integers(0, 2))
    scheme = "wss" if profile == 2 else "ws"
    url = f"{scheme}://{draw(st.sampled_from(CSMS_HOSTS))}{draw(st.sampled_from(CSMS_PATHS))}"
    passwords = UPSTREAM_PASSWORDS if profile else draw(st.none() | st.just(UPSTREAM_PASSWORDS))
    ca_file = draw(st.none() | st.just(CA_FILE)) if profile == 2 else None
    offline: m.OfflineAuthorize = draw(st.sampled_from(["cache", "accept", "reject"]))
    return m.Upstream(url, profile, passwords, ca_file, offline)


@st.composite
def sites(draw: st.DrawFn) -> m.Site:
    n_ids = draw(st.integers(0, 14))
    ids = draw(st.lists(ident.filter(lambda s: s != "grid"), min_size=n_ids, max_size=n_ids, unique=True))
    n_meters = draw(st.integers(0, min(3, len(ids))))
    meter_ids, rest = ids[:n_meters], ids[n_meters:]
    pv_meter = meter_ids[-1] if len(meter_ids) >= 2 and draw(st.booleans()) else None
    load_meters = [x for x in meter_ids if x != pv_meter]  # the grid's and circuits' (a PV meter is neither)
    n_circuits = draw(st.integers(0, min(5, len(rest))))
    circuit_ids, charger_ids = rest[:n_circuits], rest[n_circuits:]

    meters = []
    for mid in meter_ids:
        if draw(st.booleans()):
            link = m.ModbusLink(unit=draw(st.integers(1, 247)), host="127.0.0.1", port=draw(st.integers(1, 65535)))
        else:
            link = m.ModbusLink(
                unit=draw(st.integers(1, 247)), serial="/dev/ttyUSB0", parity=draw(st.sampled_from("NEO"))
            )
        registers: tuple[tuple[str, m.RegisterSpec], ...] = ()
        preset: str | None = draw(st.sampled_from(PRESET_NAMES))
        if draw(st.booleans()):
            preset = None
            registers = (
                ("current_l1_a", m.RegisterSpec(address=draw(st.integers(0, 65535)), type="int32", scale=0.001)),
                ("power_w", m.RegisterSpec(address=12, function="input", word_order="little", na=-1)),
            )
        poll = draw(st.sampled_from([0.5, 1.0, 2.0]))
        signed = draw(st.sampled_from([None, True, False]))
        meters.append(
            m.Meter(mid, link, preset, registers, poll, poll * draw(st.integers(1, 10)), signed_currents=signed)
        )

    service: m.Service = draw(st.sampled_from(["wye", "delta", "split-phase"]))
    bus: dict[str, m.Service] = {"grid": service}  # each node's bus, as controller.model.phasor.node_service
    grid_margin = draw(st.floats(0, 5))
    grid = m.Grid(
        limit_a=draw(amps),
        margin_a=grid_margin,
        limit_kw=draw(st.none() | pos),
        meter=meter_ids[0] if meter_ids else None,
        limit_sum=draw(limit_sum),
    )
    circuits = []
    for i, cid in enumerate(circuit_ids):
        parent = draw(st.sampled_from(["grid", *circuit_ids[:i]]))
        transformer = draw(st.none() | transformers(bus[parent]))
        if transformer is None:
            bus[cid] = bus[parent]
        else:
            bus[cid] = "split-phase" if transformer.connection == "split-phase" else "wye"
        circuits.append(
            m.Circuit(
                cid,
                draw(amps),
                parent,
                draw(st.none() | st.floats(0, 5)),
                draw(st.none() | st.sampled_from(load_meters)) if load_meters else None,
                transformer,
                draw(limit_sum),
            )
        )
    chargers = []
    for chid in charger_ids:
        where = draw(st.sampled_from(["grid", *circuit_ids]))
        if draw(st.booleans()) or bus[where] == "split-phase":  # no 3-phase or DC on a split-phase bus
            phases = 1 if bus[where] == "split-phase" else draw(st.sampled_from([1, 3]))
            rot = draw(st.sampled_from(ROT3 if phases == 3 else ONE_PHASE[bus[where]]))
            lo = draw(st.floats(6, 16))
            chargers.append(
                m.Charger(
                    chid,
                    where,
                    "ac",
                    phases,
                    rot,
                    min_a=lo,
                    max_a=draw(st.floats(lo, 80)),
                    connectors=draw(st.integers(1, 2)),
                )
            )
        else:
            chargers.append(
                m.Charger(
                    chid, where, "dc", 3, "L1-L2-L3", max_kw=draw(pos), efficiency=draw(ratio), power_factor=draw(ratio)
                )
            )
    vehicle_ids = draw(st.lists(ident, max_size=4, unique=True))
    tags = draw(
        st.lists(
            st.from_regex(r"[0-9A-F]{8}", fullmatch=True),
            min_size=len(vehicle_ids),
            max_size=len(vehicle_ids),
            unique=True,
        )
    )
    vehicles = [
        m.Vehicle(
            vid,
            (tag,),
            draw(st.none() | st.floats(20, 600)),
            draw(st.none() | pos),
            None,
            draw(st.integers(1, 9)),
            draw(st.none() | ident),
        )
        for vid, tag in zip(vehicle_ids, tags, strict=True)
    ]
    schedules = []
    for v in vehicles:
        if draw(st.booleans()):
            at = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
            cap = v.battery_kwh or 1000.0
            if draw(st.booleans()) or v.battery_kwh is None:
                energy, soc = draw(st.floats(1, cap)), None
            else:
                energy, soc = None, draw(st.floats(1, 100))
            if draw(st.booleans()):
                days = tuple(draw(st.lists(st.sampled_from(m.WEEKDAYS), min_size=1, max_size=7, unique=True)))
                schedules.append(m.Schedule(v.id, at, days, None, energy, soc, draw(st.none() | st.integers(1, 9))))
            else:
                on = datetime(2026, draw(st.integers(1, 12)), draw(st.integers(1, 28)), at.hour, at.minute)
                schedules.append(m.Schedule(v.id, at, (), on, energy, soc, None))
    profile = draw(st.sampled_from([0, 1]))
    return m.Site(
        site=m.SiteInfo(
            draw(text), draw(st.sampled_from(TIMEZONES)), draw(st.sampled_from(VOLTAGES[service])), service
        ),
        grid=grid,
        meters=tuple(meters),
        circuits=tuple(circuits),
        chargers=tuple(chargers),
        failsafe=m.Failsafe(draw(st.floats(0, 16)), draw(st.floats(0, 50))),
        ocpp=m.Ocpp(
            security_profile=profile,
            passwords_file="/etc/depotctl/pw.yaml" if profile else None,
            upstream=draw(st.none() | upstreams()),
        ),
        control=m.Control(slot_min=draw(st.sampled_from([5, 15, 30]))),
        vehicles=tuple(vehicles),
        schedules=tuple(schedules),
        tariff=draw(tariffs()),
        pv=None if pv_meter is None else m.Pv(pv_meter),
    )
