"""The demo: the whole simulated depot (the :mod:`hil.rig`) with the real daemon, live in the terminal.

:mod:`.run` runs rig and daemon in one loop and notes what happens, :mod:`.view` draws the live
panel, the status line and the summary, :mod:`.command` is ``depotctl demo`` / ``python -m hil.demo``.
The ``depotctl`` command registers ``demo`` through :func:`register` where this package is
importable (a source checkout); the wheel ships only ``controller``.
"""

from hil.demo.command import default_config, main, register

__all__ = ["default_config", "main", "register"]
