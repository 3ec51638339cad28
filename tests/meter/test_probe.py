"""``depotctl meter probe`` end to end: a real subprocess against the simulated meter."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from controller.cli import main
from hil.meter import MeterSimServer, SimMeter

SITE = """\
site: {{name: probe test, timezone: Europe/Amsterdam}}
grid: {{limit_a: 100, meter: grid-meter}}
ocpp: {{security_profile: 0}}
meters:
  - {{id: grid-meter, preset: eastron-sdm630, modbus: {{host: 127.0.0.1, port: {port}, unit: 1, timeout_s: 0.3}}}}
  - {{id: sub-meter, preset: abb-b23, modbus: {{host: 127.0.0.1, port: {port}, unit: 2, timeout_s: 0.3}}}}
circuits:
  - {{id: board, limit_a: 63, meter: sub-meter}}
"""


async def probe(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from controller.cli import main; sys.exit(main(sys.argv[1:]))",
        "meter",
        "probe",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def gateway(tmp_path: Path) -> tuple[MeterSimServer, Path]:
    sims = [SimMeter(1, "eastron-sdm630"), SimMeter(2, "abb-b23")]
    sims[0].set_load(base_a=(31.5, 20.0, 10.0))
    sims[1].set_load(base_a=(5.0, 6.0, 7.0))
    server = MeterSimServer(sims)
    port = await server.start()
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(port=port), encoding="utf-8")
    return server, site


async def test_probe_prints_values_units_and_registers(gateway: tuple[MeterSimServer, Path]) -> None:
    server, site = gateway
    try:
        code, out, err = await probe(str(site))
    finally:
        await server.stop()
    assert code == 0, out + err
    assert "grid-meter: eastron-sdm630 at tcp://127.0.0.1:" in out
    assert "current_l1_a          31.500 A    input (FC04) 6 (0x0006) float32" in out
    assert "current_l3_a           7.000 A    holding (FC03) 23312 (0x5B10) uint32 big-endian words ×0.01" in out
    assert out.count("  OK in ") == 2
    assert err == ""


async def test_probe_names_exception_code_and_implausible_value(gateway: tuple[MeterSimServer, Path]) -> None:
    server, site = gateway
    server.meter(1).misbehave("nan")
    server.meter(2).misbehave("exception", exception_code=11)
    try:
        code, out, _ = await probe(str(site))
        code_one, out_one, _ = await probe(str(site), "--meter", "sub-meter")
    finally:
        await server.stop()
    assert code == 1
    assert "FAILED (implausible value): voltage_l1_v is nan" in out
    assert "current_l1_a             nan A" in out
    assert "FAILED (exception code): exception code 11 (gateway target device failed to respond)" in out
    assert code_one == 1 and "grid-meter" not in out_one


async def test_probe_names_refused_connection_and_timeout(gateway: tuple[MeterSimServer, Path]) -> None:
    server, site = gateway
    server.meter(1).misbehave("silent")
    try:
        code, out, _ = await probe(str(site), "--meter", "grid-meter")
    finally:
        await server.stop()
    assert code == 1 and "FAILED (timeout): no answer from unit 1 within 0.3 s" in out
    code, out, _ = await probe(str(site))
    assert code == 1 and out.count("FAILED (connection failed): connection refused by 127.0.0.1:") == 2


def test_bad_file_and_bad_meter_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "probe", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(port=1502), encoding="utf-8")
    assert main(["meter", "probe", str(site), "--meter", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"depotctl: no meter 'nope' in {site} (meters: grid-meter, sub-meter)"
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE.format(port=1502).replace("eastron-sdm630", "acme-1"), encoding="utf-8")
    assert main(["meter", "probe", str(bad)]) == 2
    assert "unknown preset 'acme-1'" in capsys.readouterr().err


COMMISSIONING = """\
site: {{name: new depot, timezone: Europe/Amsterdam}}
grid: {{limit_a: 100, meter: grid-meter}}
meters:
  - {{id: grid-meter, preset: eastron-sdm630, modbus: {{host: 127.0.0.1, port: {port}, unit: 1, timeout_s: 0.3}}}}
  - {{id: sub-meter, preset: abb-b23, modbus: {{host: 127.0.0.1, port: {port}, unit: 2, timeout_s: 0.3}}}}
circuits:
  - {{id: board, limit_a: 63, meter: sub-meter}}
chargers:
  - {{id: cp1, circuit: board, max_a: 32, min_a: 4}}
"""
"""A site being commissioned: meters and circuits, a charger not finished (min_a below 6 A without
`allow_min_below_6a`), no `ocpp:` section yet."""


async def test_probe_checks_only_what_it_uses_so_it_runs_before_ocpp_is_set_up(
    gateway: tuple[MeterSimServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, site = gateway
    port = server.port
    site.write_text(COMMISSIONING.format(port=port), encoding="utf-8")
    try:
        code, out, err = await probe(str(site))
    finally:
        await server.stop()
    assert (code, err) == (0, ""), out + err
    assert out.count("  OK in ") == 2
    # check-config still refuses the file, naming both problems where they are
    code = main(["check-config", str(site)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert f"{site}:9:49: chargers[0].min_a: 4 A is below the IEC 61851 minimum of 6 A" in err
    assert f"{site}:10:1: ocpp: no `ocpp:` section (it goes here, after `chargers:`)" in err
    assert err.rstrip().endswith("2 errors, nothing started")


def test_probe_still_refuses_a_bad_section_it_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(COMMISSIONING.format(port=1502).replace("meter: sub-meter", "meter: sub-metre"), encoding="utf-8")
    assert main(["meter", "probe", str(site)]) == 2
    err = capsys.readouterr().err
    assert f"{site}:7:37: circuits[0].meter: unknown meter 'sub-metre'" in err
    assert err.rstrip().endswith("1 error, nothing probed")
