"""The commands that talk HTTP to a running daemon, over one client (:mod:`.api`).

* :mod:`.api` — the client: where the daemon is (``--url``, ``--config``'s ``api.listen``, the
  default), the token, one-line errors;
* :mod:`.status` — ``depotctl status``, printed by :mod:`.view` (the status page for a terminal,
  :mod:`.view_format` its formatting; the demo draws the same page);
* :mod:`.depart` — ``depotctl depart`` and ``depotctl schedule import``.
"""
