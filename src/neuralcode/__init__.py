"""Neural codes of ReLU networks and the metrics that show they act as hash codes."""

__version__ = "0.1.0"
