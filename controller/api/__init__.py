"""The HTTP API of the daemon.

- :mod:`controller.api.models`: the response models (the contract; re-exported here);
- :mod:`controller.api.app`: ``create_app(status)``, the FastAPI application;
- :mod:`controller.api.server`: ``ApiServer``, uvicorn inside the daemon's event loop.

Importing this package does not import FastAPI or uvicorn (``depotctl status`` and the other
commands stay quick to start); import ``app`` and ``server`` where they are needed.
"""

from controller.api.models import (
    ChargerInfo,
    ErrorResponse,
    FailsafeInfo,
    GridInfo,
    LoopInfo,
    MeterInfo,
    NodeInfo,
    PlanInfo,
    SessionInfo,
    StatusResponse,
    StoreInfo,
)

__all__ = [
    "ChargerInfo",
    "ErrorResponse",
    "FailsafeInfo",
    "GridInfo",
    "LoopInfo",
    "MeterInfo",
    "NodeInfo",
    "PlanInfo",
    "SessionInfo",
    "StatusResponse",
    "StoreInfo",
]
