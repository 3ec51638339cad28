"""The arrival forecast's cost inside the plan loop (controller.energy.arrivals).

A depot's fortnight of history: ``--chargers`` DC chargers, ``--per-day`` sessions each a day, 14
days (default 1 000 × 3 = 42 000 sessions). Times, per plan of one evening (every 15 s, 19:00 to
20:00, 20 vehicles plugged in):

- ``whole``: :func:`expected_arrivals` from the whole history each plan (what the plan loop did);
- ``build``: the day's candidates (:func:`candidates`): the daemon builds them in the bill's
  thread after each hourly read and at the day's change, not on the event loop;
- ``kept``: each plan's filter of the kept candidates (:func:`expected_from`, on the event loop).

The answers are compared plan by plan (they must be equal).

    .venv/bin/python bench/arrivals.py [--chargers 1000] [--per-day 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.energy.arrivals import ArrivalForecast, PastSession, charger_max_kw, expected_arrivals
from controller.model import Charger, Circuit
from controller.model.site import Grid, Site, SiteInfo

TZ = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 3, 3, 18, 0, tzinfo=UTC)  # a Tuesday, 19:00 in Amsterdam


def depot(chargers: int) -> Site:
    return Site(
        site=SiteInfo(name="bench", timezone="Europe/Amsterdam"),
        grid=Grid(limit_a=4000.0),
        circuits=(Circuit(id="yard", limit_a=4000.0),),
        chargers=tuple(Charger(id=f"DC{i}", circuit="yard", kind="dc", phases=3, phase_rotation="L1-L2-L3",
                               max_kw=150.0) for i in range(chargers)),
    )


def history(chargers: int, per_day: int, rng: random.Random) -> tuple[PastSession, ...]:
    out = []
    for ago in range(1, 15):
        day = (NOW.astimezone(TZ) - timedelta(days=ago)).replace(hour=0, minute=0, second=0, microsecond=0)
        for i in range(chargers):
            for k in range(per_day):
                start = day + timedelta(hours=k * 24 / per_day + rng.uniform(0, 6))
                out.append(PastSession(f"DC{i}", f"bus-{i}-{k}", start.astimezone(UTC),
                                       (start + timedelta(hours=rng.uniform(1, 8))).astimezone(UTC),
                                       rng.uniform(20, 250)))
    return tuple(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--per-day", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rng = random.Random(7)
    site = depot(a.chargers)
    past = history(a.chargers, a.per_day, rng)
    here = [(f"bus-{i}-2", f"DC{i}") for i in range(20)]
    whole: list[float] = []
    kept_s: list[float] = []
    kept = ArrivalForecast()
    for n in range(240):
        now = NOW + timedelta(seconds=15 * n)
        t0 = time.perf_counter()
        got = kept.expected(past, now, TZ, 24.0, here, site)
        kept_s.append(time.perf_counter() - t0)
        if n % 24 == 0:  # the whole forecast is slow: every 6 min of the evening
            t0 = time.perf_counter()
            ref = expected_arrivals(past, now, TZ, 24.0, here, partial(charger_max_kw, site))
            whole.append(time.perf_counter() - t0)
            if ref != got:
                raise SystemExit(f"kept and whole forecasts differ at {now}")
    out = {
        "past_sessions": len(past),
        "whole_ms_median": 1000 * statistics.median(whole),
        "build_ms": 1000 * kept_s[0],
        "kept_ms_median": 1000 * statistics.median(kept_s[1:]),
        "kept_ms_max": 1000 * max(kept_s[1:]),
        "plans": len(kept_s),
    }
    out["ratio_whole_over_kept"] = out["whole_ms_median"] / out["kept_ms_median"]
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['past_sessions']} past sessions, {out['plans']} plans (every 15 s, 19:00-20:00)")
    print("| per plan | ms |\n|---|---:|")
    print(f"| whole forecast (median) | {out['whole_ms_median']:.1f} |")
    print(f"| build the day's candidates (the bill's thread) | {out['build_ms']:.1f} |")
    print(f"| kept: each plan's filter (median / max) | {out['kept_ms_median']:.2f} / {out['kept_ms_max']:.2f} |")
    print(f"| ratio whole / kept | {out['ratio_whole_over_kept']:.0f}x |")


if __name__ == "__main__":
    main()
