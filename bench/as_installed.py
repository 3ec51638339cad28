"""Run ``depotctl`` as a depot PC runs it: without the packages only the optional extras bring.

The dev venv carries the extras (``acnsim`` brings pandas, scipy, scikit-learn; ``plot`` brings
matplotlib), and some runtime dependencies import an optional package whenever it is installed
(sqlite-utils imports pandas): the daemon would then measure 40 MB larger than on a depot PC
installed from ``requirements.txt``. ``bench/loop.py`` starts the daemon through this file.
"""

from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path

NOT_ON_A_DEPOT_PC = ("pandas", "scipy", "sklearn", "acnportal", "matplotlib")


class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.split(".")[0] in NOT_ON_A_DEPOT_PC:
            raise ImportError(f"{fullname} is not installed on a depot PC")
        return None


if __name__ == "__main__":
    here = Path(__file__).resolve().parent  # bench/ holds ocpp.py and meter.py: not packages to import
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.meta_path.insert(0, _Absent())
    from controller.cli import main

    sys.exit(main(sys.argv[1:]))
