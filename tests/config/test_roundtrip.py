"""Property: any valid site written out as YAML loads back to the same model, and again."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings

from controller.config import load_site_text
from controller.config.convert import to_dict
from controller.model.site import Site
from tests.config.strategies import sites


def dump(site: Site) -> str:
    return yaml.safe_dump(to_dict(site), sort_keys=False, allow_unicode=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_generated_site_loads_and_round_trips(site: Site) -> None:
    loaded = load_site_text(dump(site), "generated.yaml").site
    assert loaded == site
    again = load_site_text(dump(loaded), "again.yaml").site
    assert again == loaded
