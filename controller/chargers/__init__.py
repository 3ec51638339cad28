"""OCPP central system for the depot's chargers (1.6J and 2.0.1): sessions, state, profile push."""

from controller.chargers.auth import Passwords, PasswordsError
from controller.chargers.clock_offset import ClockOffset
from controller.chargers.control import ApplyResult, Budget, Control
from controller.chargers.events import ChargerEvent
from controller.chargers.planning import push_plan, session_states
from controller.chargers.server import CentralSystem, server_ssl_context
from controller.chargers.state import ChargerState

__all__ = [
    "ApplyResult",
    "Budget",
    "CentralSystem",
    "ChargerEvent",
    "ChargerState",
    "ClockOffset",
    "Control",
    "Passwords",
    "PasswordsError",
    "push_plan",
    "server_ssl_context",
    "session_states",
]
