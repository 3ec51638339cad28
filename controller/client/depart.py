"""``depotctl depart`` and ``depotctl schedule import``: tell the running daemon when vehicles leave.

::

    depotctl depart VAN-01 --at 05:30 --energy-kwh 200            # one-off, the next 05:30 to come
    depotctl depart VAN-01 --at 2024-11-27T05:30 --soc 90          # one-off on that day
    depotctl depart VAN-01 --at 05:30 --energy-kwh 60 --days mon-fri --priority 2   # recurring
    depotctl depart VAN-01 --clear                                 # remove its one-off departures
    depotctl depart VAN-01 --clear --days sat,sun                  # remove its schedules on those days
    depotctl schedule import schedules.csv                         # replace the run-time schedules

Times are the site's local time (the daemon says which zone). ``--at HH:MM`` without ``--days`` is a
one-off at the next occurrence of that time: today if it is still ahead, else tomorrow. With
``--days`` it adds a run-time recurring schedule for the vehicle, replacing its run-time schedules
on any of those days (read with ``GET /schedules`` and written back whole with ``PUT
/schedules``: a change someone else makes in between is overwritten). The site file's own
``schedules:`` are not touched.

The daemon is found as by ``depotctl status`` (``--config`` / ``--url``); the token comes from
``--token-file`` or ``$DEPOTCTL_TOKEN``. Exit status: 0 done; 1 the daemon refused (one line per
problem on stderr) or no daemon answered; 2 a bad argument or an unreadable file, nothing sent.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.client.api import ApiClient, Refused, Unreachable, add_connection_options, client_from_args
from controller.client.args import positive
from controller.fleet.book import format_days, parse_days, parse_hhmm
from controller.fleet.departures import local_instant

EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad combination of arguments; ``str()`` is the message (exit status 2)."""


# --- argument types ------------------------------------------------------------------------------------


def _soc(text: str) -> float:
    value = positive(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"a state of charge is at most 100 %, got {text}")
    return value


def _priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 9:
        raise argparse.ArgumentTypeError(f"must be 1 (served first) … 9 (last), got {value}")
    return value


def _days(text: str) -> str:
    try:
        return format_days(parse_days(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _at(text: str) -> time | datetime:
    """``HH:MM`` (a time of day) or an ISO date and time (``2024-11-27T05:30``, offset optional)."""
    try:
        return parse_hhmm(text)
    except ValueError:
        pass
    try:
        if len(text.strip()) > len("2024-11-27"):
            return datetime.fromisoformat(text.strip())
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected HH:MM or a date and time like 2024-11-27T05:30, got {text!r}")


def register(sub: Any) -> None:
    """Add ``depotctl depart`` and ``depotctl schedule import``."""
    p = sub.add_parser("depart", help="set or clear a vehicle's departure on the running daemon")
    p.add_argument("vehicle", metavar="VEHICLE", help="vehicle id from the site file")
    p.add_argument("--at", type=_at, metavar="HH:MM", help="departure time, site-local (or YYYY-MM-DDTHH:MM)")
    need = p.add_mutually_exclusive_group()
    need.add_argument("--energy-kwh", type=positive, metavar="N", help="energy needed by then [kWh]")
    need.add_argument("--soc", type=_soc, metavar="PCT", help="state of charge wanted by then [%%]")
    p.add_argument("--days", type=_days, metavar="DAYS", help="recurring on these days: mon-fri, sat,sun, daily …")
    p.add_argument("--priority", type=_priority, metavar="N", help="1 (served first) … 9 (last)")
    p.add_argument("--clear", action="store_true", help="remove the one-off departures (with --days: the schedules)")
    add_connection_options(p)
    p.set_defaults(func=_cmd_depart)

    schedule = sub.add_parser("schedule", help="recurring departures on the running daemon")
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION")
    actions.required = True
    imp = actions.add_parser("import", help="replace the run-time schedules with a CSV file's (all or nothing)")
    imp.add_argument("file", metavar="FILE.csv", help="columns vehicle,days,at,energy_kwh|target_soc_pct[,priority]")
    add_connection_options(imp)
    imp.set_defaults(func=_cmd_import)


# --- depotctl depart --------------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> None:
    given = [f"--{n.replace('_', '-')}" for n in ("at", "energy_kwh", "soc", "priority") if getattr(args, n)]
    if args.clear:
        if given:
            raise UsageError(f"--clear takes no {', '.join(given)}")
        return
    if args.at is None:
        raise UsageError("give --at HH:MM (or --clear)")
    if args.energy_kwh is None and args.soc is None:
        raise UsageError("give the energy needed (--energy-kwh N) or the state of charge wanted (--soc PCT)")
    if args.days is not None and not isinstance(args.at, time):
        raise UsageError("with --days, --at is a time of day HH:MM")


def _cmd_depart(args: argparse.Namespace) -> int:
    command = "depotctl depart"
    try:
        _check(args)
    except UsageError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = client_from_args(args, command)
    if client is None:
        return EXIT_USAGE
    vehicle = urllib.parse.quote(args.vehicle, safe="")
    try:
        if args.clear and args.days is None:
            return _clear(client, args.vehicle, vehicle)
        zone, now = _site_clock(client)
        if args.days is not None:
            return _recurring(client, args, zone)
        return _one_off(client, args, vehicle, zone, now)
    except Refused as exc:
        for line in exc.lines:
            print(f"{command}: {args.vehicle}: {line}", file=sys.stderr)
        return EXIT_FAILED
    except Unreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED


def _site_clock(client: ApiClient) -> tuple[ZoneInfo, datetime]:
    """The site's time zone and the daemon's clock, from ``GET /status``."""
    status = client.get("/status")
    try:
        return ZoneInfo(status["timezone"]), datetime.fromisoformat(status["now"])
    except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError):
        raise Unreachable(f"{client.command}: {client.base_url} sent a status without timezone and now") from None


def next_occurrence(wall: time, zone: ZoneInfo, now: datetime) -> datetime:
    """The next instant at or after ``now`` showing ``wall`` on the site's clock: today if it is still
    ahead, else tomorrow (a wall time skipped by a DST change moves forward by the gap)."""
    today = now.astimezone(zone).date()
    for day in (today, today + timedelta(days=1)):
        at = local_instant(day, wall, zone)
        if at > now:
            return at.astimezone(zone)
    return local_instant(today + timedelta(days=2), wall, zone).astimezone(zone)


def _one_off(client: ApiClient, args: argparse.Namespace, vehicle: str, zone: ZoneInfo, now: datetime) -> int:
    at: datetime = next_occurrence(args.at, zone, now) if isinstance(args.at, time) else args.at
    body: dict[str, Any] = {"at": at.isoformat(timespec="seconds")}
    if args.energy_kwh is not None:
        body["energy_kwh"] = args.energy_kwh
    else:
        body["target_soc_pct"] = args.soc
    if args.priority is not None:
        body["priority"] = args.priority
    answer = client.put(f"/vehicles/{vehicle}/departure", body)
    one_off = answer["one_off"]
    when = datetime.fromisoformat(one_off["at"])
    print(f"{args.vehicle} departs {_when(when)} ({answer['timezone']}), {_need(one_off)} — set")
    nxt = answer.get("next_departure")
    if nxt and datetime.fromisoformat(nxt["at"]) < when:
        print(f"note: {args.vehicle} leaves earlier first: {_when(datetime.fromisoformat(nxt['at']))} ({nxt['rule']})")
    return 0


def _clear(client: ApiClient, name: str, vehicle: str) -> int:
    answer = client.delete(f"/vehicles/{vehicle}/departure")
    print(f"{name}: one-off departure cleared" if answer["removed"] else f"{name}: no one-off departure to clear")
    nxt = answer.get("next_departure")
    if nxt:
        print(f"{name}: next departure {_when(datetime.fromisoformat(nxt['at']))} ({nxt['rule']})")
    else:
        print(f"{name}: no departure set; a session gets the site's default dwell time")
    return 0


def _recurring(client: ApiClient, args: argparse.Namespace, zone: ZoneInfo) -> int:
    days = set(parse_days(args.days))
    current: list[dict[str, Any]] = client.get("/schedules")
    replaced = [e for e in current if e["vehicle"] == args.vehicle and days & set(parse_days(e["days"]))]
    kept = [_entry_in(e) for e in current if e not in replaced]
    if args.clear:
        client.put("/schedules", kept)
        if not replaced:
            print(f"{args.vehicle}: no run-time schedule on {args.days} to clear")
        for e in replaced:
            print(f"{args.vehicle}: schedule {e['id']} ({e['days']} {e['at']}) cleared")
        return 0
    new: dict[str, Any] = {"vehicle": args.vehicle, "days": args.days, "at": args.at.strftime("%H:%M")}
    if args.energy_kwh is not None:
        new["energy_kwh"] = args.energy_kwh
    else:
        new["target_soc_pct"] = args.soc
    if args.priority is not None:
        new["priority"] = args.priority
    client.put("/schedules", [*kept, new])
    print(f"{args.vehicle} departs {args.days} {new['at']} ({zone.key}), {_need(new)} — schedule set")
    for e in replaced:
        print(f"  replaces {e['id']} ({e['days']} {e['at']})")
    return 0


def _entry_in(e: dict[str, Any]) -> dict[str, Any]:
    """A ``GET /schedules`` entry as a ``PUT /schedules`` entry (the fields it takes)."""
    keys = ("id", "vehicle", "days", "at", "energy_kwh", "target_soc_pct", "priority")
    return {k: e[k] for k in keys if e.get(k) is not None}


def _when(at: datetime) -> str:
    """``Fri 27 Nov 05:30`` (site-local, as the daemon sent it)."""
    return f"{at:%a} {at.day} {at:%b %H:%M}"


def _need(d: dict[str, Any]) -> str:
    text = f"{d['energy_kwh']:g} kWh" if d.get("energy_kwh") is not None else f"to {d['target_soc_pct']:g} % SoC"
    if d.get("priority") is not None:
        text += f", priority {d['priority']}"
    return text


# --- depotctl schedule import -------------------------------------------------------------------------------


def _cmd_import(args: argparse.Namespace) -> int:
    command = "depotctl schedule import"
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        print(f"{command}: cannot read {args.file}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    client = client_from_args(args, command)
    if client is None:
        return EXIT_USAGE
    try:
        entries: list[dict[str, Any]] = client.post_csv("/schedules/import", text)
    except Refused as exc:
        for line in exc.lines:
            print(f"{args.file}: {line}", file=sys.stderr)
        if exc.status == 422:
            n = len(exc.lines)
            print(f"{args.file}: {n} problem{'s' if n != 1 else ''}, nothing imported", file=sys.stderr)
        return EXIT_FAILED
    except Unreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.file}: {len(entries)} schedule{'s' if len(entries) != 1 else ''} in force")
    for e in entries:
        print(f"  {e['id']:<14} {e['days']:<12} {e['at']:<6} {_need(e)}")
    return 0
