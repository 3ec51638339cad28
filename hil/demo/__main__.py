"""``python -m hil.demo``: the demo without the ``depotctl`` command (what ``make demo`` runs)."""

import sys

from hil.demo.command import main

sys.exit(main())
