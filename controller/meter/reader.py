"""One meter's polling state: accepted/rejected/failed counts, age, staleness, frozen registers.

The consumer (the daemon) never awaits a read: :meth:`MeterReader.run` polls in its own task and
:meth:`MeterReader.status` answers at once. ``status().stale`` is true when no reading was
accepted for ``stale_after_s`` (or none ever was); then :meth:`MeterReader.latest` returns
``None`` and the consumer goes fail-safe. A missing reading is never zero load.

Problems are logged once loudly (error), repeats at debug, a change of problem once (warning),
and recovery once (info).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from controller.meter import sunspec
from controller.meter.errors import ConnectFailed, Implausible, MeterError, NotConnected
from controller.meter.hub import Clock, ModbusHub
from controller.meter.plausibility import Bounds, check_values, fill_absent_lines, is_frozen
from controller.meter.reading import MeterReading, RawRegisters, build_reading, decode_registers
from controller.meter.registers import RegisterMap, signs_currents, static_map_for
from controller.model.site import Meter

log = logging.getLogger(__name__)

_SAME_PROBLEM = {NotConnected.kind: ConnectFailed.kind}
"""A link in back-off after a failed connect is still that problem, not a new one to warn about."""


def _problem(kind: str | None) -> str | None:
    return _SAME_PROBLEM.get(kind, kind) if kind is not None else None


@dataclass(frozen=True)
class MeterStatus:
    """A meter as the daemon, the API and the metrics see it at ``now_s``."""

    meter_id: str
    now_s: float
    reading: MeterReading | None
    """The last accepted reading, however old (``None`` before the first)."""
    age_s: float | None
    stale: bool
    accepted: int
    rejected: int
    failed: int
    problem: str | None
    """What went wrong in the latest poll (``None`` when it was accepted)."""

    @property
    def usable(self) -> MeterReading | None:
        """The reading when it may be acted on, else ``None`` (stale)."""
        return None if self.stale else self.reading


@dataclass(frozen=True)
class PollResult:
    """One poll: the reading when accepted, else the error; decoded values whenever decoded."""

    reading: MeterReading | None
    error: MeterError | None
    values: dict[str, float | None] | None = None
    register_map: RegisterMap | None = None


class MeterReader:
    """Polls one meter through its hub and decides what may be believed."""

    def __init__(
        self,
        meter: Meter,
        hub: ModbusHub,
        bounds: Bounds,
        *,
        clock: Clock | None = None,
        register_map: RegisterMap | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self.meter = meter
        self.hub = hub
        self.bounds = bounds
        self._clock: Clock = clock or hub.clock
        self._log = logger
        self.register_map = register_map if register_map is not None else static_map_for(meter)
        self.accepted = 0
        self.rejected = 0
        self.failed = 0
        self._last_reading: MeterReading | None = None
        self._last_accepted_at: float | None = None
        self._last_raw: tuple[tuple[tuple[str, int], int], ...] | None = None
        self._raw_changed_at = 0.0
        self._load_changed_at: float | None = None
        self._problem: str | None = None
        self._problem_kind: str | None = None
        self._problem_since: float | None = None
        self._bad_polls = 0

    # --- the consumer's side ----------------------------------------------------------------

    def status(self) -> MeterStatus:
        now = self._clock()
        age = None if self._last_accepted_at is None else now - self._last_accepted_at
        stale = age is None or age >= self.meter.stale_after_s
        return MeterStatus(
            self.meter.id, now, self._last_reading, age, stale, self.accepted, self.rejected, self.failed, self._problem
        )

    def latest(self) -> MeterReading | None:
        """The last accepted reading if it is not stale, else ``None``."""
        return self.status().usable

    def note_load_change(self, at_s: float | None = None) -> None:
        """The chargers' own meter values moved (by more than noise) at ``at_s``: a meter whose
        registers stay identical for ``stale_after_s`` after that is frozen."""
        self._load_changed_at = self._clock() if at_s is None else at_s

    # --- polling ----------------------------------------------------------------------------

    async def _ensure_map(self) -> RegisterMap:
        if self.register_map is None:
            unit = self.meter.modbus.unit

            async def read(address: int, count: int) -> list[int]:
                return await self.hub.read(unit, "holding", address, count)

            model, found = await sunspec.discover(read)
            self._log.info("meter %s: SunSpec model %d at register %d", self.meter.id, model.id, model.address)
            self.register_map = found
        return self.register_map

    async def poll(self) -> PollResult:
        """Read the meter once and judge the values."""
        try:
            register_map = await self._ensure_map()
            raw = await self.hub.read_blocks(self.meter.modbus.unit, register_map.blocks())
        except MeterError as exc:
            self.failed += 1
            self._trouble(exc)
            return PollResult(None, exc, None, self.register_map)
        except Exception as exc:  # a bug or a library surprise must not end the polling
            error = MeterError(f"unexpected {type(exc).__name__}: {exc}")
            self.failed += 1
            self._trouble(error)
            return PollResult(None, error, None, self.register_map)
        try:
            return self._judge(register_map, raw)
        except (KeyError, ValueError) as exc:
            error = Implausible(f"cannot decode the answer: {exc}")
            self.rejected += 1
            self._trouble(error)
            return PollResult(None, error, None, register_map)

    def _judge(self, register_map: RegisterMap, raw: RawRegisters) -> PollResult:
        now = self._clock()
        key = tuple(sorted(raw.items()))
        if key != self._last_raw:
            self._last_raw = key
            self._raw_changed_at = now
        values = fill_absent_lines(decode_registers(register_map, raw), self.bounds)
        signed = signs_currents(self.meter, register_map)
        reason = check_values(values, self.bounds, signed_currents=signed, meter_id=self.meter.id)
        if reason is None and is_frozen(now, self._raw_changed_at, self.meter.stale_after_s, self._load_changed_at):
            unchanged = now - self._raw_changed_at
            reason = f"frozen: registers unchanged for {unchanged:.1f} s while the chargers' readings moved"
            if self._last_accepted_at is not None:  # a frozen value is as old as its last change
                self._last_accepted_at = min(self._last_accepted_at, self._raw_changed_at)
        reading = None if reason else build_reading(self.meter.id, now, values, self.meter.invert, signed)
        if reading is None:
            error = Implausible(reason or "phase currents not available")
            self.rejected += 1
            self._trouble(error)
            return PollResult(None, error, values, register_map)
        self.accepted += 1
        self._last_reading = reading
        self._last_accepted_at = now
        self._recovered()
        return PollResult(reading, None, values, register_map)

    def _trouble(self, exc: MeterError) -> None:
        self._bad_polls += 1
        message = f"{exc.kind}: {exc}"
        if self._problem_kind is None:
            self._problem_since = self._clock()
            self._log.error(
                "meter %s (%s unit %d): %s — further failures logged at debug until it recovers",
                self.meter.id,
                self.hub.key,
                self.meter.modbus.unit,
                message,
            )
        elif _problem(self._problem_kind) != _problem(exc.kind):
            self._log.warning("meter %s: now %s", self.meter.id, message)
        else:
            self._log.debug("meter %s: %s", self.meter.id, message)
        self._problem_kind = exc.kind
        self._problem = message

    def _recovered(self) -> None:
        if self._problem_kind is not None:
            since = self._problem_since if self._problem_since is not None else self._clock()
            self._log.info(
                "meter %s: recovered after %d bad poll(s) over %.1f s",
                self.meter.id,
                self._bad_polls,
                self._clock() - since,
            )
        self._problem = None
        self._problem_kind = None
        self._problem_since = None
        self._bad_polls = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``poll_s`` until ``stop`` is set. A slow poll delays the next, never stacks."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            await self.poll()
            delay = max(0.0, self.meter.poll_s - (loop.time() - started))
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
