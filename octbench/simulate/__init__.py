"""The simulated OCT cohort: a label model calibrated to OLIVES and a B-scan renderer."""
