"""What can go wrong when reading a meter, named the way an electrician would say it."""

from __future__ import annotations

EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class MeterError(Exception):
    """Base class; ``kind`` is a short stable label (used in logs, counters and the probe)."""

    kind = "error"


class ConnectFailed(MeterError):
    """The TCP connection or serial port could not be opened (refused, timed out, no route …)."""

    kind = "connection failed"


class NotConnected(MeterError):
    """The link is down and the next reconnect attempt is not due yet (back-off)."""

    kind = "not connected"


class ReadTimeout(MeterError):
    """No answer within the link's ``timeout_s``."""

    kind = "timeout"


class ExceptionResponse(MeterError):
    """The meter (or gateway) answered with a Modbus exception code."""

    kind = "exception code"

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        name = EXCEPTION_NAMES.get(code, "unknown")
        super().__init__(f"exception code {code} ({name}){': ' + detail if detail else ''}")


class LinkError(MeterError):
    """The connection broke or the answer could not be understood."""

    kind = "link error"


class DiscoveryFailed(MeterError):
    """SunSpec discovery found no marker or no supported meter model."""

    kind = "discovery failed"


class Implausible(MeterError):
    """The meter answered, but the values cannot be true (NaN, out of range, frozen, missing)."""

    kind = "implausible value"
