from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml

from controller.chargers.server import CentralSystem
from controller.config.loader import load_site_text
from controller.model.site import Site
from tests.chargers.schemas import WireLog


def make_site(
    chargers: list[dict[str, Any]] | None = None,
    *,
    ttl_s: float = 60.0,
    vehicles: list[dict[str, Any]] | None = None,
    **ocpp: Any,
) -> Site:
    doc: dict[str, Any] = {
        "version": 1,
        "site": {"name": "test depot", "timezone": "UTC"},
        "grid": {"limit_a": 400},
        "chargers": chargers or [{"id": "CP1", "max_a": 32}],
        "failsafe": {"charger_a": 6, "dc_kw": 10},
        "ocpp": {"listen": "127.0.0.1:9000", "security_profile": 0, "meter_sample_s": 1, "call_timeout_s": 2, **ocpp},
        "vehicles": vehicles if vehicles is not None else [{"id": "BUS-1", "id_tags": ["TAG-BUS1"]}],
    }
    for ch in doc["chargers"]:
        ch.setdefault("max_a", 32)
    site = load_site_text(yaml.safe_dump(doc)).site
    return dataclasses.replace(site, ocpp=dataclasses.replace(site.ocpp, profile_ttl_s=ttl_s))


async def eventually(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class Wire:
    """Validates every frame the server sends or receives, per charger version."""

    def __init__(self) -> None:
        self.logs: dict[str, WireLog] = {"1.6": WireLog("1.6"), "2.0.1": WireLog("2.0.1")}

    def hook(self, version: str, direction: str, raw: str | bytes) -> None:
        self.logs[version].record(direction, raw)

    def frames(self, version: str) -> int:
        return len(self.logs[version].frames)

    @property
    def errors(self) -> list[str]:
        return self.logs["1.6"].errors + self.logs["2.0.1"].errors


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
async def server_factory(wire: Wire) -> AsyncIterator[Callable[..., Any]]:
    started: list[CentralSystem] = []

    async def make(site: Site, **kw: Any) -> CentralSystem:
        kw.setdefault("frame_hook", wire.hook)
        kw.setdefault("boot_grace_s", 1.0)
        cs = CentralSystem(site, host="127.0.0.1", port=0, **kw)
        await cs.start()
        started.append(cs)
        return cs

    yield make
    for cs in started:
        await cs.stop()
    assert wire.errors == [], "\n".join(wire.errors)
