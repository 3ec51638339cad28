"""The simulation rig: simulated meter, chargers and EVs for tests and the demo."""
