"""Schema of the ``sensors`` section: which quantities are measured, and how well."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from twin.bounds import bounded
from twin.errors import did_you_mean
from twin.scenario import Strict

__all__ = ["ImperfectionSpec", "SensorsSpec"]


class ImperfectionSpec(Strict):
    """Overrides of a sensor class's imperfection (``models.sensors.Imperfection``).

    Unset fields keep the class default.
    """

    noise_pct: bounded(0.0, 100.0) | None = None
    noise_abs: bounded(0.0, 1e6) | None = None
    resolution: bounded(0.0, 1e6) | None = None
    interval_s: Annotated[int, Field(ge=0, le=86_400)] | None = None
    dropout_p: bounded(0.0, 1.0, high_open=True) | None = None


class SensorsSpec(Strict):
    """The plant's sensors: every output a model reports is measured by default.

    ``enabled``: false measures nothing (observers read the true values, except where
    a sensor fault needs a sensor). ``classes``: imperfection overrides per sensor
    class (``power``, ``voltage``, ``loading``, ``soc``, ``soh``, ``temperature``,
    ``frequency``). ``exclude``: quantities not measured, as ``<kind>.<quantity>``
    (``line.loading_pct``).
    """

    enabled: bool = True
    classes: Annotated[dict[str, ImperfectionSpec], Field(max_length=50)] = {}
    exclude: Annotated[list[str], Field(max_length=200)] = []

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: dict[str, ImperfectionSpec]) -> dict[str, ImperfectionSpec]:
        from models.sensors import SENSOR_CLASSES

        for name in value:
            if name not in SENSOR_CLASSES:
                hint = did_you_mean(name, list(SENSOR_CLASSES), lead=True)
                raise ValueError(
                    f"unknown sensor class {name!r}; {hint}known: {', '.join(SENSOR_CLASSES)}"
                )
        return value
