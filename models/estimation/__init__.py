"""State estimation: weighted least squares on pandapower's estimation model.

:class:`SEModel` is the grid (built once), :class:`Sensors` the sensor table,
:meth:`SEModel.measure` the exact measurement function in pandapower's units.
"""

from models.estimation.measurement import MeasurementSet
from models.estimation.model import SEModel
from models.estimation.sensors import (
    OutOfServiceError,
    SensorError,
    Sensors,
    UnknownElementError,
)

__all__ = [
    "MeasurementSet",
    "OutOfServiceError",
    "SEModel",
    "SensorError",
    "Sensors",
    "UnknownElementError",
]
