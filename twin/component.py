"""The component contract: what a capability declares to take part in a run.

Every scenario section that puts something into the world (the assets, the tariff, the
controller, faults and sensors, the MQTT bridge, the InfluxDB sink, and whatever a
user's package adds) is a :class:`Component`. It declares, in one class of its own:

- ``sections``: the scenario keys it owns and their pydantic schema; the scenario
  model is composed from every component's sections (:func:`twin.scenario.scenario_model`);
- :meth:`Component.resolve`: cross-checks against the rest of the scenario and the
  grid, and the resolution of its section (names, bus indices...), all problems at once;
- :meth:`Component.add_entities` and :meth:`Component.add_connections`: the simulators,
  entities and connections it adds to the world plan (:mod:`twin.plan`);
- :meth:`Component.services`: what it starts before the run and stops after it
  (emulators, servers);
- :meth:`Component.run_metadata`, :meth:`Component.kpis`, :meth:`Component.after_run`:
  the counters, KPIs and outputs it contributes once the steps are done;
- :meth:`Component.checks`: the run checks (:mod:`twin.checks`) that fail a run that
  did not do what this component was asked.

Components are found like models: the ``twin.components`` entry-point group of any
installed package, or :func:`register_component`. The core never names one.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from twin.errors import Problem, TwinError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from twin.plan import WorldPlan

#: A run check, ``(scenario, metadata, kpis) -> [twin.checks.CheckFailure]`` (the same
#: type as :data:`twin.checks.RunCheck`, named here so that neither module imports the other).
RunCheck = Callable[[Any, dict[str, Any], dict[str, float]], list[Any]]

__all__ = [
    "BUILTIN_COMPONENTS",
    "ENTRY_POINT_GROUP",
    "Component",
    "Resolution",
    "Section",
    "UnknownComponentError",
    "baseline_of",
    "components",
    "register_component",
    "unregister_component",
]

#: The entry-point group through which packages provide components.
ENTRY_POINT_GROUP = "twin.components"


class UnknownComponentError(TwinError, KeyError):
    """An entry point that does not name a :class:`Component` subclass."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # not KeyError's quoted repr


class Section:
    """One scenario key a component owns: its schema (a type) and its default.

    ``key`` is a top-level scenario key (``mqtt``) or a key inside ``outputs``
    (``outputs.influx``). ``keep_validated``: the resolved scenario takes the section
    as validated instead of from a JSON dump (a dump masks ``SecretStr`` values).
    """

    def __init__(
        self, key: str, annotation: Any, default: Any = None, *, keep_validated: bool = False
    ) -> None:
        if key.count(".") > 1 or (key.count(".") == 1 and not key.startswith("outputs.")):
            raise ValueError(f"a section is a top-level key or outputs.<key>, got {key!r}")
        self.key = key
        self.annotation = annotation
        self.default = default
        self.keep_validated = keep_validated

    def __repr__(self) -> str:
        return f"Section({self.key!r})"


class Resolution:
    """What components share while a scenario is resolved against its grid.

    ``data`` is the scenario as a JSON-ready dict that components complete (resolved
    names, bus indices, loads expanded from the grid); ``net`` the pandapower net the
    scenario names; ``scenario`` the schema-valid scenario before resolution.
    """

    def __init__(self, scenario: Any, data: dict[str, Any], net: Any) -> None:
        self.scenario = scenario
        self.data = data
        self.net = net


class Component:
    """Base of every component; every hook has a do-nothing default.

    Subclasses set ``name`` (unique) and ``sections``, and override the hooks they
    need. ``order`` sorts components wherever the core calls them in turn (lower
    first): a component that reads what another registered in the plan (an entity
    that replaces an asset's values, a sensor observers read) comes after it.
    A component is instantiated once per call of the core; it keeps no state between
    runs.
    """

    name: ClassVar[str] = ""
    sections: ClassVar[tuple[Section, ...]] = ()
    order: ClassVar[int] = 100

    def resolve(self, resolution: Resolution) -> list[Problem]:
        """Complete ``resolution.data`` for this component's sections; report problems.

        Called with the schema-valid scenario, before the resolved scenario is built.
        """
        return []

    def problems(self, scenario: Any, resolution: Resolution) -> list[Problem]:
        """Cross-checks on the resolved scenario (every component's sections resolved)."""
        return []

    def add_entities(self, scenario: Any, plan: WorldPlan) -> None:
        """Add this component's simulators and entities to ``plan``."""

    def add_connections(self, scenario: Any, plan: WorldPlan) -> None:
        """Add connections (and simulators that need every entity: sinks) to ``plan``."""

    @contextlib.contextmanager
    def services(self, scenario: Any, out_dir: Path) -> Iterator[None]:
        """Start what the run needs outside the world; stop it when the block ends."""
        yield

    def after_setup(self, scenario: Any, out_dir: Path) -> None:
        """Write what is known once the world is built (ground-truth labels...)."""

    def run_metadata(self, scenario: Any, parts_dir: Path) -> dict[str, Any]:
        """Counters its simulators left in ``parts_dir``, merged into ``run.json``."""
        return {}

    def kpis(
        self, scenario: Any, results: pd.DataFrame, metadata: dict[str, Any]
    ) -> dict[str, float]:
        """KPIs it contributes, from the run's results (tidy rows) and metadata."""
        return {}

    def after_run(
        self, scenario: Any, kpis: dict[str, float], metadata: dict[str, Any], out_dir: Path
    ) -> None:
        """Act once the KPIs are known; may add KPIs and metadata (a comparison run)."""

    def export(
        self, scenario: Any, kpis: dict[str, float], metadata: dict[str, Any], out_dir: Path
    ) -> None:
        """Store the final KPIs (after every component's :meth:`after_run`): a sink."""

    def baseline(self, scenario: Any) -> dict[str, Any]:
        """Section updates for a what-if run beside this one (:func:`baseline_of`).

        A what-if (the uncontrolled comparison) must not act on the world outside: a
        component that publishes, drives devices or dispatches returns the updates that
        switch that off (``{"mqtt": None}``).
        """
        return {}

    def input_files(self, scenario: Any) -> dict[str, str | None]:
        """Files its sections name, by field path (hashed into ``scenario_hash``)."""
        return {}

    def checks(self) -> dict[str, RunCheck]:
        """Run checks by name: ``(scenario, metadata, kpis) -> [CheckFailure]``."""
        return {}

    def wanted(self, scenario: Any) -> bool:
        """Whether the scenario uses this component.

        Default: any of its sections is set (not ``None``, empty list or mapping); a
        component without sections is always part of a run.
        """
        if not self.sections:
            return True
        return any(section_value(scenario, s.key) not in (None, [], {}) for s in self.sections)


def baseline_of(scenario: Any) -> Any:
    """``scenario`` as a what-if beside the run: every component's :meth:`baseline`."""
    updates: dict[str, Any] = {}
    for component in components():
        for key, value in component.baseline(scenario).items():
            if key in updates and updates[key] != value:
                raise UnknownComponentError(
                    f"component {component.name!r} sets {key!r} of the what-if run "
                    "differently from another component"
                )
            updates[key] = value
    return scenario.model_copy(update=updates)


def section_value(scenario: Any, key: str) -> Any:
    """The value of a (possibly ``outputs.``-nested) section of ``scenario``."""
    node = scenario
    for part in key.split("."):
        node = getattr(node, part, None)
    return node


_registered: dict[str, type[Component]] = {}


def register_component(cls: type[Component]) -> type[Component]:
    """Register a component class (overrides an entry point of the same name).

    Usable as a class decorator.
    """
    if not (isinstance(cls, type) and issubclass(cls, Component)) or not cls.name:
        raise UnknownComponentError(f"{cls!r} is not a named twin.component.Component subclass")
    _registered[cls.name] = cls
    return cls


def unregister_component(name: str) -> None:
    """Remove a component registered with :func:`register_component`."""
    _registered.pop(name, None)


@functools.lru_cache(maxsize=4)
def _entry_point_targets(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Entry points of the group, read once per ``sys.path`` (a new plugin dir is seen)."""
    return tuple((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))


def _targets() -> dict[str, str]:
    return dict(_entry_point_targets(tuple(sys.path)))


def _load(name: str, target: str) -> type[Component]:
    module, _, attr = target.partition(":")
    try:
        cls = getattr(import_module(module), attr, None)
    except Exception as exc:  # a broken plugin: say which one, not a bare traceback
        raise UnknownComponentError(
            f"component {name!r} of {ENTRY_POINT_GROUP!r} ({target}) cannot be imported: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise UnknownComponentError(
            f"entry point {name!r} of {ENTRY_POINT_GROUP!r} ({target}) is not a Component"
        )
    return cls


#: Components of the twin's own package: without them (a checkout that was never
#: installed, a stale install) every scenario would fail with an unknown key.
BUILTIN_COMPONENTS = (
    "assets",
    "tariff",
    "sensors",
    "faults",
    "control",
    "diagnostics",
    "mqtt",
    "influx",
    "ingest",
    "estimation",
    "whatif",
)


def component_classes() -> list[type[Component]]:
    """Every available component class, sorted by ``order`` then name.

    Raises
    ------
    UnknownComponentError
        If a component cannot be imported, or the twin's own are not installed.
    """
    found: dict[str, type[Component]] = {}
    for name, target in _targets().items():
        found[name] = _load(name, target)
    found.update(_registered)
    missing = [name for name in BUILTIN_COMPONENTS if name not in found]
    if missing:
        raise UnknownComponentError(
            f"the twin's components {', '.join(missing)} are not registered in "
            f"{ENTRY_POINT_GROUP!r}: install the package (pip install -e .) so that its "
            "entry points are known"
        )
    return sorted(found.values(), key=lambda cls: (cls.order, cls.name))


def components() -> list[Component]:
    """One fresh instance of every available component, in ``order``."""
    return [cls() for cls in component_classes()]


def component_names() -> list[str]:
    """The names of every available component."""
    return [cls.name for cls in component_classes()]


def get_component(name: str) -> Component:
    """A fresh instance of the component ``name`` (a named error with the closest name)."""
    for cls in component_classes():
        if cls.name == name:
            return cls()
    names = component_names()
    hint = did_you_mean(name, names)
    raise UnknownComponentError(f"unknown component {name!r}{hint} (known: {', '.join(names)})")
