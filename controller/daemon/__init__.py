"""The daemon (``depotctl run``): the control loops, the fail-safe wiring and the lifecycle.

- :mod:`.core` — :class:`Daemon`: start, run, reload (SIGHUP), stop (SIGTERM), charger events.
- :mod:`.fast` — the fast loop: meters, health, overload shed, metrics, history.
- :mod:`.plan_loop` — the plan loop: snapshot, planner (in a worker thread), dispatch.
- :mod:`.loads` — node loads and base loads from the measurements (pure).
- :mod:`.sessions` — the planner's sessions from the chargers' state and the fleet (pure).
- :mod:`.history` — session bookkeeping and restore from SQLite.
- :mod:`.jobs` — apscheduler jobs: retention, roll-up, departures.
- :mod:`.status` — the status the API, ``depotctl status`` and the demo show.
"""
