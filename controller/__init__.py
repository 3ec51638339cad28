"""depotctl: on-site load management for EV fleet depots."""

__version__ = "0.1.0"
