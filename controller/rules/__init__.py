"""The pure per-cycle rules: functions of what was measured, the site and ``now`` — no I/O, no
daemon state. The daemon's loops (``controller/daemon/``) and the simulator (``controller/simulate/``)
call the same rules.

* :mod:`.line_loads` — line currents at every node as phasors (a charger's draw lifted through
  transformers); :mod:`.line_base` — the base load on a line, bounded from above;
* :mod:`.loads` — the load per node (known loads, base loads, budgets of chargers out of contact,
  the held base);
* :mod:`.shed` — the overload shed: scale chargers down at once when a node is over its limit;
* :mod:`.learn` — a vehicle that limits itself: its observed maximum;
* :mod:`.failsafe` — the fail-safe state machine (``normal`` ↔ ``failsafe``, with the reason).
"""
