"""Meters that report signed phase currents (export on a phase, a CT mounted the other way).

Limits see |I| per phase (``reading.current_a``, which the fast loop takes from
``MeterReader.status().usable``); the sign stays in ``current_signed_a``. A meter not declared
signed that reports a negative current is implausible for that read, never 0 and never |I|.
Over real Modbus TCP on loopback against the simulated meter, on a manual clock.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from controller.config import load_site
from controller.config.schema import SIGNED_CURRENT_PRESETS
from controller.meter.errors import Implausible
from controller.meter.meters import SiteMeters
from controller.meter.plausibility import bounds_for, check_signs, check_values
from controller.meter.reading import MeterReading, build_reading
from controller.meter.registers import load_preset, preset_signs_currents, signs_currents
from controller.model.presets import PRESET_NAMES
from hil.meter import MeterSimServer, SimMeter
from tests.meter.conftest import ManualClock
from tests.meter.helpers import meter, reader

READER_LOG = "controller.meter.reader"
EXPORT = (-20.0, 5.0, 10.0)  # PV exporting on L1


# --- the preset files are the truth; the schema's list follows them ---------------------------


def test_presets_that_sign_currents_match_the_schema() -> None:
    assert {n for n in PRESET_NAMES if preset_signs_currents(n)} == set(SIGNED_CURRENT_PRESETS)
    assert load_preset("carlo-gavazzi-em24").signed_currents is True
    assert load_preset("eastron-sdm630").signed_currents is False


def test_the_site_file_overrides_the_preset() -> None:
    em24 = load_preset("carlo-gavazzi-em24")
    sdm = load_preset("eastron-sdm630")
    assert signs_currents(meter(1, preset="carlo-gavazzi-em24"), em24) is True
    assert signs_currents(meter(1, preset="carlo-gavazzi-em24", signed_currents=False), em24) is False
    assert signs_currents(meter(1), sdm) is False
    assert signs_currents(meter(1, signed_currents=True), sdm) is True


# --- pure: the one place readings are made ---------------------------------------------------


def _values(l1: float, l2: float, l3: float) -> dict[str, float | None]:
    return {"current_l1_a": l1, "current_l2_a": l2, "current_l3_a": l3, "power_w": 230.0 * (l1 + l2 + l3)}


def test_signed_reading_gives_magnitudes_and_keeps_the_sign() -> None:
    r = build_reading("g", 1.0, _values(*EXPORT), signed_currents=True)
    assert r is not None
    assert r.current_a == (20.0, 5.0, 10.0)
    assert r.current_signed_a == EXPORT


def test_invert_flips_the_signed_currents_not_the_magnitudes() -> None:
    r = build_reading("g", 1.0, _values(*EXPORT), invert=True, signed_currents=True)
    assert r is not None
    assert r.current_a == (20.0, 5.0, 10.0)
    assert r.current_signed_a == (20.0, -5.0, -10.0)
    assert r.total_power_w == pytest.approx(-230.0 * sum(EXPORT))


def test_unsigned_reading_has_no_direction() -> None:
    r = build_reading("g", 1.0, _values(1.0, -0.0, 3.0))
    assert r is not None
    assert r.current_a == (1.0, 0.0, 3.0) and r.current_signed_a is None


def test_build_reading_never_turns_an_undeclared_negative_into_anything() -> None:
    with pytest.raises(ValueError, match="not declared signed"):
        build_reading("g", 1.0, _values(*EXPORT))


def test_a_reading_holds_magnitudes_only() -> None:
    with pytest.raises(ValueError, match="magnitudes"):
        MeterReading("g", 1.0, (-1.0, 0.0, 0.0))


def test_check_signs_names_meter_phase_and_value() -> None:
    reason = check_signs(_values(3.0, -7.25, 1.0), signed_currents=False, meter_id="grid-meter")
    assert reason is not None
    assert "meter grid-meter phase L2" in reason and "-7.25 A" in reason and "signed_currents: true" in reason
    assert check_signs(_values(3.0, -7.25, 1.0), signed_currents=True, meter_id="grid-meter") is None
    assert check_signs(_values(3.0, -0.0, 1.0), signed_currents=False, meter_id="grid-meter") is None


def test_signed_currents_are_still_bounded_by_magnitude() -> None:
    bounds = bounds_for(63)
    assert check_values(_values(-126.0, 0, 0), bounds, signed_currents=True, meter_id="g") is None
    too_big = check_values(_values(-126.1, 0, 0), bounds, signed_currents=True, meter_id="g")
    assert too_big is not None and "beyond 126 A" in too_big


# --- over TCP --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "signed_currents"),
    [
        ("carlo-gavazzi-em24", None),  # the preset signs (int32)
        ("carlo-gavazzi-em340", None),
        ("sunspec", None),  # model 213, float32
        ("eastron-sdm630", True),  # declared in the site file
    ],
)
async def test_signed_meter_gives_magnitudes_to_the_consumer(
    clock: ManualClock, preset: str, signed_currents: bool | None
) -> None:
    sim = SimMeter(1, preset)
    sim.set_load(base_a=EXPORT, ev_a=(0.0, 16.0, 16.0))
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, preset=preset, signed_currents=signed_currents), clock)
        result = await r.poll()
        await r.hub.close()
    assert result.error is None, result.error
    usable = r.status().usable  # what the fast loop takes
    assert usable is not None
    assert usable.current_a == pytest.approx((20.0, 21.0, 26.0), abs=0.01)
    assert usable.current_signed_a == pytest.approx((-20.0, 21.0, 26.0), abs=0.01)
    assert (r.accepted, r.rejected) == (1, 0)


async def test_sunspec_model_203_int16_signed_currents(clock: ManualClock) -> None:
    sim = SimMeter(3, "sunspec", sunspec_model=203)
    sim.set_load(base_a=(-12.5, 0.0, 3.0))
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, unit=3, preset="sunspec"), clock)
        result = await r.poll()
        await r.hub.close()
    assert result.reading is not None, result.error
    assert result.reading.current_a == pytest.approx((12.5, 0.0, 3.0), abs=0.005)
    assert result.reading.current_signed_a == pytest.approx((-12.5, 0.0, 3.0), abs=0.005)


async def test_undeclared_negative_current_is_implausible_then_stale_then_recovers(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An SDM630 (not declared signed) reporting -7.5 A on L2: each read is refused with the meter,
    the phase and the value; nothing stands in for the load, so the meter goes stale (fail-safe)."""
    caplog.set_level(logging.DEBUG, logger=READER_LOG)
    sim = SimMeter(1, "eastron-sdm630")
    sim.set_load(base_a=(10.0, 12.0, 8.0))
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, stale_after_s=3.0), clock)
        assert (await r.poll()).reading is not None
        sim.set_load(base_a=(10.0, -7.5, 8.0))
        for _ in range(3):
            clock.advance(1.0)
            result = await r.poll()
            assert result.reading is None and isinstance(result.error, Implausible)
            assert "meter m1 phase L2: current_l2_a is -7.50 A" in str(result.error)
            assert result.values is not None and result.values["current_l2_a"] == pytest.approx(-7.5)
        status = r.status()
        assert status.stale and status.usable is None  # never 0 A, never 7.5 A
        assert status.reading is not None and status.reading.current_a == pytest.approx((10.0, 12.0, 8.0))
        assert "implausible value: meter m1 phase L2" in (status.problem or "")
        errors = [x for x in caplog.records if x.name == READER_LOG and x.levelno == logging.ERROR]
        assert len(errors) == 1 and "-7.50 A" in errors[0].getMessage()

        sim.set_load(base_a=(10.0, 7.5, 8.0))
        clock.advance(1.0)
        result = await r.poll()
        assert result.reading is not None and result.reading.current_a == pytest.approx((10.0, 7.5, 8.0))
        assert not r.status().stale and r.status().problem is None
        await r.hub.close()
    assert (r.accepted, r.rejected) == (2, 3)


async def test_site_file_can_say_a_signing_preset_does_not_sign(clock: ManualClock) -> None:
    sim = SimMeter(1, "carlo-gavazzi-em24")
    sim.set_load(base_a=(-3.0, 1.0, 1.0))
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, preset="carlo-gavazzi-em24", signed_currents=False), clock)
        result = await r.poll()
        await r.hub.close()
    assert isinstance(result.error, Implausible) and "phase L1: current_l1_a is -3.00 A" in str(result.error)


async def test_inverted_signed_meter_reads_export_as_negative(clock: ManualClock) -> None:
    sim = SimMeter(1, "carlo-gavazzi-em24")
    sim.set_load(base_a=(4.0, -6.0, 0.0))  # mounted the other way: its +4 A on L1 is export, its -6 A import
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, preset="carlo-gavazzi-em24", invert=True), clock)
        result = await r.poll()
        await r.hub.close()
    assert result.reading is not None, result.error
    assert result.reading.current_a == pytest.approx((4.0, 6.0, 0.0))
    assert result.reading.current_signed_a == pytest.approx((-4.0, 6.0, 0.0))


SITE = """\
site: {{name: t, timezone: Europe/Amsterdam}}
grid: {{limit_a: 100, meter: a}}
ocpp: {{security_profile: 0}}
meters:
  - {{id: a, preset: eastron-sdm630, signed_currents: true,
      modbus: {{host: 127.0.0.1, port: {port}, unit: 1, timeout_s: 0.3}}}}
  - {{id: b, preset: eastron-sdm630,
      modbus: {{host: 127.0.0.1, port: {port}, unit: 2, timeout_s: 0.3}}}}
circuits:
  - {{id: c, limit_a: 50, meter: b}}
"""


async def test_site_file_flag_reaches_the_reader(tmp_path: Path, clock: ManualClock) -> None:
    sims = [SimMeter(1, "eastron-sdm630"), SimMeter(2, "eastron-sdm630")]
    for s in sims:
        s.set_load(base_a=(-9.0, 2.0, 3.0))
    async with MeterSimServer(sims) as server:
        (tmp_path / "site.yaml").write_text(SITE.format(port=server.port), encoding="utf-8")
        site = load_site(tmp_path / "site.yaml").site
        assert [m.signed_currents for m in site.meters] == [True, None]
        meters = SiteMeters(site, clock=clock)
        try:
            a = await meters.reader("a").poll()
            b = await meters.reader("b").poll()
        finally:
            await meters.close()
    assert a.reading is not None and a.reading.current_a == pytest.approx((9.0, 2.0, 3.0))
    usable = meters.status()["a"].usable
    assert usable is not None and usable.current_a == pytest.approx((9.0, 2.0, 3.0))
    assert isinstance(b.error, Implausible) and "meter b phase L1: current_l1_a is -9.00 A" in str(b.error)
    assert meters.status()["b"].usable is None
