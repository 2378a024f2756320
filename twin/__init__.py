"""twin: a digital-twin co-simulation framework for renewable microgrids."""

__version__ = "0.1.0"
