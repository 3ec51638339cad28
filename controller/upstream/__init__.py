"""Local-controller mode: depotctl between the chargers and the operator's CSMS."""
