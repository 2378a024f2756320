"""Name -> model class table.

The twin knows models only through this registry. Every model is listed in the
``twin.models`` entry-point group of its package (the physics of :mod:`models` also in
:data:`BUILTIN_MODELS`, so they resolve before the package is installed); a user's
package adds its models to the same group (or calls :func:`register`) and scenarios can
name them without any edit of the core.
"""

from __future__ import annotations

import functools
import sys
from importlib import import_module
from importlib.metadata import entry_points

from models.base import Model
from twin.errors import TwinError, did_you_mean

__all__ = ["BUILTIN_MODELS", "UnknownModelError", "get_model", "model_names", "register"]

BUILTIN_MODELS = {
    "pv": "models.pv:PVPlant",
    "battery": "models.battery:Battery",
    "load": "models.load:Load",
    "tariff": "models.tariff:Tariff",
    "grid": "models.grid:Grid",
    "ev": "models.ev:EVCharging",
    "faults": "models.faults:FaultSchedule",
    "sensors": "models.sensors:Sensors",
}
_registered: dict[str, type[Model]] = {}


class UnknownModelError(TwinError, KeyError):
    """A model name that nothing registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # not KeyError's quoted repr


def register(name: str, cls: type[Model]) -> None:
    """Register a model class under ``name`` (overrides entry points)."""
    _registered[name] = cls


@functools.lru_cache(maxsize=4)
def _entry_point_targets(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Entry points, read once per ``sys.path`` (a scan costs ~5 ms; a new dir is seen)."""
    return tuple((ep.name, ep.value) for ep in entry_points(group="twin.models"))


def _targets() -> dict[str, str]:
    targets = dict(BUILTIN_MODELS)
    for name, value in _entry_point_targets(tuple(sys.path)):
        targets.setdefault(name, value)
    return targets


def model_names() -> list[str]:
    """Every registered model name."""
    return sorted(set(_targets()) | set(_registered))


def get_model(name: str) -> type[Model]:
    """The model class registered as ``name``.

    Raises
    ------
    UnknownModelError
        Listing the known names and the closest match.
    """
    if name in _registered:
        return _registered[name]
    # the physics first (as in :func:`_targets`): asked for every entity, no path scan
    target = BUILTIN_MODELS.get(name) or _targets().get(name)
    if target is None:
        hint = did_you_mean(name, model_names())
        raise UnknownModelError(f"unknown model {name!r}{hint} (known: {', '.join(model_names())})")
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)
