"""`tariff:` in both forms: the list of energy steps is shorthand for `{energy: [...]}`; the long
form adds the currency, dated prices and the demand charge. Errors carry FILE:LINE:COL at the text
the file has (the refused files and their exact messages are in invalid/)."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from controller.cli import main
from controller.config import ConfigError, load_site_text
from controller.config.schema import DEMAND_WINDOW_MINUTES, SiteFile
from controller.model.site import DemandCharge, Tariff, TariffStep

HEAD = """\
site: {name: T, timezone: Europe/Paris}
grid: {limit_a: 100}
ocpp: {security_profile: 0}
"""
SHORT = (
    HEAD
    + """\
tariff:
  - {at: "00:00", price_per_kwh: 0.18}
  - {at: "07:00", price_per_kwh: 0.31}
  - {at: "22:00", price_per_kwh: 0.18}
"""
)
LONG = (
    HEAD
    + """\
tariff:
  energy:
    - {at: "00:00", price_per_kwh: 0.18}
    - {at: "07:00", price_per_kwh: 0.31}
    - {at: "22:00", price_per_kwh: 0.18}
"""
)
FULL = (
    HEAD
    + """\
tariff:
  currency: CHF
  energy:
    - {at: "00:00", price_per_kwh: 0.18}
    - {at: "07:00", price_per_kwh: -0.02}
  prices_file: {prices}
  demand: {price_per_kw: 14.5, window_min: 30}
"""
)


def full(prices: object) -> str:
    return FULL.replace("{prices}", str(prices))


def where(text: str, needle: str, nth: int = 0, after: str = "") -> tuple[int, int]:
    """1-based line and column of the ``nth`` occurrence of ``needle`` (the scalar an error is
    about), written right after ``after``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(after + needle, at + 1)
    at += len(after)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def tariff_warnings(text: str, filename: str = "f.yaml", *, offline: bool = False) -> list[str]:
    loaded = load_site_text(text, filename, offline=offline)
    return [w.format(filename) for w in loaded.warnings if w.path[0] == "tariff"]


STEPS = (
    TariffStep(time(0), 0.18),
    TariffStep(time(7), 0.31),
    TariffStep(time(22), 0.18),
)


def test_the_list_form_is_shorthand_for_energy() -> None:
    short = load_site_text(SHORT, "short.yaml").site.tariff
    long = load_site_text(LONG, "long.yaml").site.tariff
    assert short == long == Tariff(currency="EUR", energy=STEPS, prices_file=None, demand=None)
    assert short.active


def test_no_tariff_and_an_empty_list_are_the_same_inactive_tariff() -> None:
    assert load_site_text(HEAD).site.tariff == Tariff()
    assert load_site_text(HEAD + "tariff: []\n").site.tariff == Tariff()
    assert load_site_text(HEAD + "tariff: {}\n").site.tariff == Tariff()
    assert not Tariff().active


def test_the_long_form_reaches_the_model(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("2026-03-02T00:00+01:00,0.11\n", encoding="utf-8")
    loaded = load_site_text(full(prices), "full.yaml")
    assert loaded.site.tariff == Tariff(
        currency="CHF",
        energy=(TariffStep(time(0), 0.18), TariffStep(time(7), -0.02)),
        prices_file=str(prices),
        demand=DemandCharge(price_per_kw=14.5, window_min=30, period="month"),
    )
    assert not [w for w in loaded.warnings if w.path[0] == "tariff"], "a negative price is real; the file exists"


def test_demand_charge_defaults_are_a_monthly_15_minute_peak() -> None:
    tariff = load_site_text(HEAD + "tariff: {demand: {price_per_kw: 9}}\n").site.tariff
    assert tariff.demand == DemandCharge(price_per_kw=9.0, window_min=15, period="month")
    assert tariff.energy == () and tariff.active


@pytest.mark.parametrize("window", DEMAND_WINDOW_MINUTES)
def test_every_window_that_divides_the_hour_is_accepted(window: int) -> None:
    tariff = load_site_text(HEAD + f"tariff: {{demand: {{price_per_kw: 9, window_min: {window}}}}}\n").site.tariff
    assert tariff.demand is not None and tariff.demand.window_min == window
    assert 60 % window == 0


@pytest.mark.parametrize("window", ["0", "7", "20", "45", "90"])
def test_other_windows_are_refused_at_their_position(window: str) -> None:
    text = HEAD + f"tariff:\n  demand: {{price_per_kw: 9, window_min: {window}}}\n"
    with pytest.raises(ConfigError) as caught:
        load_site_text(text, "w.yaml")
    (problem,) = caught.value.errors
    line, col = where(text, window, after="window_min: ")
    assert problem.format("w.yaml") == (
        f"w.yaml:{line}:{col}: tariff.demand.window_min: must be one of 5, 10, 15, 30, 60 minutes "
        f"(a demand meter's averaging window, dividing the hour), got {window}"
    )


@pytest.mark.parametrize("price", ["inf", "-inf", "nan", ".inf", "1e999", "cheap"])
def test_a_price_must_be_a_finite_number_in_either_form(price: str) -> None:
    short = HEAD + f'tariff:\n  - {{at: "00:00", price_per_kwh: {price}}}\n'
    with pytest.raises(ConfigError) as caught:
        load_site_text(short, "s.yaml")
    (problem,) = caught.value.errors
    assert problem.path == ("tariff", 0, "price_per_kwh")
    assert (problem.line, problem.col) == where(short, price, after="price_per_kwh: ")
    long = HEAD + f'tariff:\n  energy:\n    - {{at: "00:00", price_per_kwh: {price}}}\n'
    with pytest.raises(ConfigError) as caught:
        load_site_text(long, "l.yaml")
    (problem,) = caught.value.errors
    assert problem.path == ("tariff", "energy", 0, "price_per_kwh")
    assert (problem.line, problem.col) == where(long, price, after="price_per_kwh: ")


def test_a_demand_price_must_be_finite_and_not_negative() -> None:
    for bad in (".nan", "inf", "-1"):
        text = HEAD + f"tariff: {{demand: {{price_per_kw: {bad}}}}}\n"
        with pytest.raises(ConfigError) as caught:
            load_site_text(text, "d.yaml")
        (problem,) = caught.value.errors
        assert problem.path == ("tariff", "demand", "price_per_kw")
        assert (problem.line, problem.col) == where(text, bad, after="price_per_kw: ")


@pytest.mark.parametrize(
    ("currency", "hint"),
    [("eur", " (did you mean 'EUR'?)"), ("EURO", ""), ("€", ""), ("E1R", ""), ("", "")],
)
def test_the_currency_is_a_three_letter_code(currency: str, hint: str) -> None:
    text = HEAD + f'tariff: {{currency: "{currency}"}}\n'
    with pytest.raises(ConfigError) as caught:
        load_site_text(text, "c.yaml")
    (problem,) = caught.value.errors
    assert (problem.line, problem.col) == where(text, f'"{currency}"')
    assert problem.message == f"must be a 3-letter ISO 4217 code such as EUR, USD or GBP, got {currency!r}{hint}"


def test_steps_in_the_same_minute_are_out_of_order_in_either_form() -> None:
    twice = '  - {at: "07:00", price_per_kwh: 0.3}\n'
    short = HEAD + "tariff:\n" + twice + twice
    with pytest.raises(ConfigError) as caught:
        load_site_text(short, "t.yaml")
    (problem,) = caught.value.errors
    line, col = where(short, '"07:00"', nth=1)
    assert problem.format("t.yaml") == (
        f"t.yaml:{line}:{col}: tariff[1].at: tariff steps must be in time order (07:00 after 07:00)"
    )
    long = HEAD + "tariff:\n  energy:\n  " + twice + "  " + twice
    with pytest.raises(ConfigError) as caught:
        load_site_text(long, "t.yaml")
    (problem,) = caught.value.errors
    line, col = where(long, '"07:00"', nth=1)
    assert problem.format("t.yaml").startswith(f"t.yaml:{line}:{col}: tariff.energy[1].at: tariff steps must be")


def test_an_unknown_key_in_a_shorthand_step_points_at_the_key() -> None:
    text = HEAD + 'tariff:\n  - {at: "07:00", price_per_kw: 0.3}\n'
    with pytest.raises(ConfigError) as caught:
        load_site_text(text, "k.yaml")
    messages = [p.format("k.yaml") for p in caught.value.errors]
    line, col = where(text, "price_per_kw")
    step_line, step_col = where(text, '{at: "07:00"')
    assert messages == [
        f"k.yaml:{step_line}:{step_col}: tariff[0].price_per_kwh: required key is missing",
        f"k.yaml:{line}:{col}: tariff[0].price_per_kw: unknown key 'price_per_kw' (did you mean 'price_per_kwh'?)",
    ]


def test_a_scalar_tariff_is_refused_at_the_section() -> None:
    text = HEAD + "tariff: 0.25\n"
    with pytest.raises(ConfigError) as caught:
        load_site_text(text, "x.yaml")
    (problem,) = caught.value.errors
    assert problem.path == ("tariff",) and (problem.line, problem.col) == where(text, "0.25", after="tariff: ")


def test_a_missing_prices_file_is_a_warning_at_its_line(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet.csv"
    text = full(missing)
    line, col = where(text, str(missing))
    assert tariff_warnings(text, "p.yaml") == [
        f"p.yaml:{line}:{col}: tariff.prices_file: warning: {missing} does not exist (yet): "
        "until it does, the daily `energy` steps price every hour"
    ]
    assert load_site_text(text).site.tariff.prices_file == str(missing)
    (only_file,) = tariff_warnings(HEAD + f"tariff: {{prices_file: {missing}}}\n")
    assert only_file.endswith("until it does, energy has no price (no `energy` steps)")


def test_a_simulation_does_not_look_for_the_prices_file(tmp_path: Path) -> None:
    assert tariff_warnings(full(tmp_path / "absent.csv"), offline=True) == []


def test_check_config_summarises_the_tariff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("", encoding="utf-8")
    path = tmp_path / "site.yaml"
    path.write_text(full(prices), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        f"tariff: 2 daily steps -0.02 to 0.18 CHF/kWh; dated prices from {prices}; "
        "demand charge 14.5 CHF/kW of the month's highest 30-min average"
    ) in out
    path.write_text(SHORT, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert "tariff: 3 daily steps 0.18 to 0.31 EUR/kWh" in capsys.readouterr().out.splitlines()
    path.write_text(HEAD, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert "tariff" not in capsys.readouterr().out


def test_the_json_schema_accepts_both_forms_and_refuses_a_bad_window() -> None:
    schema = SiteFile.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for text in (SHORT, LONG, full("/var/lib/depotctl/prices.csv")):
        assert not list(validator.iter_errors(yaml.safe_load(text))), text
    bad = yaml.safe_load(HEAD + "tariff: {demand: {price_per_kw: 9, window_min: 20}}\n")
    assert list(validator.iter_errors(bad))
    assert json.dumps(schema)  # serialisable, as `depotctl schema` prints it
