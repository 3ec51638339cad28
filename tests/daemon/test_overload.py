"""The overload shed's decision (:func:`controller.daemon.overload.shed_order`) when a charger
cannot follow a decrease now: the invariant test's failure (issue 15, F3) in numbers.

The dispatcher against the scripted charger port of tests/daemon/test_dispatch.py, on charger
states with readings. Demo site: CP01 and CP02 (3-phase) on board-a1 → feeder-a → grid; CP07
(3-phase) on feeder-b → grid; the grid's usable limit is 160 − 4 = 156 A per phase.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.daemon.draws import Measured
from controller.daemon.overload import ShedOrder, shed_order
from controller.daemon.sessions import Sent, fresh_s
from controller.daemon.uncontrolled import Uncontrolled
from controller.model.site import GRID_ID
from tests.daemon.test_dispatch import SITE, T0, Clock, Port, _dispatcher, _states
from tests.daemon.test_reaction import _drawing

DRAW_A = 20.0
GRID_A = 180.0  # 24 A over the grid's 156 A usable on every phase
USABLE_A = SITE.node_limit_a(GRID_ID) - SITE.node_margin_a(GRID_ID)


def _order(stuck: frozenset[str] = frozenset(), uncontrolled: frozenset[str] = frozenset()) -> ShedOrder:
    """CP01, CP02 and CP07 each run under 20 A and draw it; the grid carries 180 A per phase."""
    port = Port(Clock(), stuck=set(stuck))
    states = _states("CP01", "CP02", "CP07")
    d = _dispatcher(port, states)
    for cid in ("CP01", "CP02", "CP07"):
        d.sent[f"{cid}:T{cid}"] = Sent(DRAW_A, T0 - timedelta(minutes=1))
        _drawing(states, cid, DRAW_A, T0)
    for cid in uncontrolled:
        d.uncontrolled[cid] = Uncontrolled(cid, "does not answer: 3 profile calls timed out in a row", T0)
    order = shed_order(SITE, states, d, {GRID_ID: (GRID_A,) * 3}, Measured(T0, fresh_s(SITE), SITE), (None, None))
    assert order is not None
    return order


def _after(order: ShedOrder, stays: set[str]) -> float:
    """The grid's load once every session that can follow did: those in ``stays`` keep drawing."""
    return GRID_A - sum(DRAW_A - v for sid, v in order.lowered.items() if sid.split(":")[0] not in stays)


def test_every_charger_following_shares_the_excess_by_its_draw() -> None:
    order = _order()
    assert order.lowered == pytest.approx({"CP01:TCP01": 12.0, "CP02:TCP02": 12.0, "CP07:TCP07": 12.0}, abs=0.1)
    assert _after(order, set()) <= USABLE_A + 0.3


@pytest.mark.parametrize("how", ["call stuck", "uncontrolled"])
def test_a_charger_that_cannot_be_lowered_now_is_load_that_stays_the_others_take_the_excess(how: str) -> None:
    """The invariant test's failure: CP04's call queue was blocked behind a raise it never answered
    (5 s call timeout); the shed scaled everyone on grid L1 by one factor, counting on CP04 to come
    down — after the others followed the line still carried 170 A (> 160 A) until a second shed a
    poll and a reaction time later: 7.5 s over the rating. Here CP07 cannot follow: CP01 and CP02
    take all 24 A; CP07 is still asked for its share (in case it answers after all)."""
    order = _order(stuck=frozenset({"CP07"})) if how == "call stuck" else _order(uncontrolled=frozenset({"CP07"}))
    assert order.lowered["CP01:TCP01"] == pytest.approx(8.0, abs=0.1)
    assert order.lowered["CP02:TCP02"] == pytest.approx(8.0, abs=0.1)
    assert order.lowered["CP07:TCP07"] == pytest.approx(12.0, abs=0.1)
    assert _after(order, {"CP07"}) <= USABLE_A + 0.3


def test_when_no_session_on_the_line_can_follow_each_is_still_asked_for_its_share() -> None:
    order = _order(stuck=frozenset({"CP01", "CP02", "CP07"}))
    assert order.lowered == pytest.approx({"CP01:TCP01": 12.0, "CP02:TCP02": 12.0, "CP07:TCP07": 12.0}, abs=0.1)
