"""Commissioning: an acceptance test per charger that measures what it really does with a profile
(``depotctl commission``, ``POST /api/v1/chargers/{id}/commission``; README "Commissioning").

* :mod:`.report` — the checks and the report (JSON form, the site-file lines to add);
* :mod:`.port` — what a commissioning run needs of the daemon (a narrow face);
* :mod:`.runner` — the run itself: the checks in order against one connected charger.
"""
