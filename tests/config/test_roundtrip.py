"""Property: any valid site written out as YAML loads back to the same model, and again — with
its tariff in either form (a list of steps where that says it all), its PV meter and its upstream
CSMS (whose passwords and CA files are read, as for a running site)."""

from __future__ import annotations

from dataclasses import replace
from datetime import time

import yaml
from hypothesis import HealthCheck, given, settings

from controller.config import load_site_text
from controller.config.convert import to_dict
from controller.model.site import Site, Tariff, TariffStep
from tests.config.strategies import sites

SITE = load_site_text("site: {name: T, timezone: UTC}\ngrid: {limit_a: 50}\nocpp: {security_profile: 0}\n").site


def dump(site: Site) -> str:
    return yaml.safe_dump(to_dict(site), sort_keys=False, allow_unicode=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_generated_site_loads_and_round_trips(site: Site) -> None:
    loaded = load_site_text(dump(site), "generated.yaml").site
    assert loaded == site
    again = load_site_text(dump(loaded), "again.yaml").site
    assert again == loaded
    written = to_dict(site)
    only_steps = site.tariff == Tariff(energy=site.tariff.energy)
    assert isinstance(written["tariff"], list) == only_steps, "the short form exactly when it says it all"
    assert ("pv" in written) == (site.pv is not None)


def test_both_forms_are_read_back() -> None:
    steps = (TariffStep(at=time(0), price_per_kwh=0.2), TariffStep(at=time(6, 30), price_per_kwh=-0.05))
    for tariff, form in ((Tariff(energy=steps), list), (Tariff(currency="USD", energy=steps), dict)):
        site = replace(SITE, tariff=tariff)
        assert isinstance(to_dict(site)["tariff"], form)
        assert load_site_text(dump(site)).site.tariff == tariff
