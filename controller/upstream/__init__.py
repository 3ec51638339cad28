"""Local-controller mode: depotctl between the depot's chargers and the operator's CSMS (issue 17)."""
