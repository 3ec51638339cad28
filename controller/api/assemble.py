"""The daemon's API in one piece: the status, the fleet and commissioning routes, the tokens that guard them.

The daemon hands in its faces (:mod:`controller.api.faces`): nothing here knows the daemon.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from controller.api.app import StatusProvider, create_app
from controller.api.auth import Auth, install_auth
from controller.api.commission_routes import commission_router, install_commission
from controller.api.faces import CommissionFace, FleetFace
from controller.api.fleet_io import install_error_handlers
from controller.api.fleet_routes import fleet_router, install_fleet


def daemon_app(
    status: StatusProvider, fleet: FleetFace, auth: Auth, commission: CommissionFace | None = None
) -> FastAPI:
    """``GET /api/v1/status`` from ``status`` (a scoped fleet token sees its vehicles' sessions
    only), the fleet routes on ``fleet``, the commissioning routes on ``commission`` (left out
    without one), every ``/api/v1`` caller checked by ``auth``."""
    routers: list[APIRouter] = [fleet_router()]
    if commission is not None:
        routers.append(commission_router())
    app = create_app(auth.scoped_status(status, lambda: fleet.site), routers=routers)
    install_fleet(app, fleet)
    if commission is not None:
        install_commission(app, commission)
    install_auth(app, auth)
    install_error_handlers(app)
    return app
