"""State estimation: weighted least squares on pandapower's estimation model.

:class:`SEModel` is the grid (built once), :class:`Sensors` the sensor table,
:meth:`SEModel.measure` the exact measurement function in pandapower's units,
:class:`WLSEstimator` the per-step estimator with bad-data detection.
"""

from models.estimation.measurement import MeasurementSet
from models.estimation.model import SEModel
from models.estimation.sensors import (
    EstimatorOptionError,
    OutOfServiceError,
    SensorError,
    Sensors,
    UnknownElementError,
)
from models.estimation.wls import Estimate, WLSEstimator

__all__ = [
    "Estimate",
    "EstimatorOptionError",
    "MeasurementSet",
    "OutOfServiceError",
    "SEModel",
    "SensorError",
    "Sensors",
    "UnknownElementError",
    "WLSEstimator",
]
