"""``check-config``'s lines about what the site pays and whom it answers to, below the tree:
the tariff, the PV meter and the upstream CSMS (each only when the site has it)."""

from __future__ import annotations

from controller.config.tariff import tariff_text
from controller.config.upstream import upstream_text
from controller.model.site import Site


def summary_lines(site: Site) -> list[str]:
    lines = [tariff_text(site.tariff)]
    if site.pv is not None:
        lines.append(f"pv: output measured by meter {site.pv.meter}")
    lines.append(upstream_text(site.ocpp.upstream))
    return [line for line in lines if line is not None]
