"""The daemon's Prometheus metrics: the collectors, the update functions, the ``/metrics`` server.

Imports :mod:`controller.model` only. Metric names in ``CONTRACT_NAMES`` are a contract with the
dashboard (``config/grafana/depotctl.json``) and the alert rules (``config/prometheus/alerts.yml``).
"""

from controller.metrics.registry import CONTRACT_NAMES, EXTRA_NAMES, DepotMetrics
from controller.metrics.server import MetricsServer, start_metrics_server
from controller.metrics.update import (
    add_exceeded,
    count_push,
    count_shed,
    count_store_dropped,
    observe_bill,
    observe_charger,
    observe_charger_safety,
    observe_failsafe,
    observe_grid,
    observe_meter,
    observe_plan,
    observe_site,
    set_departure_at_risk,
)

__all__ = [
    "CONTRACT_NAMES",
    "EXTRA_NAMES",
    "DepotMetrics",
    "MetricsServer",
    "add_exceeded",
    "count_push",
    "count_shed",
    "count_store_dropped",
    "observe_bill",
    "observe_charger",
    "observe_charger_safety",
    "observe_failsafe",
    "observe_grid",
    "observe_meter",
    "observe_plan",
    "observe_site",
    "set_departure_at_risk",
    "start_metrics_server",
]
