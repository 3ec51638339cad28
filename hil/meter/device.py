"""One simulated meter (one unit id): the values the rig sets, the register image, misbehaviour.

The rig sets per-phase base load and EV currents and the voltages; powers are computed
(``V × I × power_factor × phase_pf``, import positive; ``phase_pf`` is each line's own cos φ, e.g.
a line-to-line load's current sits 30° off its line's voltage to neutral). The register image is
rebuilt from that state on every read, unless the meter is frozen. Faults on command: ``silent``
(never answers), ``exception`` (answers with a Modbus exception code), ``nan`` (NaN in every
float, the largest value in every integer), ``freeze`` (keeps serving the last image), ``slow``
(answers after ``delay_s``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException

from controller.meter.registers import SUNSPEC, FieldSpec, RegisterMap, load_preset
from controller.meter.sunspec import SunSpecModel, marker, model_map
from hil.meter.encode import encode, nan_words

Fault = Literal["none", "silent", "exception", "nan", "freeze", "slow"]
Phase3 = tuple[float, float, float]

SUNSPEC_COMMON_LENGTH = 66
SUNSPEC_LENGTHS = {203: 105, 213: 124}
# Scale factors the simulated model 203 uses: 0.01 A, 0.1 V, 1 W, 1 Wh.
SUNSPEC_203_SF = {6: -2, 15: -1, 22: 0, 54: 0}


@dataclass
class MeterState:
    """What the rig says the meter measures."""

    base_a: Phase3 = (0.0, 0.0, 0.0)
    ev_a: Phase3 = (0.0, 0.0, 0.0)
    voltage_v: Phase3 = (230.0, 230.0, 230.0)
    power_factor: float = 1.0
    phase_pf: Phase3 = (1.0, 1.0, 1.0)
    """Each line's cos φ (current against its voltage to neutral), times ``power_factor``."""
    import_kwh: float = 0.0
    export_kwh: float = 0.0

    @property
    def current_a(self) -> Phase3:
        a, b, c = (self.base_a[i] + self.ev_a[i] for i in range(3))
        return (a, b, c)

    @property
    def power_w(self) -> Phase3:
        i, v, pf, k = self.current_a, self.voltage_v, self.power_factor, self.phase_pf
        return (v[0] * i[0] * pf * k[0], v[1] * i[1] * pf * k[1], v[2] * i[2] * pf * k[2])

    def advance(self, dt_s: float) -> None:
        """Integrate the energy counters over ``dt_s`` seconds at the present power."""
        total_w = sum(self.power_w)
        if total_w >= 0:
            self.import_kwh += total_w * dt_s / 3.6e6
        else:
            self.export_kwh += -total_w * dt_s / 3.6e6

    def values(self) -> dict[str, float]:
        i, v, p = self.current_a, self.voltage_v, self.power_w
        out = {"power_w": sum(p), "import_kwh": self.import_kwh, "export_kwh": self.export_kwh}
        for n in range(3):
            out[f"current_l{n + 1}_a"] = i[n]
            out[f"voltage_l{n + 1}_v"] = v[n]
            out[f"power_l{n + 1}_w"] = p[n]
        return out


@dataclass
class SimMeter:
    """A meter presenting ``preset`` (a preset name, ``sunspec``, or a :class:`RegisterMap`)."""

    unit: int
    preset: str | RegisterMap
    state: MeterState = field(default_factory=MeterState)
    sunspec_model: int = 213
    sunspec_base: int = 40000
    fault: Fault = "none"
    exception_code: int = ExcCodes.DEVICE_FAILURE
    delay_s: float = 0.0
    reads: int = 0

    def __post_init__(self) -> None:
        self._layout: list[tuple[int, list[int]]] = []  # fixed words (SunSpec headers)
        if isinstance(self.preset, RegisterMap):
            self.register_map = self.preset
        elif self.preset == SUNSPEC:
            self.register_map = self._sunspec_layout()
        else:
            self.register_map = load_preset(self.preset)
        lo, hi = self.address_range()
        self.image: list[int] = [0] * (hi - lo)
        self.image_start = lo
        self._frozen_image: list[int] | None = None
        self.lock = threading.Lock()
        """Held while the rig sets the load and while a read renders it (a server in a thread of
        its own: :class:`~hil.meter.server.MeterSimServer`)."""

    # --- the rig's controls ---------------------------------------------------------------

    def set_load(
        self,
        base_a: Sequence[float] | None = None,
        ev_a: Sequence[float] | None = None,
        phase_pf: Sequence[float] | None = None,
    ) -> None:
        """The currents it measures: ``base_a`` + ``ev_a`` per line [A] (the rig passes each line's
        phasor magnitude as base + the rest, which may be negative where EV current partly cancels
        the base), and each line's cos φ."""
        with self.lock:
            if base_a is not None:
                self.state.base_a = (float(base_a[0]), float(base_a[1]), float(base_a[2]))
            if ev_a is not None:
                self.state.ev_a = (float(ev_a[0]), float(ev_a[1]), float(ev_a[2]))
            if phase_pf is not None:
                self.state.phase_pf = (float(phase_pf[0]), float(phase_pf[1]), float(phase_pf[2]))

    def set_voltage(self, voltage_v: Sequence[float]) -> None:
        self.state.voltage_v = (float(voltage_v[0]), float(voltage_v[1]), float(voltage_v[2]))

    def set_energy(self, import_kwh: float | None = None, export_kwh: float | None = None) -> None:
        if import_kwh is not None:
            self.state.import_kwh = import_kwh
        if export_kwh is not None:
            self.state.export_kwh = export_kwh

    def misbehave(self, fault: Fault, *, exception_code: int | None = None, delay_s: float | None = None) -> None:
        """Start a fault (``none`` ends it). ``freeze`` keeps the image as it is now."""
        if fault == "freeze" and self.fault != "freeze":
            self._frozen_image = self.render()
        self.fault = fault
        if exception_code is not None:
            self.exception_code = exception_code
        if delay_s is not None:
            self.delay_s = delay_s

    def heal(self) -> None:
        self.misbehave("none")
        self._frozen_image = None

    # --- the register image ---------------------------------------------------------------

    def _sunspec_layout(self) -> RegisterMap:
        base = self.sunspec_base
        length = SUNSPEC_LENGTHS[self.sunspec_model]
        common = [1, SUNSPEC_COMMON_LENGTH, *_string_words("depotctl", 16), *_string_words("sim-meter", 16)]
        common += [0] * (SUNSPEC_COMMON_LENGTH + 2 - len(common))
        model_at = base + 2 + len(common)
        self._layout = [
            (base, list(marker())),
            (base + 2, common),
            (model_at, [self.sunspec_model, length]),
            (model_at + 2 + length, [0xFFFF, 0]),
        ]
        if self.sunspec_model == 203:
            self._layout += [(model_at + off, [sf & 0xFFFF]) for off, sf in SUNSPEC_203_SF.items()]
        return model_map(SunSpecModel(self.sunspec_model, model_at, length))

    def address_range(self) -> tuple[int, int]:
        spans = [(f.address, f.address + f.count) for f in self.register_map.fields]
        spans += [(a, a + len(w)) for a, w in self._layout]
        return min(s for s, _ in spans), max(e for _, e in spans)

    def _put(self, image: list[int], address: int, words: Sequence[int]) -> None:
        offset = address - self.image_start
        image[offset : offset + len(words)] = list(words)

    def _exponent(self, f: FieldSpec, image: list[int]) -> int:
        if f.scale_factor_address is None:
            return 0
        word = image[f.scale_factor_address - self.image_start]
        return word - 0x10000 if word & 0x8000 else word

    def resolution(self, f: FieldSpec) -> float:
        """The smallest step a value can take on the wire (0 for floats)."""
        if f.type.startswith("float"):
            return 0.0
        return abs(f.scale) * 10.0 ** self._exponent(f, self.render())

    def render(self) -> list[int]:
        """The image for the current state (and the ``nan`` fault)."""
        image = [0] * len(self.image)
        for address, words in self._layout:
            self._put(image, address, words)
        values = self.state.values()
        for f in self.register_map.fields:
            if self.fault == "nan":
                words = nan_words(f.type, f.word_order)
            else:
                words = encode(values[f.name], f.type, f.word_order, f.scale, self._exponent(f, image))
            self._put(image, f.address, words)
        return image

    async def on_read(self, registers: list[int], start_address: int) -> ExcCodes | None:
        """pymodbus ``SimDevice.action`` body for a read: apply the fault, refresh the image."""
        self.reads += 1
        if self.fault == "silent":
            raise NoSuchIdException(f"simulated meter {self.unit} is silent")  # server sends nothing
        if self.fault == "exception":
            return ExcCodes(self.exception_code)
        if self.fault == "slow":
            await asyncio.sleep(self.delay_s)
        if self.fault == "freeze" and self._frozen_image is not None:
            image = self._frozen_image
        else:
            with self.lock:
                image = self.render()
        offset = self.image_start - start_address
        registers[offset : offset + len(image)] = image
        return None


def _string_words(text: str, count: int) -> list[int]:
    raw = text.encode("ascii")[: 2 * count].ljust(2 * count, b"\0")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * count, 2)]
