"""octbench: a benchmark suite for pretraining methods on retinal OCT B-scans."""

__version__ = "0.1.0"

# Canonical biomarker keys (DESIGN.md contract); OLIVES columns map onto them by name.
BIOMARKERS = ("IRHRF", "PAVF", "FAVF", "IRF", "DRT_ME", "VD")
