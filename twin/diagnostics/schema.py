"""Schema of the ``diagnostics`` section: the engine in the loop of a run."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from twin.scenario import Strict

__all__ = ["DiagnosticsSpec"]


class DiagnosticsSpec(Strict):
    """The diagnostics engine as a simulator of the run.

    ``model``: a trained model directory (``twin diagnostics train``; relative to the
    working directory) whose classifier names the fault kinds, default the physics
    rules. ``mode``: ``residual`` (residual charts, indices and signatures, the default)
    or ``threshold`` (the static-threshold baseline). ``publish``: health indices and
    open alerts go to MQTT and InfluxDB where the run has them.
    """

    model: Annotated[str, Field(max_length=500)] | None = None
    mode: Literal["residual", "threshold"] = "residual"
    publish: bool = True
