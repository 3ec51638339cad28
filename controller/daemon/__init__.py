"""The daemon (``depotctl run``): the control loops, the fail-safe wiring and the lifecycle.

- :mod:`.core` — :class:`Daemon`, the composition root: builds the parts below, wires them
  through narrow ports (:mod:`.ports`) and runs the lifecycle (start, reload on SIGHUP, stop on
  SIGTERM). No other module here imports it.
- :mod:`.fast` — the fast loop: meters (:mod:`.readings`), draws and budgets (:mod:`.draws`),
  health, the overload shed (:mod:`.overload`), metrics, history; publishes an ``Observation``.
- :mod:`.plan_loop` — the plan loop: snapshot, planner (:mod:`.planning`: a worker process),
  dispatch; publishes a ``PlanOutcome``.
- :mod:`.dispatch` — the one owner of what each session was sent (:mod:`.uncontrolled`: chargers
  that reject or ignore limits); :mod:`.safety` — the fail-safe state in force.
- :mod:`.loads`, :mod:`.line_loads` — node loads and base loads from the measurements (pure).
- :mod:`.sessions` — the planner's sessions from the chargers' state and the fleet (pure).
- :mod:`.history` — the open sessions' book, charger events to history; :mod:`.record` — the store.
- :mod:`.fleet` — departures, schedules, the API's fleet face; :mod:`.jobs` — apscheduler jobs:
  retention, roll-up, departures.
- :mod:`.status` — the status the API, ``depotctl status`` and the demo show.
- :mod:`.watchdog` — systemd's watchdog and READY.
"""
