"""A charger's ``reaction_s`` below the 5 s default is legal (the site's own word) but shortens its
allowances for every EV it will charge: ``check-config`` warns at its line (review finding 1)."""

from __future__ import annotations

from pathlib import Path

from controller.config import load_site_text
from controller.config.checks import DEFAULT_REACTION_S
from controller.daemon.sessions import REACTION_S

DEMO = (Path(__file__).resolve().parents[2] / "config" / "demo-site.yaml").read_text()


def _warnings(text: str) -> list[str]:
    return [w.format("f.yaml") for w in load_site_text(text, "f.yaml").warnings]


def test_a_reaction_below_the_default_is_warned_at_its_line() -> None:
    short = DEMO.replace("{id: CP07, circuit: feeder-b,", "{id: CP07, reaction_s: 0.5, circuit: feeder-b,")
    long = DEMO.replace("{id: CP07, circuit: feeder-b,", "{id: CP07, reaction_s: 7.5, circuit: feeder-b,")
    assert short != DEMO and long != DEMO
    line = next(i for i, text in enumerate(short.splitlines(), 1) if "reaction_s: 0.5" in text)
    warned = [w for w in _warnings(short) if "reaction_s" in w]
    assert len(warned) == 1
    assert warned[0].startswith(f"f.yaml:{line}:")
    assert "chargers[6].reaction_s: warning: 0.5 s is below the 5 s" in warned[0]
    assert "shortens this charger's allowances" in warned[0]
    assert not [w for w in _warnings(long) if "reaction_s" in w]
    assert not [w for w in _warnings(DEMO) if "reaction_s" in w]


def test_the_default_is_the_daemons() -> None:
    assert DEFAULT_REACTION_S == REACTION_S
