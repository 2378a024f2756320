r"""Sensor readings: the truth with the noise of each sensor's class, and bias faults.

Every sensor draws from its own random stream (seeded by the field seed and its key),
so adding or removing sensors leaves the others' readings unchanged. The Gaussian noise
is that of the class (:data:`models.sensors.SENSOR_CLASSES`): a share of the true
reading plus a floor, in quadrature; the reading is then rounded to the class's
resolution. A sensor's standard deviation ``sigma`` counts both, as an estimator weighs
it (``Imperfection.std``): :math:`\sqrt{(p x)^2 + a^2 + r^2 / 12}`. A bias fault adds
``sigmas`` of them from a plant time on. Magnitudes (voltages ``v_pu``, currents ``i_*``)
are never negative: a meter of a dead line end reads 0, not minus its noise, so those
readings are clipped at 0 after noise, bias and rounding.
"""

from __future__ import annotations

import difflib
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adapters.field.errors import FieldError
from models.sensors import MIN_RESOLUTION

__all__ = ["Bias", "is_magnitude", "measure", "parse_bias"]


def is_magnitude(quantities: pd.Series) -> np.ndarray:
    """Twin quantities that are magnitudes (bus ``v_pu``, branch currents ``i_*``)."""
    q = quantities.astype(str)
    return ((q == "v_pu") | q.str.startswith("i_")).to_numpy()


@dataclass(frozen=True)
class Bias:
    """A bias fault: ``sigmas`` standard deviations added to ``sensor`` from ``from_s``."""

    sensor: str
    sigmas: float
    from_s: float = 0.0


def parse_bias(text: str) -> Bias:
    """``SENSOR_KEY=SIGMAS`` or ``SENSOR_KEY=SIGMAS@FROM_S`` (plant seconds after start).

    Raises
    ------
    FieldError
        Naming the option and the expected form.
    """
    key, sep, rest = text.rpartition("=")
    sigmas, at, from_s = rest.partition("@")
    try:
        bias = Bias(key, float(sigmas), float(from_s) if at else 0.0)
    except ValueError:
        sep = ""
    if not sep or not key or not np.isfinite(bias.sigmas) or not np.isfinite(bias.from_s):
        raise FieldError(f"--bias {text!r}: expected SENSOR_KEY=SIGMAS[@FROM_S]")
    return bias


def _stream(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def measure(
    truth: np.ndarray,
    sensors: pd.DataFrame,
    seed: int,
    offsets_s: np.ndarray,
    biases: tuple[Bias, ...] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readings of every sensor at every step, in twin units.

    Parameters
    ----------
    truth : numpy.ndarray
        True values (steps, sensors), twin units.
    sensors : pandas.DataFrame
        The plan (:func:`adapters.field.plan.sensor_plan`).
    seed : int
        Field seed.
    offsets_s : numpy.ndarray
        Plant seconds of every step after the start.
    biases : tuple of Bias
        Bias faults.

    Returns
    -------
    value, sigma, bias : numpy.ndarray
        Readings (magnitudes clipped at 0), their standard deviations (noise and
        rounding) and the biases added (steps, sensors).

    Raises
    ------
    FieldError
        For a bias on a sensor the plan does not have (with the nearest keys).
    """
    steps, n = truth.shape
    gauss = np.empty((steps, n))
    for j, key in enumerate(sensors["sensor"]):
        gauss[:, j] = _stream(seed, key).standard_normal(steps)
    share = sensors["noise_share"].to_numpy(float)
    floor = sensors["noise_floor"].to_numpy(float)
    resolution = sensors["resolution"].to_numpy(float)
    rounded = resolution >= MIN_RESOLUTION
    noise = np.sqrt((share * truth) ** 2 + floor**2)
    sigma = np.sqrt(noise**2 + np.where(rounded, resolution, 0.0) ** 2 / 12.0)
    bias = np.zeros_like(truth)
    column = {key: j for j, key in enumerate(sensors["sensor"])}
    for b in biases:
        if b.sensor not in column:
            near = difflib.get_close_matches(b.sensor, list(column), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise FieldError(f"--bias {b.sensor}: no such sensor in the plan{hint}")
        j = column[b.sensor]
        on = offsets_s >= b.from_s
        bias[on, j] += b.sigmas * sigma[on, j]
    value = truth + gauss * noise + bias
    step = np.where(rounded, resolution, 1.0)
    value = np.where(rounded, np.round(value / step) * step, value)
    magnitude = is_magnitude(sensors["quantity"])
    value[:, magnitude] = np.maximum(value[:, magnitude], 0.0)  # NaN (no truth) stays NaN
    return value, sigma, bias
