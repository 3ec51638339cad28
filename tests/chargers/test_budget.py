"""Per-connector worst case by the charger's own rules (issue 12: the book of what each connector
may draw): every profile that may still be in force — accepted or pending, connector-0 TxDefault
on every connector, over its whole schedule, until its end on the charger's clock — and after
that the fail-safe only when it was confirmed installed, else the charger's maximum."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.chargers.state import Transaction
from tests.chargers.conftest import make_site
from tests.chargers.test_control import T0, FakeSession, Rig

TTL_S = 120.0


def two_connector_rig(offset_s: float = 0.0, **charger: object) -> Rig:
    return Rig(make_site([{"id": "CP0", "connectors": 2, "max_a": 32, **charger}], ttl_s=TTL_S), offset_s=offset_s)


async def test_each_connector_on_its_own_32_and_0_is_32_not_64_nor_12() -> None:
    rig = two_connector_rig()
    rig.plug("CP0", tx=5)
    rig.state("CP0").connector(2).transaction = Transaction(6, 2, "TAG", None, T0, seen_at=T0)
    assert (await rig.control.install_failsafe("CP0")).status == "accepted"
    await rig.control.apply("CP0", 32.0, connector=1)
    await rig.control.apply("CP0", 0.0, connector=2)
    c = rig.control
    assert c.connector_budget("CP0", 1).value == 32.0 and c.connector_budget("CP0", 2).value == 0.0
    b = c.budget("CP0")
    assert b.value == 32.0 and b.source == "accepted profile"
    assert b.until == T0 + timedelta(seconds=TTL_S + c.skew_s)
    assert c.budget("CP0", b.until).value == 12.0  # both ended: the confirmed fail-safe on each


async def test_connector_zero_txdefault_applies_to_every_connector() -> None:
    rig = two_connector_rig(ocpp_quirks=["txdefault_on_connector_0"])
    s = rig.plug("CP0", tx=None)
    await rig.control.install_failsafe("CP0")
    await rig.control.apply("CP0", 20.0, connector=1)
    assert s.sent[-1].connector_id == 0
    assert rig.control.connector_budget("CP0", 2).value == 20.0
    assert rig.control.budget("CP0").value == 40.0


async def test_whole_schedule_pending_counts_rejected_does_not() -> None:
    rig = two_connector_rig()
    s = rig.plug("CP0", tx=5)
    await rig.control.install_failsafe("CP0")
    await rig.control.apply("CP0", 10.0, [(T0 + timedelta(seconds=60), 25.0)])
    assert rig.control.connector_budget("CP0", 1).value == 25.0  # the later period counts now
    s.answers = ["Rejected"] * 10
    assert (await rig.control.apply("CP0", 30.0)).status == "rejected"
    assert rig.control.connector_budget("CP0", 1).value == 25.0
    s.answers = ["Timeout"]
    assert (await rig.control.apply("CP0", 28.0)).status == "timeout"
    b = rig.control.connector_budget("CP0", 1)
    assert (b.value, b.source) == (28.0, "unconfirmed profile")
    s.answers = []
    assert (await rig.control.apply("CP0", 8.0)).status == "accepted"  # replaces both on the charger
    assert rig.control.connector_budget("CP0", 1).value == 8.0


async def test_without_a_confirmed_failsafe_the_charger_maximum() -> None:
    rig = two_connector_rig()
    rig.plug("CP0", FakeSession(answers=["Rejected"] * 10), tx=5)
    assert (await rig.control.install_failsafe("CP0")).status == "rejected"
    b = rig.control.connector_budget("CP0", 1)
    assert (b.value, b.source) == (32.0, "charger max (no fail-safe installed)")
    assert not rig.control.failsafe_installed("CP0") and not rig.state("CP0").failsafe_confirmed


async def test_a_txprofile_of_an_ended_transaction_does_not_hold_the_next_one() -> None:
    rig = two_connector_rig()
    rig.plug("CP0", tx=5)
    await rig.control.install_failsafe("CP0")
    await rig.control.apply("CP0", 0.0)
    assert rig.control.connector_budget("CP0", 1).value == 0.0
    rig.state("CP0").connector(1).transaction = Transaction(6, 1, "TAG", None, T0, seen_at=T0)
    assert rig.control.connector_budget("CP0", 1).value == 6.0  # the new session runs on the fail-safe


async def test_a_rebooted_charger_is_budgeted_at_its_maximum_until_the_failsafe_is_back() -> None:
    rig = two_connector_rig()
    rig.plug("CP0", tx=5)
    await rig.control.install_failsafe("CP0")
    await rig.control.apply("CP0", 10.0)
    assert rig.control.connector_budget("CP0", 1).value == 10.0
    rig.control.note_boot("CP0")
    assert not rig.control.failsafe_installed("CP0") and rig.state("CP0").failsafe is None
    assert rig.control.connector_budget("CP0", 1).value == 32.0  # it may have lost every profile
    await rig.control.install_failsafe("CP0")
    b = rig.control.connector_budget("CP0", 1)
    assert (b.value, b.source) == (10.0, "unconfirmed profile")  # maybe still held, else the fail-safe
    assert rig.control.connector_budget("CP0", 1, b.until).value == 6.0


@pytest.mark.parametrize("offset_s", [-120.0, 120.0])
async def test_expiry_is_judged_on_the_chargers_clock(offset_s: float) -> None:
    rig = two_connector_rig(offset_s=offset_s)
    s = rig.plug("CP0", tx=5)
    await rig.control.install_failsafe("CP0")
    await rig.control.apply("CP0", 20.0)
    spec = s.sent[-1]
    assert spec.valid_to == T0 + timedelta(seconds=offset_s + TTL_S)
    until = rig.control.connector_budget("CP0", 1).until
    assert until == T0 + timedelta(seconds=TTL_S + rig.control.skew_s)  # validTo − offset + margin
    # the estimate moves (a tighter sample): the end on our clock follows it
    rig.state("CP0").observe_time(T0 + timedelta(seconds=offset_s + 5), T0)
    assert rig.control.connector_budget("CP0", 1).until == until - timedelta(seconds=5)


async def test_an_unmeasured_clock_widens_the_end_by_the_assumed_bound() -> None:
    rig = two_connector_rig()
    s = FakeSession()
    rig.sessions["CP0"] = s  # never sent a timestamp
    rig.state("CP0").connector(1).transaction = Transaction(5, 1, "TAG", None, T0, seen_at=T0)
    await rig.control.install_failsafe("CP0")
    await rig.control.apply("CP0", 20.0)
    until = rig.control.connector_budget("CP0", 1).until
    c = rig.control
    assert until == T0 + timedelta(seconds=TTL_S + c.unknown_offset_s + c.skew_s)
    assert c.connector_budget("CP0", 1).value == 20.0


async def test_a_profile_from_before_a_restart_counts_after_the_reconnect_until_it_ends() -> None:
    """Hazard 8 (after the reconnect): the charger may still run the 32 A profile it accepted from
    the controller that died; a fail-safe confirmed since must not hide it."""
    rig = two_connector_rig()
    rig.plug("CP0", tx=5)
    rig.control.note_restored("CP0", 1, 32.0, T0 + timedelta(seconds=40))
    assert (await rig.control.install_failsafe("CP0")).status == "accepted"
    b = rig.control.connector_budget("CP0", 1)
    assert (b.value, b.source, b.until) == (32.0, "profile from before a restart", T0 + timedelta(seconds=40))
    assert rig.control.connector_budget("CP0", 2).value == 6.0
    assert rig.control.connector_budget("CP0", 1, T0 + timedelta(seconds=40)).value == 6.0  # ended
