"""A commissioning run: every check of :data:`~controller.commission.report.CHECK_NAMES`, in that
order, against one connected charger, ending in a :class:`~controller.commission.report.Report`.

The sequence: ``connects``; ask for meter values every :attr:`CommissionOptions.sample_s`;
``clock``; ``failsafe_profile``; ``current_profile`` and ``power_profile`` (:mod:`.basic`); then,
unless ``no_ev``, wait for a transaction on the connector and run the EV checks (:mod:`.ev`,
:mod:`.expiry`); ask for the site's ``ocpp.meter_sample_s`` again. A check that could not be made
for want of an EV charging (without ``no_ev``) or of headroom makes the report incomplete
(:attr:`~controller.commission.report.Report.incomplete`: not passed). Every profile goes out through
:meth:`CommissionPort.send_spec` (into the controller's book of what the charger may hold) and
none offers more than :meth:`CommissionPort.headroom_a` at the moment it is sent; every control
profile it sends ends by itself (``validTo``) within :attr:`CommissionOptions.step_profile_s`,
after which the charger is back on its fail-safe.

:func:`commission` raises :class:`CommissionError` before anything is sent (unknown charger, not
connected, no such connector); once started it never raises: a charger that disconnects (or
reconnects) mid-run, or an EV whose transaction ends during the EV checks, gives a Report
``aborted`` with ``error``. Cancelling the task stops at once
— nothing more is sent; the profiles sent end by themselves and the fail-safe stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from controller.chargers.profiles import INTERNAL_OPTIONS
from controller.chargers.session import MEASURANDS
from controller.commission import basic
from controller.commission.context import Aborted, RunContext
from controller.commission.ev import EvChecks
from controller.commission.options import CommissionOptions
from controller.commission.port import CommissionPort
from controller.commission.report import CHECK_NAMES, EV_CHECKS, Check, Report, RunState

__all__ = ["CommissionError", "CommissionOptions", "commission"]

LOG = logging.getLogger("depotctl.commission")

Progress = Callable[[Report], None]


class CommissionError(ValueError):
    """The run cannot start: unknown charger, not connected, no such connector (nothing was sent)."""


async def commission(
    port: CommissionPort,
    charger_id: str,
    *,
    connector: int = 1,
    no_ev: bool = False,
    options: CommissionOptions = CommissionOptions(),  # noqa: B008 (frozen: one shared default is fine)
    progress: Progress | None = None,
    controller_version: str = "",
) -> Report:
    """Commission ``charger_id``'s ``connector``: run every check, return the finished report.

    ``progress`` is called with the report so far (state ``"running"``) when the run starts and
    after every check; the return value is the final report (``"finished"``, or ``"aborted"``
    with ``error``)."""
    charger = port.charger(charger_id)
    if charger is None:
        raise CommissionError(f"unknown charger {charger_id!r}")
    session = port.session(charger_id)
    if session is None:
        raise CommissionError(f"charger {charger_id} is not connected")
    if not 1 <= connector <= charger.connectors:
        raise CommissionError(f"charger {charger_id} has no connector {connector} (it has {charger.connectors})")
    ctx = RunContext(port, charger, connector, options, session)
    return await _Run(ctx, no_ev, progress, controller_version).go()


class _Run:
    def __init__(self, ctx: RunContext, no_ev: bool, progress: Progress | None, controller_version: str) -> None:
        self.ctx = ctx
        self.no_ev = no_ev
        self.progress = progress
        self.controller_version = controller_version
        self.started = ctx.now()
        self.checks: dict[str, Check] = {}

    async def go(self) -> Report:
        self._tell()
        try:
            await self._checks()
        except Aborted as exc:
            LOG.warning("commissioning of %s aborted: %s", self.ctx.charger_id, exc)
            await self._restore_sampling()
            return self.report("aborted", str(exc))
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug must not take the daemon's task down with it
            LOG.exception("commissioning of %s failed", self.ctx.charger_id)
            return self.report("aborted", f"internal error: {exc!r}")
        await self._restore_sampling()
        return self.report("finished")

    def add(self, check: Check) -> None:
        self.checks[check.name] = check
        self._tell()

    def _tell(self) -> None:
        if self.progress is None:
            return
        try:
            self.progress(self.report("running"))
        except Exception:
            LOG.exception("commissioning progress listener failed")

    async def _checks(self) -> None:
        ctx = self.ctx
        self.add(basic.connects(ctx))
        await ctx.session.configure_sampling(ctx.options.sample_s, MEASURANDS)
        ctx.check_alive()
        self.add(await basic.clock(ctx))
        self.add(await basic.failsafe_profile(ctx))
        current, power = await basic.units(ctx, no_ev=self.no_ev)
        self.add(current)
        self.add(power)
        ev_names = [n for n in CHECK_NAMES if n in EV_CHECKS]
        if self.no_ev:
            for name in ev_names:
                self.add(Check(name, None, None, "Skipped (--no-ev): no EV plugged in for this run."))
            return
        o = ctx.options
        if not await ctx.wait_until(lambda: ctx.transaction() is not None, o.ev_wait_s):
            why = f"No EV charging: no transaction on connector {ctx.connector} within {o.ev_wait_s:g} s."
            ctx.not_tested(
                "EV checks", why + " Commission it again with an EV plugged in and charging (or with --no-ev)."
            )
            for name in ev_names:
                self.add(Check(name, None, None, why))
            return
        tx = ctx.transaction()
        ctx.ev_transaction = str(tx.transaction_id) if tx is not None else None
        await EvChecks(ctx, self.add).run()

    async def _restore_sampling(self) -> None:
        ctx = self.ctx
        if ctx.port.session(ctx.charger_id) is not ctx.session:
            return
        try:
            await ctx.session.configure_sampling(ctx.port.site.ocpp.meter_sample_s, MEASURANDS)
        except Exception:
            LOG.exception("%s: meter sampling not restored after commissioning", ctx.charger_id)

    def quirks(self) -> tuple[str, ...]:
        """What the charger needs in the site file: what the controller knows (site file, learnt,
        capabilities) and what the run found, less what the run disproved."""
        ctx = self.ctx
        known = set(ctx.port.target(ctx.charger_id).quirks) | set(ctx.state().learned_quirks)
        return tuple(sorted((known - INTERNAL_OPTIONS - ctx.disproved) | ctx.found))

    def report(self, state: RunState, error: str | None = None) -> Report:
        ctx = self.ctx
        st = ctx.state()
        clock = self.checks.get("clock")
        offset = clock.measured if clock is not None and isinstance(clock.measured, int | float) else None
        order = {name: i for i, name in enumerate(CHECK_NAMES)}
        return Report(
            charger=ctx.charger_id,
            started=self.started,
            finished=None if state == "running" else ctx.now(),
            state=state,
            checks=tuple(sorted(self.checks.values(), key=lambda c: order.get(c.name, len(order)))),
            quirks=self.quirks(),
            reaction_s=ctx.reaction_s,
            clock_offset_s=float(offset) if offset is not None else None,
            phases_in_use=ctx.phases_in_use,
            units=tuple(ctx.units),
            no_ev=self.no_ev,
            ocpp_version=st.ocpp_version,
            vendor=st.vendor,
            model=st.model,
            firmware=st.firmware,
            controller_version=self.controller_version,
            error=error,
            incomplete=tuple(ctx.incomplete),
            extra={
                "connector": ctx.connector,
                "kind": ctx.kind,
                "reaction_limit_s": ctx.options.reaction_bound_s,
                "clock_limit_s": ctx.options.clock_limit_s,
            },
        )
